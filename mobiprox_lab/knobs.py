"""The approximation knob catalogue (HPVM / ApproxTuner ids) and per-layer applicability.

Semantics are those of HPVM / ApproxTuner's approximation knobs: ids 11 and 12 are
exact fp32 / fp16; 121-138 perforate output columns or rows at stride 2-4;
231-239 sample (skip) filter elements at stride 2-4; 151-168 and 261-269 are the
same in half precision. This module only describes knobs; it computes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Technique = Literal["exact", "perforation", "sampling"]
Precision = Literal["fp32", "fp16"]
Axis = Literal["row", "col"]

EXACT = 11
FP16 = 12
LAYER_KINDS = ("conv", "group_conv", "linear", "other")
FP16_FACTOR = 1.5  # nominal speedup credited to half precision
VALID_RANGES = "11, 12, 121-138, 151-168, 231-239, 261-269"


@dataclass(frozen=True)
class Knob:
    """One approximation choice for one operator.

    ``stride`` is the perforation / sampling stride ``s`` (1 for exact knobs),
    ``offset`` the first skipped row, column or filter element, and ``speedup``
    the nominal speedup of the linear cost model (s / (s - 1), x1.5 for fp16).
    """

    id: int
    technique: Technique
    precision: Precision
    axis: Axis | None
    stride: int
    offset: int
    speedup: float

    @property
    def is_fp16(self) -> bool:
        return self.precision == "fp16"

    @property
    def fp32_twin(self) -> int:
        """The fp32 knob with the same technique, stride and offset (12 -> 11, 151 -> 121)."""
        if self.id == FP16:
            return EXACT
        return self.id - 30 if self.is_fp16 else self.id

    def describe(self) -> str:
        """A short human-readable label, e.g. ``'perf row s2 o1 fp16'``."""
        if self.technique == "exact":
            return f"exact {self.precision}"
        name = "perf " + self.axis if self.technique == "perforation" else "samp"
        return f"{name} s{self.stride} o{self.offset} {self.precision}"


def _nominal(stride: int, precision: Precision) -> float:
    base = 1.0 if stride == 1 else stride / (stride - 1)
    return base * (FP16_FACTOR if precision == "fp16" else 1.0)


def _build() -> dict[int, Knob]:
    table: dict[int, Knob] = {
        EXACT: Knob(EXACT, "exact", "fp32", None, 1, 0, 1.0),
        FP16: Knob(FP16, "exact", "fp16", None, 1, 0, FP16_FACTOR),
    }
    for base, precision in ((121, "fp32"), (151, "fp16")):
        kid = base
        for stride in (2, 3, 4):
            for axis in ("col", "row"):
                for offset in range(stride):
                    table[kid] = Knob(kid, "perforation", precision, axis, stride, offset,
                                      _nominal(stride, precision))
                    kid += 1
    for base, precision in ((231, "fp32"), (261, "fp16")):
        kid = base
        for stride in (2, 3, 4):
            for offset in range(stride):
                table[kid] = Knob(kid, "sampling", precision, None, stride, offset,
                                  _nominal(stride, precision))
                kid += 1
    return table


KNOBS: dict[int, Knob] = _build()
CONV_KNOB_IDS: tuple[int, ...] = tuple(sorted(KNOBS))
BASIC_KNOB_IDS: tuple[int, ...] = (EXACT, FP16)


def get(knob_id: int) -> Knob:
    """Return the :class:`Knob` for ``knob_id``; unknown ids raise ``ValueError``."""
    try:
        return KNOBS[int(knob_id)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"knob: unknown knob id {knob_id!r}; valid ids are {VALID_RANGES}"
        ) from None


def skipped_count(n: int, stride: int, offset: int) -> int:
    """How many of ``n`` positions a stride-``stride`` pattern starting at ``offset`` skips."""
    if n <= offset:
        return 0
    return (n - offset) // stride + (1 if (n - offset) % stride else 0)


def perforation_skips(knob_id: int, out_hw: tuple[int, int]) -> tuple[int, int]:
    """(skipped, computed) output rows or columns of a perforation knob on an ``out_hw`` map."""
    knob = get(knob_id)
    if knob.technique != "perforation":
        raise ValueError(f"knob: {knob_id} is not a perforation knob")
    n = int(out_hw[0] if knob.axis == "row" else out_hw[1])
    skipped = skipped_count(n, knob.stride, knob.offset)
    return skipped, n - skipped


def work_speedup(knob_id: int, out_hw, reduction: int) -> float:
    """Exact multiply-adds over the knob's on a convolution with an ``out_hw`` (Ho, Wo) map
    and ``reduction`` (C*KH*KW) weights per filter: the speedup the knob would reach if
    time followed work. It is the nominal speedup where the stride divides the skipped
    axis; otherwise the shape decides (stride-2 column perforation at offset 1 computes 7
    of 13 columns: 1.86x; at offset 0 it computes 16 of 33: 2.06x). Precision does not
    change the work (an fp16 knob gives its fp32 twin's), and perforation's fill is not
    counted. A knob that leaves nothing computed is refused, naming ``knob``.
    """
    knob = get(knob_id)
    h, w = _check_out_hw(out_hw)
    reduction = int(reduction)
    if reduction < 1:
        raise ValueError(f"reduction: expected an int >= 1 (C*KH*KW), got {reduction!r}")
    if knob.technique == "perforation":
        skipped, computed = perforation_skips(knob_id, (h, w))
        total = skipped + computed
    elif knob.technique == "sampling":
        total = reduction
        computed = reduction - skipped_count(reduction, knob.stride, knob.offset)
    else:
        return 1.0
    if computed < 1:
        raise ValueError(f"knob: {knob_id} leaves nothing computed on a {h}x{w} map with "
                         f"{reduction} weights per filter")
    return total / computed


def _check_out_hw(out_hw) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in out_hw)
    except (TypeError, ValueError):
        h = w = 0
    if h < 1 or w < 1:
        raise ValueError(f"out_hw: expected a pair of positive ints (Ho, Wo), got {out_hw!r}")
    return h, w


def applicable(knob_id: int, layer_kind: str, out_hw=None) -> bool:
    """Whether ``knob_id`` may be applied to a layer of ``layer_kind`` with output ``out_hw``.

    ``layer_kind`` is one of ``"conv"`` (groups == 1), ``"group_conv"`` (grouped or
    depthwise), ``"linear"`` or ``"other"`` (batch norm, activation, pooling...).
    Regular convolutions accept all 56 ids, except a perforation that would skip
    no output row (column) of an ``out_hw = (Ho, Wo)`` map or leave none computed.
    Every other kind accepts only 11 and 12. ``out_hw`` is required for ``"conv"``.
    """
    knob = get(knob_id)
    if layer_kind not in LAYER_KINDS:
        raise ValueError(f"layer_kind: expected one of {LAYER_KINDS}, got {layer_kind!r}")
    if knob.technique == "exact":
        return True
    if layer_kind != "conv":
        return False
    if out_hw is None:
        raise ValueError("out_hw: required for layer_kind 'conv' (the output (Ho, Wo))")
    h, w = _check_out_hw(out_hw)
    if knob.technique == "perforation":
        skipped, computed = perforation_skips(knob_id, (h, w))
        return skipped > 0 and computed > 0
    return True


def applicable_knobs(layer_kind: str, out_hw=None) -> list[int]:
    """All knob ids applicable to a layer, in catalogue order (11 first)."""
    return [k for k in CONV_KNOB_IDS if applicable(k, layer_kind, out_hw)]


def nominal_speedup(knob_id: int) -> float:
    """The linear cost model's speedup of a knob."""
    return get(knob_id).speedup
