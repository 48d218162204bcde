"""The kernels' worker threads: they take part in a call's tasks and, between calls, wait
for the next one by spinning for a short while before they sleep.

Why spin: a kernel call on several threads hands its tasks to sleeping threads and
waits for them. On this project's 2-vCPU VM waking a sleeping thread took a median
50-70 us (a ``ThreadPoolExecutor`` submit + result: 95 us), a large share of a small
layer (HAR's 4x4 depthwise convs take 0.3-0.8 ms at batch 64 on two threads). torch's
OpenMP threads spin after each parallel region for the same reason. The spin is a loop
of reads (with the CPU's spin-wait hint) in ``nogil`` Numba code, so it holds neither
the GIL nor the calling thread's core; it ends after :func:`get_spin_seconds` (default
``SPIN_SECONDS``; 0: sleep at once), and the worker then sleeps on a condition until the
next call. The calling thread waits for its helpers the same way.

Measured on that VM (HAR dw7, 512 channels on 4x4, batch 64, two threads): the helper's
first task started a median 55-88 us into the call with the spin, 79-101 us without;
what is left is mostly the GIL, which the helper must take from the calling thread.
Against the ``ThreadPoolExecutor`` this pool replaced, side by side with the order
rotated, the HAR depthwise layers' geomean time went down 7 % and 13 % in two runs, and
whole models at batch 64 (alternated 30 times) by 1-5 %. ``benchmarks/threads.py``
times spinning against sleeping.

Loop jobs (:meth:`Pool.run_loop`) go further: the task loop itself is Numba code
(``_loops``), tasks are claimed with an atomic add, and the calling thread announces the
job from inside that code, so a helper never waits for the GIL during a call (a thread
that blocks on the GIL sleeps in the kernel, and waking it cost ~50 us here). A helper
leaves the job only once it is back in its spin, with the GIL released: had it left
inside the loop, the caller would return to Python while the helper took the GIL back,
and block on it (KWS at batch 1, row s2, whose calls mix both kinds of job: 3.5 % slower
that way, 1 % faster this way). HAR's depthwise layers at batch 64 on two threads, side
by side with the Python task loop, 4 interleaved rounds: geomean time 0.85x and 0.88x in
two runs (0.89x and 0.92x torch's, against 1.05x); batch 8: 0.95x; batch 1 runs on one
thread either way.

One call at a time uses the workers: a call made while they are busy with another
(another Python thread, or a task that calls a kernel) runs on its own thread alone.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
from collections.abc import Callable

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

SPIN_SECONDS = 2e-4  # how long an idle worker (and a joining caller) spins before sleeping
_CALIBRATION_READS = 200_000

_GENERATION, _ACTIVE = 0, 1  # the pool's shared int64 state: job counter, helpers at work


@intrinsic
def _volatile_read(typingctx, flags, index):
    """``flags[index]`` read from memory on every call (an int64 array): the loops below
    wait for another thread's write, which a plain read, hoisted out of the loop, would
    never see."""
    if not (isinstance(flags, types.Array) and flags.dtype == types.int64
            and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        load = builder.load(builder.gep(array.data, [args[1]]))
        load.volatile = True
        if "x86" in builder.module.triple:  # a spin-wait hint: yields the core's resources
            builder.call(builder.module.declare_intrinsic(
                "llvm.x86.sse2.pause", fnty=ir.FunctionType(ir.VoidType(), [])), [])
        return load

    return types.int64(flags, index), codegen


@intrinsic
def fetch_add(typingctx, flags, index, value):
    """Add ``value`` to ``flags[index]`` (an int64 array) atomically, sequentially
    consistent; returns the value before. Several threads may call it on one element."""
    if not (isinstance(flags, types.Array) and flags.dtype == types.int64
            and isinstance(index, types.Integer) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        i = context.cast(builder, args[1], signature.args[1], types.int64)
        v = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", builder.gep(array.data, [i]), v, "seq_cst")

    return types.int64(flags, index, value), codegen


@njit(cache=True, nogil=True)
def enter_loop(state, job_flags, helper):
    """First call of a loop job's function (:meth:`Pool.run_loop`): the calling thread
    announces an open job (bumps the generation, from nogil code: the helpers that see it
    will find the GIL free), and returns True; a helper (registered as active before the
    call) returns True if the job is still open, else False."""
    if not helper:
        if _volatile_read(job_flags, 0) != 0:
            fetch_add(state, _GENERATION, 1)
        return True
    return _volatile_read(job_flags, 0) != 0


@njit(cache=True, nogil=True)
def fetch_flag_close(job_flags):
    """Close a loop job to helpers that have not joined yet (see :func:`enter_loop`)."""
    fetch_add(job_flags, 0, -_volatile_read(job_flags, 0))


@njit(cache=True)
def _add(state, index, value):
    """``state[index] += value`` atomically, the GIL held (Numba code elsewhere may change
    the same element at the same time)."""
    fetch_add(state, index, value)


@njit(cache=True, nogil=True)
def _leave_and_spin(state, value, max_reads):
    """A helper back from a loop job: unregister (the GIL already released, so the caller,
    which waits for that, finds it free), then :func:`_spin_while_equal` on the
    generation."""
    fetch_add(state, _ACTIVE, -1)
    return _spin_while_equal(state, _GENERATION, value, max_reads)


@njit(cache=True, nogil=True)
def _spin_while_equal(flags, index, value, max_reads):
    """Read ``flags[index]`` up to ``max_reads`` times; True as soon as it differs from
    ``value``, False if it never did."""
    for _ in range(max_reads):
        if _volatile_read(flags, index) != value:
            return True
    return False


@njit(cache=True, nogil=True)
def _spin_until_equal(flags, index, value, max_reads):
    """Read ``flags[index]`` up to ``max_reads`` times; True as soon as it equals ``value``."""
    for _ in range(max_reads):
        if _volatile_read(flags, index) == value:
            return True
    return False


_spin_seconds = SPIN_SECONDS


def get_spin_seconds() -> float:
    """How long an idle kernel worker spins for the next call before it sleeps, in seconds."""
    return _spin_seconds


def set_spin_seconds(seconds: float) -> None:
    """Let idle kernel workers spin ``seconds`` (0 <= seconds <= 0.1) for the next call
    before they sleep; 0: they sleep at once (no CPU spent between calls, ~50-100 us more
    per multi-threaded call here). Takes effect from the next call."""
    global _spin_seconds
    if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
            or not 0 <= seconds <= 0.1):
        raise ValueError(f"seconds: expected a number in [0, 0.1], got {seconds!r}")
    _spin_seconds = float(seconds)


class _Job:
    """One call's tasks: ``task(i, scratch)`` for ``i < n_tasks``, handed out by a shared
    counter; ``seats`` helpers may join the calling thread."""

    def __init__(self, task: Callable[[int, dict], None], n_tasks: int, seats: int):
        self.task, self.n_tasks, self.seats = task, n_tasks, seats
        self.counter = itertools.count()  # next() is atomic under the GIL
        self.helper_scratches: list[dict] = []
        self.error: BaseException | None = None

    def work(self) -> dict:
        """Run tasks until none is left, with a scratch dict of this thread's own; returns
        that dict."""
        scratch: dict = {}
        try:
            while (i := next(self.counter)) < self.n_tasks:
                self.task(i, scratch)
        except BaseException as e:  # re-raised by the calling thread, after the join
            if self.error is None:
                self.error = e
            for _ in itertools.takewhile(lambda i: i < self.n_tasks, self.counter):
                pass  # leave nothing for the others: the call fails as soon as it can
        return scratch


class _LoopJob:
    """One call whose tasks are handed out inside Numba code: ``loop(state, job_flags,
    helper, counter, n_tasks, *args)`` runs on every thread that takes part, starts with
    :func:`enter_loop` (and returns at once if it says False), then claims tasks
    ``i < n_tasks`` with :func:`fetch_add` on ``counter[0]``. ``job_flags[0]``: 1 while
    helpers may join."""

    def __init__(self, loop, n_tasks: int, args: tuple, seats: int):
        self.loop, self.args, self.seats = loop, (n_tasks, *args), seats
        self.counter = np.zeros(1, np.int64)
        self.flags = np.ones(1, np.int64)
        self.error: BaseException | None = None

    def call(self, state, helper: bool) -> None:
        """Run ``loop`` on this thread; a helper's error is kept for the caller."""
        try:
            self.loop(state, self.flags, helper, self.counter, *self.args)
        except BaseException as e:
            if not helper:
                raise
            if self.error is None:
                self.error = e


