"""Hand-computed tiny convolutions, in the spirit of the HPVM runtime's own tests.

Input: all ones, 1x3x4x4. Filters (1 output channel, 3 input channels, 3x3):
``ONES`` (all ones) and ``SEQ`` (every channel [[1,2,3],[4,5,6],[7,8,9]]), and
``SEQ_SCALED`` (channel c is (c+1) * SEQ) where sampling must tell channels apart.
Each case runs against both ``kernels.conv2d`` and ``reference.conv2d``.
"""

from __future__ import annotations

import numpy as np
import pytest

from mobiprox_lab import kernels

reference = pytest.importorskip("mobiprox_lab.reference")

X = np.ones((1, 3, 4, 4), np.float32)
ONES = np.ones((1, 3, 3, 3), np.float32)
SEQ = np.tile(np.arange(1, 10, dtype=np.float32).reshape(3, 3), (1, 3, 1, 1))
SEQ_SCALED = SEQ * np.arange(1, 4, dtype=np.float32).reshape(1, 3, 1, 1)

IMPLS = [pytest.param(kernels.conv2d, id="kernels"), pytest.param(reference.conv2d, id="reference")]

# ONES, pad 1: each output counts its in-image taps (corner 4, edge 6, inside 9) x 3 channels.
ONES_PAD1 = [[12, 18, 18, 12],
             [18, 27, 27, 18],
             [18, 27, 27, 18],
             [12, 18, 18, 12]]
# SEQ, pad 1: 3 x the sum of SEQ over the in-image taps. Row sums of SEQ are 6, 15, 24;
# over columns {1,2}: 5, 11, 17; over {0,1}: 3, 9, 15. E.g. (0, 0) uses rows {1,2} x
# columns {1,2}: 11 + 17 = 28 -> 84; (3, 3) uses rows {0,1} x columns {0,1}: 3 + 9 -> 36.
SEQ_PAD1 = [[84, 117, 117, 72],
            [99, 135, 135, 81],
            [99, 135, 135, 81],
            [48, 63, 63, 36]]

