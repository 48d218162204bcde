"""A test helper: is a written figure a real, non-blank PNG?"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def check_png(path: Path, *, min_size=(400, 300)) -> None:
    """Raise if ``path`` is not a non-blank PNG of at least ``min_size`` pixels."""
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    h, w = img.shape[:2]
    if w < min_size[0] or h < min_size[1]:
        raise ValueError(f"path: {path.name} is {w}x{h} px, expected >= {min_size}")
    if float(np.asarray(img[..., :3]).std()) < 0.01:
        raise ValueError(f"path: {path.name} looks blank (pixel std < 0.01)")
