"""Which 1x1 layers run stride-3 row perforation as row GEMMs under the built-in threshold (which
``forced_paths`` puts in force; a machine may calibrate another: ``profiler.kernel_paths``):
the HAR MobileNet's 64 -> 128 layer on 16x16 maps does (measured faster on the VM that set
it), the 32 -> 64 one on 32x32 keeps the gather."""

from __future__ import annotations

import pytest
from test_kernels_paths import _data, assert_close, forced_paths, spy_row_gemms

from mobiprox_lab import kernels

reference = pytest.importorskip("mobiprox_lab.reference")


@pytest.mark.parametrize("c,k,hw,row_gemms", [(64, 128, 16, True), (32, 64, 32, False)])
@pytest.mark.parametrize("kid", [128, 129])
def test_har_pointwise_row_perforation_path(c, k, hw, row_gemms, kid):
    x, wt, b = _data(3, 2, c, hw, hw, k, c, 1, 1, True)
    with pytest.MonkeyPatch.context() as mp, forced_paths(1):
        seen = spy_row_gemms(mp)
        got = kernels.conv2d(x, wt, b, knob=kid)
    assert seen == [row_gemms]
    assert_close(got, reference.conv2d(x, wt, b, knob=kid))