class Pool:
    """Worker threads shared by every kernel call of the process (see the module doc)."""

    def __init__(self):
        self._state = np.zeros(2, np.int64)  # [_GENERATION], [_ACTIVE]
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # workers sleep here between calls
        self._done = threading.Condition(self._lock)  # a caller sleeps here for its helpers
        self._busy = threading.Lock()  # held by the one call using the workers
        self._job: _Job | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._sleeping = 0  # workers waiting on the condition
        self._reads_per_s = self._calibrate()

    def _calibrate(self) -> float:
        """Reads of the shared state per second in a spin loop on this machine."""
        _spin_while_equal(self._state, _GENERATION, 0, 1)  # compiled / loaded first
        start = time.perf_counter()
        _spin_while_equal(self._state, _GENERATION, 0, _CALIBRATION_READS)
        return _CALIBRATION_READS / max(time.perf_counter() - start, 1e-9)

    def _spin_reads(self) -> int:
        return int(_spin_seconds * self._reads_per_s)

    def run(self, task: Callable[[int, dict], None], n_tasks: int, workers: int) -> list[dict]:
        """``task(i, scratch)`` for every ``i < n_tasks`` on the calling thread and up to
        ``workers - 1`` workers; the scratch dicts of the threads that took part (the
        calling thread's first). An exception of any task is raised here, once every
        thread has stopped."""
        if workers <= 1 or not self._busy.acquire(blocking=False):
            return self.alone(task, n_tasks)
        try:
            self._grow(workers - 1)
            job = _Job(task, n_tasks, workers - 1)
            with self._lock:
                self._job = job
                _add(self._state, _GENERATION, 1)
                self._wake.notify_all()
            scratch = job.work()  # the calling thread's share; then no helper may join any more
            with self._lock:
                job.seats = 0
                self._job = None
            self._join()
        finally:
            self._busy.release()
        if job.error is not None:
            raise job.error
        return [scratch, *job.helper_scratches]

    def run_loop(self, loop, n_tasks: int, args: tuple, workers: int) -> None:
        """``loop(state, job_flags, helper, counter, n_tasks, *args)`` (a Numba function, see
        :class:`_LoopJob`) on the calling thread and up to ``min(workers, n_tasks) - 1``
        workers (a helper woken for nothing would hold the GIL when the caller returns).

        Unlike :meth:`run`, no thread takes the GIL between the job's tasks: the calling
        thread announces the job from inside ``loop``, so a spinning helper finds the GIL
        free when it wakes, and a helper leaves the job once back in its spin, with the GIL
        released, so the caller returns to a free GIL. An error of ``loop`` (on any thread)
        is raised here once every thread has left the job."""
        workers = min(workers, n_tasks)
        job = _LoopJob(loop, n_tasks, args, workers - 1)
        if workers <= 1 or not self._busy.acquire(blocking=False):
            job.flags[0] = 0  # closed: nobody is told
            job.call(self._state, False)
            return
        try:
            self._grow(workers - 1)
            with self._lock:
                self._job = job
                sleeping = self._sleeping
            if sleeping:  # a sleeping worker needs the condition, not just the generation
                with self._lock:
                    _add(self._state, _GENERATION, 1)
                    self._wake.notify_all()
            try:
                job.call(self._state, False)
            finally:
                fetch_flag_close(job.flags)
                while not _spin_until_equal(self._state, _ACTIVE, 0, self._spin_reads() + 1):
                    time.sleep(0)  # helpers are inside ``loop``, finishing a claimed task
                with self._lock:
                    job.seats = 0
                    self._job = None
        finally:
            self._busy.release()
        if job.error is not None:
            raise job.error

    @staticmethod
    def alone(task: Callable[[int, dict], None], n_tasks: int) -> list[dict]:
        """:meth:`run` on the calling thread only."""
        job = _Job(task, n_tasks, 0)
        scratch = job.work()
        if job.error is not None:
            raise job.error
        return [scratch]

    def _join(self) -> None:
        """Wait until no worker is inside a task: spin, then sleep."""
        if _spin_until_equal(self._state, _ACTIVE, 0, self._spin_reads()):
            return
        with self._lock:
            while self._state[_ACTIVE] != 0:
                # a loop job's late helper unregisters without notifying: look again soon
                self._done.wait(1e-3)

    def _grow(self, size: int) -> None:
        while len(self._threads) < size:
            thread = threading.Thread(target=self._serve, name="mobiprox-kernels",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self) -> None:
        """A worker's life: wait for the next job, take a seat in it, work, repeat."""
        with self._lock:
            seen = int(self._state[_GENERATION])
        leaving = False  # back from a loop job, still registered in it
        while True:
            if leaving:
                leaving = False
                woken = _leave_and_spin(self._state, seen, self._spin_reads())
            else:
                woken = _spin_while_equal(self._state, _GENERATION, seen, self._spin_reads())
            if not woken:
                with self._lock:
                    self._sleeping += 1
                    while self._state[_GENERATION] == seen and not self._closed:
                        self._wake.wait()
                    self._sleeping -= 1
            with self._lock:
                if self._closed:
                    return
                seen = int(self._state[_GENERATION])
                job = self._job
                if job is None or job.seats == 0:
                    continue
                job.seats -= 1
                _add(self._state, _ACTIVE, 1)
            if isinstance(job, _LoopJob):
                leaving = True  # unregistered in the next spin, the GIL released
                job.call(self._state, True)
                continue
            try:
                job.helper_scratches.append(job.work())
            finally:
                with self._lock:
                    _add(self._state, _ACTIVE, -1)
                    if self._state[_ACTIVE] == 0:
                        self._done.notify_all()

    def close(self) -> None:
        """Stop the workers once they are idle (at exit)."""
        with self._lock:
            self._closed = True
            _add(self._state, _GENERATION, 1)
            self._wake.notify_all()


_pool: Pool | None = None
_pool_lock = threading.Lock()


def shared_pool() -> Pool:
    """The process's pool, started on first use (and afresh in a forked child)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = Pool()
        return _pool


def _close() -> None:
    if _pool is not None:
        _pool.close()


def _forget_after_fork() -> None:  # the child has none of the parent's threads
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


atexit.register(_close)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
