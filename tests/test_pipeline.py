"""The step runner keeps going past a failure and says which step failed."""

import pytest

from mobiprox_lab.orchestration.runner import Context, Step, outcomes_frame, run_steps


def test_failure_is_named_dependants_skip_and_the_rest_runs(tmp_path):
    ran = []
    messages = []

    def ok(name):
        return lambda ctx: ran.append(name)

    def boom(ctx):
        raise RuntimeError("disk full")

    steps = [
        Step("a", ok("a")),
        Step("b", boom, needs=("a",)),
        Step("c", ok("c"), needs=("b",)),
        Step("d", ok("d"), needs=("a",)),
    ]
    outcomes = run_steps(steps, Context(out_dir=tmp_path), echo=messages.append)
    assert [o.status for o in outcomes] == ["ok", "failed", "skipped", "ok"]
    assert ran == ["a", "d"]
    assert "disk full" in outcomes[1].error
    assert any("FAILED" in m and "disk full" in m for m in messages)
    assert any("skipped (needs b)" in m for m in messages)
    assert list(outcomes_frame(outcomes).columns) == ["name", "status", "seconds", "error"]


def test_bad_step_lists_are_rejected(tmp_path):
    ctx = Context(out_dir=tmp_path)
    with pytest.raises(ValueError, match="unique"):
        run_steps([Step("a", print), Step("a", print)], ctx)
    with pytest.raises(ValueError, match="needs"):
        run_steps([Step("a", print, needs=("z",))], ctx)



def test_interruption_names_the_step_and_propagates(tmp_path):
    messages = []

    def stop(ctx):
        raise KeyboardInterrupt

    steps = [Step("a", lambda ctx: None), Step("b", stop), Step("c", lambda ctx: None)]
    with pytest.raises(KeyboardInterrupt):
        run_steps(steps, Context(out_dir=tmp_path), echo=messages.append)
    assert any("INTERRUPTED" in m and "(a)" in m and "resumes from 'b'" in m for m in messages)
