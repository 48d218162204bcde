"""The knob catalogue against the reference page."""

import pytest

from mobiprox_lab import knobs


def test_catalogue_has_the_56_conv_ids():
    expected = [11, 12, *range(121, 139), *range(151, 169), *range(231, 240), *range(261, 270)]
    assert sorted(knobs.KNOBS) == expected
    assert len(knobs.CONV_KNOB_IDS) == 56


@pytest.mark.parametrize(
    ("kid", "technique", "precision", "axis", "stride", "offset", "speedup"),
    [
        (11, "exact", "fp32", None, 1, 0, 1.0),
        (12, "exact", "fp16", None, 1, 0, 1.5),
        (121, "perforation", "fp32", "col", 2, 0, 2.0),
        (122, "perforation", "fp32", "col", 2, 1, 2.0),
        (123, "perforation", "fp32", "row", 2, 0, 2.0),
        (124, "perforation", "fp32", "row", 2, 1, 2.0),
        (125, "perforation", "fp32", "col", 3, 0, 1.5),
        (130, "perforation", "fp32", "row", 3, 2, 1.5),
        (131, "perforation", "fp32", "col", 4, 0, 4 / 3),
        (138, "perforation", "fp32", "row", 4, 3, 4 / 3),
        (151, "perforation", "fp16", "col", 2, 0, 3.0),
        (160, "perforation", "fp16", "row", 3, 2, 2.25),
        (168, "perforation", "fp16", "row", 4, 3, 2.0),
        (231, "sampling", "fp32", None, 2, 0, 2.0),
        (235, "sampling", "fp32", None, 3, 2, 1.5),
        (239, "sampling", "fp32", None, 4, 3, 4 / 3),
        (261, "sampling", "fp16", None, 2, 0, 3.0),
        (269, "sampling", "fp16", None, 4, 3, 2.0),
    ],
)
def test_knob_fields(kid, technique, precision, axis, stride, offset, speedup):
    k = knobs.get(kid)
    assert (k.technique, k.precision, k.axis, k.stride, k.offset) == (
        technique, precision, axis, stride, offset)
    assert k.speedup == pytest.approx(speedup)


def test_fp16_twin_is_id_minus_30():
    for kid in [*range(151, 169), *range(261, 270)]:
        twin = knobs.get(knobs.get(kid).fp32_twin)
        k = knobs.get(kid)
        assert twin.id == kid - 30
        assert (twin.technique, twin.axis, twin.stride, twin.offset) == (
            k.technique, k.axis, k.stride, k.offset)
    assert knobs.get(12).fp32_twin == 11


@pytest.mark.parametrize("bad", [0, 13, 120, 139, 150, 169, 230, 240, 270, "x", None])
def test_unknown_ids_name_the_valid_ranges(bad):
    with pytest.raises(ValueError, match=r"knob.*121-138"):
        knobs.get(bad)


def test_non_conv_layers_take_only_exact_knobs():
    for kind in ("group_conv", "linear", "other"):
        assert knobs.applicable_knobs(kind) == [11, 12]
    assert len(knobs.applicable_knobs("conv", (32, 32))) == 56


def test_perforation_that_skips_nothing_or_everything_is_not_applicable():
    # Ho = 1: stride 2 offset 0 would skip the only row; offset 1 skips nothing.
    assert not knobs.applicable(123, "conv", (1, 8))
    assert not knobs.applicable(124, "conv", (1, 8))
    # rows are fine, but a 1-column map cannot be column-perforated
    assert knobs.applicable(123, "conv", (8, 1))
    assert not knobs.applicable(121, "conv", (8, 1))
    # Ho = 2: offset 1 skips row 1 (copied from row 0), offset 0 skips row 0.
    assert knobs.applicable(123, "conv", (2, 2)) and knobs.applicable(124, "conv", (2, 2))
    # stride 4, offset 3 on Ho = 3 skips nothing.
    assert not knobs.applicable(138, "conv", (3, 3))
    assert knobs.applicable(137, "conv", (3, 3))
    # sampling applies to every regular conv
    assert knobs.applicable(239, "conv", (1, 1))


def test_skip_counts_follow_the_reference_formula():
    for n in range(1, 20):
        for s in (2, 3, 4):
            for o in range(s):
                brute = sum(1 for r in range(n) if r >= o and (r - o) % s == 0)
                assert knobs.skipped_count(n, s, o) == brute
                computed = n - (n - o) // s - (1 if (n - o) % s else 0) if n > o else n
                assert n - knobs.skipped_count(n, s, o) == computed


@pytest.mark.parametrize("kernel", [(1, 1, 1), (3, 1, 1), (3, 3, 3), (1, 20, 8), (64, 10, 4),
                                    (5, 3, 1)])
def test_work_speedup_counts_what_a_knob_computes(kernel):
    """Perforation: all rows (columns) over the computed ones, counted by the reference rule;
    sampling: all filter elements over the ones reference.sampling_mask keeps; fp16 twins
    the same, exact 1."""
    from mobiprox_lab.reference import sampling_mask

    red = kernel[0] * kernel[1] * kernel[2]
    for h, w in [(1, 2), (13, 33), (2, 13), (82, 33), (4, 4), (5, 7)]:
        for kid in knobs.CONV_KNOB_IDS:
            knob = knobs.get(kid)
            if knob.technique == "exact":
                assert knobs.work_speedup(kid, (h, w), red) == 1.0
                continue
            if knob.technique == "sampling":
                kept = int(sampling_mask((1, *kernel), knob.stride, knob.offset).sum())
                expected = red / kept if kept else None
            else:
                n = h if knob.axis == "row" else w
                kept = sum(1 for r in range(n) if not (r >= knob.offset
                                                      and (r - knob.offset) % knob.stride == 0))
                expected = n / kept if kept else None
            if expected is None:
                with pytest.raises(ValueError, match=f"knob: {kid} leaves nothing computed"):
                    knobs.work_speedup(kid, (h, w), red)
            else:
                assert knobs.work_speedup(kid, (h, w), red) == pytest.approx(expected)
    assert knobs.work_speedup(122, (32, 13), 2560) == pytest.approx(13 / 7)
    assert knobs.work_speedup(152, (32, 13), 2560) == knobs.work_speedup(122, (32, 13), 2560)
    with pytest.raises(ValueError, match="reduction: expected an int >= 1"):
        knobs.work_speedup(231, (4, 4), 0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="layer_kind"):
        knobs.applicable(121, "depthwise", (4, 4))
    with pytest.raises(ValueError, match="out_hw"):
        knobs.applicable(121, "conv")
    with pytest.raises(ValueError, match="out_hw"):
        knobs.applicable(121, "conv", (0, 4))
