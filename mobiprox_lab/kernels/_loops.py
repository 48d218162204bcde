"""Task loops in Numba for the pool's loop jobs (``_pool.Pool.run_loop``).

Each function runs on every thread that takes part in one kernel call: it claims tasks
(blocks of the output) from a shared counter with an atomic add and computes them, with no
return to Python between tasks, so no thread takes the GIL during the call. Signature:
``(state, job_flags, helper, counter, ...)``, the first four as ``run_loop`` passes them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._direct import depthwise_nhwc, depthwise_phases
from ._pool import enter_loop, fetch_add, leave_loop


@njit(cache=True, nogil=True)
def depthwise_phases_loop(state, job_flags, helper, counter, n_tasks, nb, kb, kblocks,
                          buffer_size, x, w, out, sh, sw, ph, pw, bias, has_bias, relu):
    """``_direct.depthwise_phases`` on tasks ``i < n_tasks``: samples ``b*nb ..`` x
    channels ``j*kb ..`` with ``b, j = divmod(i, kblocks)``."""
    if not enter_loop(state, job_flags, helper):
        return
    n, k = out.shape[0], out.shape[1]
    buf = np.zeros(buffer_size, np.float32)
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        b, j = divmod(i, kblocks)
        depthwise_phases(x, w, out, b * nb, min(n, (b + 1) * nb), j * kb, min(k, (j + 1) * kb),
                         sh, sw, ph, pw, bias, has_bias, buf, relu)
    leave_loop(state, helper)


@njit(cache=True, nogil=True)
def depthwise_nhwc_loop(state, job_flags, helper, counter, n_tasks, nb, x, w, out, sh, sw,
                        ph, pw, bias, has_bias, fp16, relu):
    """``_direct.depthwise_nhwc`` on tasks ``i < n_tasks``: samples ``i*nb ..``."""
    if not enter_loop(state, job_flags, helper):
        return
    n = out.shape[0]
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        depthwise_nhwc(x, w, out, i * nb, min(n, (i + 1) * nb), sh, sw, ph, pw, bias,
                       has_bias, fp16, relu)
    leave_loop(state, helper)
