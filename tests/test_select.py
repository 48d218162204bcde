"""The authors' final rule, row by row: what became of each candidate."""

import pandas as pd
import pytest

from mobiprox_lab.tuner.select import final_rule, final_rule_decisions


def _table():
    rows = [  # name, loss (pp), speedup
        ("exact", 0.0, 1.0), ("A", -0.2, 1.30), ("B", 0.05, 1.20), ("C", 0.10, 1.205),
        ("D", 0.12, 1.40), ("E", 0.50, 1.35), ("F", 0.60, 1.60), ("G", 0.70, 1.65),
        ("H", 2.00, 1.655), ("I", 3.00, 2.00),
    ]
    table = pd.DataFrame(rows, columns=["name", "qos_loss", "speedup"])
    table["config"] = [{} if n == "exact" else {"op": 121} for n in table["name"]]
    return table


def test_decisions_by_hand():
    table = _table()
    accepted, why = final_rule_decisions(table)
    assert [table["name"][i] for i in accepted] == ["exact", "D", "G", "I"]
    by_name = dict(zip(table["name"], why, strict=True))
    assert by_name["exact"] == "conf0 (exact)"
    assert by_name["A"] == "negative loss"
    assert by_name["B"] == "replaced by row 4"  # D
    assert by_name["C"].startswith("speedup gain <= 0.01 over row 2")  # B at that moment
    assert by_name["E"].startswith("speedup gain")
    assert by_name["F"] == "replaced by row 7"  # G
    assert by_name["I"] == "accepted"


def test_parameters_change_the_list():
    table = _table()
    # no merging: every faster configuration is appended
    out = final_rule(table, merge_within=0.0)
    assert list(out["candidate"]) == ["exact", "B", "D", "F", "G", "I"]
    # a wide merge window collapses the chain into the last of each run
    out = final_rule(table, merge_within=5.0)
    assert list(out["candidate"]) == ["exact", "I"]
    with pytest.raises(ValueError, match="merge_within"):
        final_rule(table, merge_within=-1.0)
    with pytest.raises(ValueError, match="min_gain"):
        final_rule(table, min_gain=float("nan"))


def test_eligible_limits_the_rule_to_those_rows():
    table = _table()
    names = list(table["name"])
    eligible = [n not in ("D", "G") for n in names]
    accepted, why = final_rule_decisions(table, eligible=eligible)
    # without D and G: B is kept (nothing replaces it), then F, and H is no longer
    # shadowed by G
    assert [names[i] for i in accepted] == ["exact", "B", "F", "H", "I"]
    by_name = dict(zip(names, why, strict=True))
    assert by_name["D"] == by_name["G"] == "not eligible"
    assert by_name["C"].startswith("speedup gain <= 0.01 over row 2")
    # every row eligible is the rule without the argument
    assert final_rule_decisions(table, eligible=[True] * len(names)) == \
        final_rule_decisions(table)
    with pytest.raises(ValueError, match="eligible: expected 10 bools"):
        final_rule_decisions(table, eligible=[True] * 3)
    with pytest.raises(ValueError, match="eligible: expected 10 bools"):
        final_rule_decisions(table, eligible=[1] * 10)
    with pytest.raises(ValueError, match="eligible: the exact"):
        final_rule_decisions(table, eligible=[n != "exact" for n in names])
