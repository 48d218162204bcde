"""The figure pipeline in quick mode writes every expected, non-blank figure and the summary."""

import json
from pathlib import Path

import pandas as pd
import pytest
from pngcheck import check_png  # the tests folder is on sys.path (pytest rootdir mode)

from mobiprox_lab.evaluation import LOSS_TOLERANCE_PP
from mobiprox_lab.orchestration import figures, summary

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_pipeline_writes_every_figure(tmp_path):
    status = figures.make_figures(tmp_path, quick=True)
    assert status == 0
    for name in figures.EXPECTED_FIGURES:
        check_png(tmp_path / f"{name}.png")
    text = (tmp_path / "summary.md").read_text()
    for heading in ("baseline accuracy", "configurations har", "configurations kws",
                    "candidates har", "controllers", "kernel ratios", "energy law fit",
                    "energy accounting check"):
        assert f"## {heading}" in text
    table = pd.read_csv(tmp_path / "summary.csv")
    assert {"controllers", "energy accounting check"} <= set(table["table"])
    assert (table.loc[table["table"] == "energy accounting check", "abs_error"] < 1e-9).all()
    # the speedups' clock is stated next to both medians (CPU and wall)
    configs = table[table["table"] == "configurations har"]
    assert (configs["clock"] == "cpu").all() and (configs["cpu_s"] > 0).all()
    assert (configs["threads"] == 1).all()  # profiler.TIMING_THREADS
    assert (configs["latency_s"] > 0).all()
    head = json.loads((tmp_path / "headline.json").read_text())
    _check_headline(head)
    assert summary.results_markdown(head).count("\n") >= 6


def _check_headline(head: dict) -> None:
    assert set(head) - {"pipeline_seconds"} == {"har", "kws"}
    for task in ("har", "kws"):
        h = head[task]
        assert 0 <= h["test_accuracy"] <= 1
        lo, hi = h["test_accuracy_ci"]  # bootstrap over the held-out subjects / voices
        assert 0 <= lo <= h["test_accuracy"] <= hi <= 1 and h["test_groups"] >= 2
        lo, hi = h["held_out_accuracy_ci"]  # tune + test together, the paper's pool
        assert 0 <= lo <= h["held_out_accuracy"] <= hi <= 1
        assert h["held_out_groups"] > h["test_groups"]
        assert 0 <= h["train_accuracy"] <= 1 and 0 <= h["tune_accuracy"] <= 1
        assert h["n_configs"] == len(h["measured_speedup"]) == len(h["relative_energy"])
        assert h["measured_speedup"][0] == 1.0 and h["relative_energy"][0] == 1.0
        assert h["cost_model_median_error"] >= 0
        for t in h["traces"].values():
            assert {"oracle_saving_continuous", "best_controller", "n_units"} <= set(t)
            if t["best_controller"] is not None:
                # the headline's own budget: 1 pp up to float round-off of the unit mean
                assert t["loss_pp"] <= 1.0 + LOSS_TOLERANCE_PP
                assert {"saving_continuous", "saving_duty_cycled", "saving_continuous_ci",
                        "best_static_saving_continuous"} <= set(t)


def test_readme_results_match_the_committed_headline():
    """The README's results block is what ``results_markdown`` renders from the committed
    ``figures/headline.json`` (``make figures`` regenerates both)."""
    head = json.loads((REPO / "figures" / "headline.json").read_text())
    _check_headline(head)
    readme = (REPO / "README.md").read_text()
    block = readme.split(summary.RESULTS_BEGIN, 1)[1].split(summary.RESULTS_END, 1)[0]
    expected = "\n\n".join(b for b in (summary.results_markdown(head),
                                         summary.timings_markdown(head)) if b)
    assert block.strip() == expected.strip()


def test_update_readme_replaces_only_the_block(tmp_path):
    head = json.loads((REPO / "figures" / "headline.json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{summary.RESULTS_BEGIN}\nstale\n{summary.RESULTS_END}\noutro\n")
    assert summary.update_readme(readme, head)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "stale" not in text
    assert not summary.update_readme(readme, head)  # idempotent
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="readme"):
        summary.update_readme(readme, head)


def test_check_png_rejects_blank_and_tiny_images(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6, 4), dpi=100)
    fig.savefig(tmp_path / "blank.png")
    with pytest.raises(ValueError, match="blank"):
        check_png(tmp_path / "blank.png")
    fig = plt.figure(figsize=(1, 1), dpi=100)
    fig.gca().plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "tiny.png")
    with pytest.raises(ValueError, match="px"):
        check_png(tmp_path / "tiny.png")


def test_kernel_figures_are_timed_with_the_calibrated_paths(tmp_path, monkeypatch):
    """The kernel step puts the machine's calibrated paths in force before it benchmarks,
    as every later timing of the pipeline does (else its figure shows other paths)."""
    from mobiprox_lab import kernelbench, kernels, profiler
    from mobiprox_lab.orchestration.runner import Context

    name = "pointwise_row_gemm_min_macs"
    before = kernels.set_path_thresholds({name: 0})
    seen = []

    class Stop(Exception):
        pass

    def bench(**kwargs):
        seen.append(kernels.path_thresholds()[name])
        raise Stop

    monkeypatch.setattr(profiler, "kernel_paths",
                        lambda **kw: kernels.set_path_thresholds({name: 777}))
    monkeypatch.setattr(kernelbench, "bench_layers", bench)
    try:
        with pytest.raises(Stop):
            figures.step_kernels(Context(out_dir=tmp_path, quick=True))
    finally:
        kernels.set_path_thresholds(before)
    assert seen == [777]


def test_candidate_decisions_count_and_spread_the_measured_speedups():
    """One row a decision, the row it names stripped, most frequent first, with the
    candidates' session speedups and those of the list sessions that timed them again."""
    nan = float("nan")
    cands = pd.DataFrame({
        "decision": ["conf0 (exact)", "accepted", "timed again: speedup gain <= 0.01 over row 1",
                     "timed again: speedup gain <= 0.01 over row 2", "loss > 5 pp on tune",
                     "loss > 5 pp on tune", "loss > 5 pp on tune"],
        "speedup": [1.0, 1.3, 1.25, 1.35, nan, nan, nan],
        "retimed_speedup": [1.0, 1.28, 1.1, 1.2, nan, nan, nan]})
    table = figures.candidate_decisions(cands).set_index("decision")
    assert list(table.index) == ["loss > 5 pp on tune", "timed again: speedup gain <= 0.01",
                                 "conf0 (exact)", "accepted"]
    assert table["candidates"].tolist() == [3, 2, 1, 1]
    row = table.loc["timed again: speedup gain <= 0.01"]
    assert row["speedup_median"] == pytest.approx(1.3) and row["speedup_max"] == 1.35
    assert (row["retimed_min"], row["retimed_max"]) == (1.1, 1.2)
    assert pd.isna(table.loc["loss > 5 pp on tune", "speedup_max"])