CASES = [
    # (knob, filter, stride, padding, expected (Ho, Wo))
    (11, ONES, 1, 0, [[27, 27], [27, 27]]),
    (11, ONES, 1, 1, ONES_PAD1),
    (11, SEQ, 1, 1, SEQ_PAD1),
    # row perforation s2 o0 skips rows 0, 2: row 0 <- row 1; row 2 <- mean(row 1, row 3)
    (123, ONES, 1, 1, [[18, 27, 27, 18],
                       [18, 27, 27, 18],
                       [15, 22.5, 22.5, 15],
                       [12, 18, 18, 12]]),
    (123, SEQ, 1, 1, [[99, 135, 135, 81],
                      [99, 135, 135, 81],
                      [73.5, 99, 99, 58.5],
                      [48, 63, 63, 36]]),
    # row perforation s2 o1 skips rows 1, 3: row 1 <- mean(row 0, row 2); row 3 (last) <- row 2
    (124, ONES, 1, 1, [[12, 18, 18, 12],
                       [15, 22.5, 22.5, 15],
                       [18, 27, 27, 18],
                       [18, 27, 27, 18]]),
    (124, SEQ, 1, 1, [[84, 117, 117, 72],
                      [91.5, 126, 126, 76.5],
                      [99, 135, 135, 81],
                      [99, 135, 135, 81]]),
    # column perforation s2 o0 skips columns 0, 2: col 0 <- col 1; col 2 <- mean(col 1, col 3)
    (121, SEQ, 1, 1, [[117, 117, 94.5, 72],
                      [135, 135, 108, 81],
                      [135, 135, 108, 81],
                      [63, 63, 49.5, 36]]),
    # column perforation s2 o1 skips columns 1, 3: col 1 <- mean(col 0, col 2); col 3 <- col 2
    (122, SEQ, 1, 1, [[84, 100.5, 117, 117],
                      [99, 117, 135, 135],
                      [99, 117, 135, 135],
                      [48, 55.5, 63, 63]]),
    (122, ONES, 1, 1, [[12, 15, 18, 18],
                       [18, 22.5, 27, 27],
                       [18, 22.5, 27, 27],
                       [12, 15, 18, 18]]),
    # row perforation s3: o0 skips 0 and 3 (first <- row 1, last <- row 2); o1 skips 1; o2 skips 2
    (128, SEQ, 1, 1, [[99, 135, 135, 81]] * 4),
    (129, SEQ, 1, 1, [SEQ_PAD1[0], [91.5, 126, 126, 76.5], SEQ_PAD1[2], SEQ_PAD1[3]]),
    (130, SEQ, 1, 1, [SEQ_PAD1[0], SEQ_PAD1[1], [73.5, 99, 99, 58.5], SEQ_PAD1[3]]),
    # row perforation s4 o3 skips only the last row: row 3 <- row 2
    (138, SEQ, 1, 1, [SEQ_PAD1[0], SEQ_PAD1[1], SEQ_PAD1[2], SEQ_PAD1[2]]),
    # column perforation s3 o2 skips column 2: mean(col 1, col 3)
    (127, ONES, 1, 1, [[12, 18, 15, 12],
                       [18, 27, 22.5, 18],
                       [18, 27, 22.5, 18],
                       [12, 18, 15, 12]]),
    # stride 2, pad 1 -> 2x2: output row 0 sees filter rows {1,2}, row 1 all (columns alike).
    # SEQ: (0,0) 11+17=28 -> 84; (0,1) 15+24=39 -> 117; (1,0) 5+11+17=33 -> 99; (1,1) 135.
    (11, SEQ, 2, 1, [[84, 117], [99, 135]]),
    (123, SEQ, 2, 1, [[99, 135], [99, 135]]),  # row 0 skipped <- row 1
    (124, SEQ, 2, 1, [[84, 117], [84, 117]]),  # row 1 (last) skipped <- row 0
    (121, SEQ, 2, 1, [[117, 117], [135, 135]]),  # column 0 skipped <- column 1
    (122, SEQ, 2, 1, [[84, 84], [99, 99]]),  # column 1 (last) skipped <- column 0
    # Sampling, pad 0 (every output sees the whole filter, so one value per case).
    # s2 (9 % 2 != 0: irregular, over the flat index 0..26; channel c holds c*9 .. c*9+8).
    # o0 skips even flat indices: keeps local k {1,3,5,7} in ch 0 and 2, {0,2,4,6,8} in ch 1.
    # SEQ_SCALED: 1*(2+4+6+8) + 2*(1+3+5+7+9) + 3*(2+4+6+8) = 20 + 50 + 60 = 130; x2 -> 260.
    (231, SEQ_SCALED, 1, 0, [[260, 260], [260, 260]]),
    # o1 skips odd flat indices: 1*25 + 2*20 + 3*25 = 140; x2 -> 280.
    (232, SEQ_SCALED, 1, 0, [[280, 280], [280, 280]]),
    # s3 (9 % 3 == 0: regular, o_c = (offset + c) % 3). o0: ch0 skips k {0,3,6} (1+4+7=12,
    # keeps 33), ch1 skips {1,4,7} (keeps 30), ch2 skips {2,5,8} (keeps 27):
    # 33 + 2*30 + 3*27 = 174; x1.5 -> 261.
    (233, SEQ_SCALED, 1, 0, [[261, 261], [261, 261]]),
    # o1: ch0 o=1 keeps 30, ch1 o=2 keeps 27, ch2 o=0 keeps 33: 30 + 54 + 99 = 183 -> 274.5.
    (234, SEQ_SCALED, 1, 0, [[274.5, 274.5], [274.5, 274.5]]),
    # s4 (irregular) o0 skips flat 0,4,...,24: ch0 k {0,4,8} (keeps 30), ch1 flat 12,16 =
    # k {3,7} (keeps 33), ch2 flat 20,24 = k {2,6} (keeps 35): 30 + 66 + 105 = 201; x4/3 -> 268.
    (236, SEQ_SCALED, 1, 0, [[268, 268], [268, 268]]),
    # s2 o0 with ONES, pad 1: ch 0, 2 keep the edge taps {1,3,5,7}, ch 1 the corners and
    # centre {0,2,4,6,8}. In-image kept taps per channel (ch0 + ch1 + ch2): corner output
    # 2 + 2 + 2 = 6 -> x2 = 12; edge output 3 + 3 + 3 = 9 -> 18; inside 4 + 5 + 4 = 13 -> 26.
    (231, ONES, 1, 1, [[12, 18, 18, 12],
                       [18, 26, 26, 18],
                       [18, 26, 26, 18],
                       [12, 18, 18, 12]]),
]


@pytest.mark.parametrize("conv", IMPLS)
@pytest.mark.parametrize("kid, w, stride, padding, expected", CASES)
def test_handworked(conv, kid, w, stride, padding, expected):
    out = conv(X, w, None, stride=stride, padding=padding, knob=kid)
    np.testing.assert_array_equal(out, np.asarray(expected, np.float32)[None, None])


@pytest.mark.parametrize("conv", IMPLS)
def test_bias_after_interpolation(conv):
    # row s2 o0 on ONES pad 1 plus bias 0.5: every value of the interpolated map + 0.5
    out = conv(X, ONES, np.array([0.5], np.float32), padding=1, knob=123)
    want = np.array([[18, 27, 27, 18], [18, 27, 27, 18], [15, 22.5, 22.5, 15],
                     [12, 18, 18, 12]], np.float32) + 0.5
    np.testing.assert_array_equal(out[0, 0], want)


@pytest.mark.parametrize("conv", IMPLS)
def test_fp16_rounding_by_hand(conv):
    # half(0.1) = 0.0999755859375 (binary 1.1001100110 x 2^-4); 27 of them sum exactly in fp32
    # to 2.6993408203125; the half grid near 2.7 is 2^-9 apart: 1382.06 steps -> 1382 ->
    # 2.69921875. With bias half(0.1): 2.69921875 + 0.0999755859375 = 2.7991943359375 ->
    # 1433.19 steps -> 2.798828125.
    w = np.full((1, 3, 3, 3), 0.1, np.float32)
    out = conv(X, w, None, knob=12)
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 2.69921875, np.float32))
    out = conv(X, w, np.array([0.1], np.float32), knob=12)
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 2.798828125, np.float32))
    # fp32 twin for contrast: 27 * float32(0.1) stays ~2.7
    assert abs(conv(X, w, None, knob=11)[0, 0, 0, 0] - 2.7) < 1e-5
