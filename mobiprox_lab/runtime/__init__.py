"""``ApproxModel``: run a trained torch CNN layer by layer under a per-operator knob configuration.

Modules: ``graph`` (torch.fx tracing into operators, FLOPs, applicable knobs), ``steps``
(fused execution steps as closures, per backend), ``model`` (:class:`ApproxModel`, its
configurations, runs and partial runs). Every public name is re-exported here.

The network is read generically with ``torch.fx``: any module built of ``Conv2d`` (any
groups), ``Linear``, ``BatchNorm1d/2d``, ``ReLU``, ``MaxPool2d``, ``AvgPool2d``,
``AdaptiveAvgPool2d``, ``Flatten`` and residual ``add`` (modules or their functional forms)
is supported; ``Dropout`` / ``Identity`` are dropped (identity at inference). Anything else
raises ``ValueError`` naming the operator.

Operators, knobs and what is tunable
    ``am.ops`` has one row per operator in execution order (see :class:`ApproxModel`).
    Regular convolutions accept every applicable knob (``knobs.applicable``); depthwise /
    grouped convolutions, linear layers, batch norm, ReLU, pooling and add accept 11 / 12
    (fp16, as in ApproxTuner). ``flatten`` moves no arithmetic, so it accepts only 11.
    ``am.tunable_ops`` therefore lists every op that computes (ApproxTuner's choice); tuners
    that want a smaller space can restrict themselves to ``am.op_names(kind="conv")``.

Batch-norm folding (done once, in ``__init__``)
    A batch norm whose input is a convolution (or linear layer) used by nothing else is
    folded into it: ``w' = w * g``, ``b' = (b - mean) * g + beta`` with
    ``g = gamma / sqrt(var + eps)``, per output channel. This is exact under every knob:
    perforation fills a skipped row with a copy or the mean of its neighbours (weights
    summing to 1), which commutes with a per-channel affine map; filter sampling zeroes and
    rescales weights of each filter, which commutes with scaling the filter by ``g``; bias
    is added after interpolation either way. The BN row stays in ``ops`` (``folded=True``,
    ``fused_into`` = the conv) for the cost model; knob 12 on a folded BN rounds the
    conv+BN output to half. (Knob 12 on the conv itself rounds the *folded* weights and
    the conv+BN output: the runtime's fp16 semantics are those of the folded network.)
    A ReLU right after such a step is fused into it as well (``fused_into``); knob 12 on
    a ReLU rounds its output to half (identical to rounding its input).

Backends
    ``"numba"``: :mod:`mobiprox_lab.kernels` for convolutions / linear layers, NumPy for
    the rest; arrays end to end. ``"reference"``: :mod:`mobiprox_lab.reference` (PyTorch
    simulation) on torch tensors, for fast accuracy evaluation on large batches.

Switching configuration
    A configuration is held as a tuple of knob ids, one per op. ``set_config`` validates a
    mapping (measured ~10 us for a few entries, ~40 us for all 84 ops of the HAR MobileNet)
    or takes a knob tuple from ``prepare_config`` as is (measured 0.4-0.8 us); nothing is
    rebuilt or recompiled: each execution step is a closure prepared at construction that
    reads its knobs from the tuple at call time. Knobs not used before are JIT-warmed on a
    tiny input the first time a configuration using them is set or prepared.
"""

from .model import BACKENDS, ApproxModel, RunState, softmax
from .steps import POOL_KERNEL_MIN_SIZE

__all__ = ["BACKENDS", "POOL_KERNEL_MIN_SIZE", "ApproxModel", "RunState", "softmax"]
