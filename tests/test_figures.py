"""The figure pipeline in quick mode writes every expected, non-blank figure and the summary."""

import pandas as pd
import pytest

from mobiprox_lab import figures


@pytest.mark.slow
def test_quick_pipeline_writes_every_figure(tmp_path):
    status = figures.make_figures(tmp_path, quick=True)
    assert status == 0
    for name in figures.EXPECTED_FIGURES:
        figures.check_png(tmp_path / f"{name}.png")
    summary = (tmp_path / "summary.md").read_text()
    for heading in ("baseline accuracy", "configurations har", "configurations kws",
                    "controllers", "headline", "kernel ratios", "energy model fit"):
        assert f"## {heading}" in summary
    table = pd.read_csv(tmp_path / "summary.csv")
    assert {"controllers", "headline"} <= set(table["table"])


def test_check_png_rejects_blank_and_tiny_images(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6, 4), dpi=100)
    fig.savefig(tmp_path / "blank.png")
    with pytest.raises(ValueError, match="blank"):
        figures.check_png(tmp_path / "blank.png")
    fig = plt.figure(figsize=(1, 1), dpi=100)
    fig.gca().plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "tiny.png")
    with pytest.raises(ValueError, match="px"):
        figures.check_png(tmp_path / "tiny.png")
