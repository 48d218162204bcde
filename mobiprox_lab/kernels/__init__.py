"""Numba-JIT approximate tensor kernels: exact / perforated / filter-sampled conv2d, fp16, linear.

Knob semantics are HPVM / ApproxTuner's, described in :mod:`mobiprox_lab.knobs` (ids from
:mod:`mobiprox_lab.knobs`). Arrays in, arrays out: float32 NumPy only, no torch.

Weights a knob repacks (filter sampling's kept elements, fp16's rounding) are packed on
every call, except read-only weights (the array and all it views): their packing per knob
is built once and kept while they live, as a deployed runtime keeps its weights. The
runtime passes read-only copies.

``conv2d(x, w, b=None, *, stride=1, padding=0, groups=1, knob=11, timings=None)``
    x (N, C, H, W), w (K, C // groups, KH, KW), b (K,) -> (N, K, Ho, Wo).
``PreparedConv2d(w, b=None, *, stride=1, padding=0, groups=1, relu=False)``
    a layer's fixed operands: ``layer(x, knob)`` is ``conv2d(x, w, b, ..., knob=knob,
    relu=relu)`` bit for bit, with each call's checks, path choice and packed operands
    resolved once per input shape, knob and thread count (read-only weights; what the
    runtime runs).
``linear(x, w, b=None, *, knob=11)``
    x (N, F), w (O, F), b (O,) -> (N, O).
``conv2d_breakdown(...)``
    ``conv2d`` plus a dict of seconds per phase (``PHASES``).
``pool2d(x, mode, kernel, stride, padding=(0, 0), *, count_include_pad=True)``
    max / average pooling (N, C, H, W) -> (N, C, Ho, Wo), like torch's (floor mode).
``global_pool2d(x, mode)``
    max / average of each whole plane (N, C, H, W) -> (N, C, 1, 1).
``conv_output_hw(hw, kernel, stride=1, padding=0)``
    (Ho, Wo) of a convolution / pooling window over an (H, W) map.
``set_num_threads(n)`` / ``get_num_threads()`` / ``using_threads(n)``
    threads per call (default: Numba's thread count); the last sets it for a block.
``set_numba_task_loops(enabled)`` / ``get_numba_task_loops()``
    whether calls on several threads run their task loop in Numba (default) or Python.
``set_direct_calls(enabled)`` / ``get_direct_calls()``
    whether untimed calls on one thread (every call of under 4 MFLOP, so most of a batch-1
    inference) run their kernel directly where their path has one kernel (depthwise, 1x1
    tiles and GEMMs; default) or through the task machinery.
``set_register_tiles(enabled)`` / ``get_register_tiles()``
    whether exact, stride-2 sampled and stride-2 perforated 1x1 convs run as register
    tiles (the perforated ones writing the fill themselves; default on AVX-512 CPUs) or
    through a BLAS GEMM (and a fill pass).
``set_streaming_stores(min_bytes)`` / ``get_streaming_stores()``
    the output size (bytes) from which those register tiles store non-temporally, past the
    caches and without reading each output line first (None: never).
``set_spin_seconds(s)`` / ``get_spin_seconds()``
    how long idle worker threads spin for the next call before they sleep (default 0.2 ms,
    like OpenMP runtimes; 0: sleep at once, no CPU spent between calls).
``blas_library()``
    which BLAS the GEMMs call: NumPy's bundled OpenBLAS where its wheel has one, else the
    BLAS of Numba's ``np.dot`` (SciPy's).
``single_threaded_blas()``
    context manager: NumPy's / SciPy's BLAS on one thread inside the block (re-entrant);
    what each kernel call does around its workers, held once for a whole inference.
``path_thresholds()`` / ``set_path_thresholds(values)`` / ``calibrate_path_thresholds()``
    the machine-dependent path choices in force (e.g. when a row-perforated 1x1 layer
    runs one GEMM per kept row), put some in force, time both paths here and return the
    thresholds that suit this machine (``profiler.kernel_paths`` caches them per machine).
``path_choices()`` / ``set_path_choices(choices)``
    the per-shape choices in force ahead of those thresholds (the calibration's
    ``"choices"``: the faster path of each shape it timed), and putting some in force.
``aligned_empty(shape, align=64)`` / ``to_half(a)``
    an uninitialised float32 array on a 64-byte boundary, as ``conv2d`` returns its outputs,
    and a float32 copy of ``a`` rounded to half precision, so aligned. The register tiles
    read inputs so aligned faster: HAR's 32 -> 64 layer on 32x32 maps (batch 64, one
    thread) took 3.1 ms exact and 1.9 ms row-perforated on an aligned input, 3.8-4.0 and
    2.7-2.8 ms on one 16, 32 or 48 bytes off, where each 64-byte load spans two cache lines
    (Zen 4; NumPy's large arrays start 16 bytes into a page).
``retain_freed_memory()`` / ``allocator_policy()``
    make glibc keep freed memory for reuse (no page faults from buffers given back to the
    kernel) for the rest of the process, as every timing does; the policy in force.
"""

from ._blas import blas_library
from ._calibrate import (
    calibrate_path_thresholds,
    path_choices,
    path_thresholds,
    set_path_choices,
    set_path_thresholds,
)
from ._conv import (
    PHASES,
    conv2d,
    conv2d_breakdown,
    get_direct_calls,
    get_numba_task_loops,
    get_register_tiles,
    get_streaming_stores,
    set_direct_calls,
    set_numba_task_loops,
    set_register_tiles,
    set_streaming_stores,
)
from ._half import to_half
from ._linear import linear
from ._memory import aligned_empty, allocator_policy, retain_freed_memory
from ._pool import get_spin_seconds, set_spin_seconds
from ._pooling import global_pool2d, pool2d
from ._prepared import PreparedConv2d
from ._threads import get_num_threads, set_num_threads, single_threaded_blas, using_threads
from ._validate import conv_output_hw

__all__ = ["PHASES", "PreparedConv2d", "aligned_empty", "allocator_policy", "blas_library",
           "calibrate_path_thresholds", "conv2d", "conv2d_breakdown", "conv_output_hw",
           "get_direct_calls", "get_num_threads", "get_numba_task_loops", "get_register_tiles",
           "get_spin_seconds", "get_streaming_stores", "global_pool2d", "linear",
           "path_choices", "path_thresholds", "pool2d", "retain_freed_memory",
           "set_direct_calls", "set_num_threads", "set_numba_task_loops", "set_path_choices",
           "set_path_thresholds", "set_register_tiles", "set_spin_seconds",
           "set_streaming_stores", "single_threaded_blas", "to_half", "using_threads"]
