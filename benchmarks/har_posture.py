"""How far the phone's tilt tells sitting from standing, per volunteer (issue #11's HAR gap).

    .venv/bin/python benchmarks/har_posture.py

For each of the 30 HAPT volunteers: the mean gravity direction (``total_acc`` averaged over
each window, then over the volunteer's windows of a class, in g, phone axes x / y / z) while
walking, sitting and standing, and the sitting - standing difference, with the split the
volunteer belongs to (train / tune / test, as ``datasets.prepare("har")`` splits them).
No model and no label beyond the windows' own is involved.

Measured (default HAPT windows): standing holds the phone much as walking does (stand -
walk within 0.13 g along y, 0.22 g on any axis, for all 30); sitting tilts it along y by
0.14-0.58 g for 26 of them (subject 7: 0.12 g). Test subjects 9 and 10 and training
subject 16 sit as upright as they stand (y difference -0.03, -0.00, -0.03 g): their only
tilt cue is z (0.07, 0.16, 0.26 g), smallest for subject 9. They are the HAR MobileNet's
weakest subjects (test 0.82 and 0.78; subject 16 0.65-0.77 in the cross-validation of
``har_recipe_cv.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mobiprox_lab.datasets.hapt import UCI_TEST_SUBJECTS  # noqa: E402
from mobiprox_lab.datasets.hapt_windows import hapt_tune_test_subjects, load_hapt  # noqa: E402
from mobiprox_lab.datasets.imu import CHANNELS, UCI_LABELS  # noqa: E402

GRAVITY = [CHANNELS.index(f"total_acc_{a}") for a in "xyz"]
CLASSES = {name: UCI_LABELS.index(name) for name in ("walking", "sitting", "standing")}


def posture_table() -> pd.DataFrame:
    """One row per volunteer: split, window counts, mean gravity per class, sit - stand."""
    ds = load_hapt(split="all")
    tune, test = hapt_tune_test_subjects(load_hapt(split="test"))
    g = ds.x[:, GRAVITY, :].mean(axis=2)
    rows = []
    for s in np.unique(ds.subject):
        row = {"subject": int(s), "split": "test" if s in test else "tune" if s in tune
               else "train"}
        means = {}
        for name, c in CLASSES.items():
            m = (ds.subject == s) & (ds.y == c)
            means[name] = g[m].mean(axis=0)
            row[f"n_{name}"] = int(m.sum())
        for name in CLASSES:
            row[name] = np.round(means[name], 2).tolist()
        row["sit - stand"] = np.round(means["sitting"] - means["standing"], 2).tolist()
        row["stand - walk"] = np.round(means["standing"] - means["walking"], 2).tolist()
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    pd.set_option("display.width", 200)
    table = posture_table()
    print("Mean gravity direction (g, phone x / y / z) per volunteer and class:")
    print(table.to_string(index=False))
    dy = np.array([d[1] for d in table["sit - stand"]])
    print(f"\nsitting - standing along y: {np.sum(dy >= 0.12)} of {len(dy)} volunteers "
          f">= 0.12 g; below: {table.loc[dy < 0.12, 'subject'].tolist()} "
          f"(UCI-HAR test subjects: {list(UCI_TEST_SUBJECTS)})")


if __name__ == "__main__":
    main()
