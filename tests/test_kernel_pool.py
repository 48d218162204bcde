"""The kernels' worker pool (mobiprox_lab.kernels._pool): every task runs once, results and
errors reach the caller, a call made while the workers are busy runs alone, the spin sees
another thread's write, and the spin setting is checked and honoured."""

from __future__ import annotations

import multiprocessing
import threading
import time

import numpy as np
import pytest
from numba import njit

from mobiprox_lab import kernels
from mobiprox_lab.kernels import _pool, _threads


@pytest.fixture(params=[0.0, 2e-4], ids=["sleep", "spin"])
def spin(request):
    before = kernels.get_spin_seconds()
    kernels.set_spin_seconds(request.param)
    yield request.param
    kernels.set_spin_seconds(before)


def _slow_task(log: list, seconds: float = 2e-4):
    def task(i: int, scratch: dict) -> None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:  # holds the GIL a little, like glue code
            pass
        scratch.setdefault("done", []).append(i)
        scratch["thread"] = threading.get_ident()
        log.append(i)
    return task


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("n_tasks", [1, 2, 7, 40])
def test_every_task_runs_once_and_scratches_come_back(workers, n_tasks, spin):
    log: list[int] = []
    for _ in range(3):  # the pool is reused call after call
        log.clear()
        scratches = _threads.run(_slow_task(log), n_tasks, workers)
        assert sorted(log) == list(range(n_tasks))
        assert 1 <= len(scratches) <= min(workers, n_tasks)
        done = [i for s in scratches for i in s.get("done", [])]
        assert sorted(done) == list(range(n_tasks))
        assert scratches[0].get("thread", threading.get_ident()) == threading.get_ident()


def test_two_workers_both_take_part_on_long_tasks(spin):
    log: list[int] = []
    # tasks that release the GIL (sleep) and last long enough for the helper to wake
    def task(i: int, scratch: dict) -> None:
        time.sleep(0.005)
        scratch["thread"] = threading.get_ident()
        log.append(i)
    scratches = _threads.run(task, 8, 2)
    assert sorted(log) == list(range(8))
    assert len({s["thread"] for s in scratches if "thread" in s}) == 2


@pytest.mark.parametrize("where", ["caller", "helper"])
def test_an_error_in_a_task_reaches_the_caller_after_the_others_stop(where, spin):
    caller = threading.get_ident()
    running = []

    def task(i: int, scratch: dict) -> None:
        mine = threading.get_ident() == caller
        if i >= 2 and mine == (where == "caller"):
            raise RuntimeError(f"task {i} failed")
        running.append(i)
        time.sleep(0.002)
        running.remove(i)

    with pytest.raises(RuntimeError, match="failed"):
        _threads.run(task, 50, 2)
    assert running == []  # no task still runs once the call has returned
    log: list[int] = []  # and the pool still works
    _threads.run(_slow_task(log), 6, 2)
    assert sorted(log) == list(range(6))


def test_a_call_made_inside_a_task_runs_alone():
    inner_threads: list[set] = []

    def inner(i: int, scratch: dict) -> None:
        scratch["thread"] = threading.get_ident()

    def outer(i: int, scratch: dict) -> None:
        got = _threads.run(inner, 4, 2)
        inner_threads.append({s["thread"] for s in got})
        time.sleep(0.001)

    _threads.run(outer, 6, 2)
    assert len(inner_threads) == 6
    assert all(len(t) == 1 for t in inner_threads)  # on the calling thread alone


def test_calls_from_two_python_threads_at_once_are_both_complete(spin):
    x = np.random.default_rng(0).standard_normal((16, 32, 16, 16)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((32, 1, 3, 3)).astype(np.float32)
    with kernels.using_threads(2):
        want = kernels.conv2d(x, w, padding=1, groups=32)
        results, errors = [], []

        def call() -> None:
            try:
                for _ in range(20):
                    results.append(kernels.conv2d(x, w, padding=1, groups=32))
            except BaseException as e:  # noqa: BLE001 - reported by the assertion below
                errors.append(e)

        others = [threading.Thread(target=call) for _ in range(2)]
        for t in others:
            t.start()
        call()
        for t in others:
            t.join()
    assert errors == []
    assert len(results) == 60
    for got in results:
        np.testing.assert_array_equal(got, want)


@njit(nogil=True)
def _claim_loop(state, job_flags, helper, counter, n_tasks, owner, spin_reads, fails=0):
    """A loop job for the tests: task ``i`` records who ran it (1 caller, 2 helper) in
    ``owner[i]``, after ``spin_reads`` reads of a flag (work that holds no GIL). ``fails``
    1 / 2: the calling thread / a helper raises on its first task instead."""
    if not _pool.enter_loop(state, job_flags, helper):
        return
    me = 2 if helper else 1
    while True:
        i = _pool.fetch_add(counter, 0, 1)
        if i >= n_tasks:
            break
        if fails == me:
            raise ValueError("task failed")
        _pool._spin_until_equal(job_flags, 0, -1, spin_reads)  # never true: just waits
        owner[i] += me


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("n_tasks", [0, 1, 2, 7, 40])
def test_a_loop_job_runs_every_task_once(workers, n_tasks, spin):
    pool = _pool.shared_pool()
    for _ in range(3):  # the pool is reused call after call, loop jobs or not
        owner = np.zeros(n_tasks, np.int64)
        pool.run_loop(_claim_loop, n_tasks, (owner, 100), workers)
        assert np.isin(owner, [1, 2]).all()  # each task once, by the caller or a helper
        log: list[int] = []
        _threads.run(_slow_task(log), 5, 2)
        assert sorted(log) == list(range(5))
    if workers == 1 or n_tasks == 1:  # a lone task wakes no helper
        assert (owner == 1).all()


def test_helpers_take_part_in_long_loop_jobs(spin):
    """Tasks long enough for a helper to wake (also from sleep): both threads run some."""
    owner = np.zeros(64, np.int64)
    _pool.shared_pool().run_loop(_claim_loop, 64, (owner, 200_000), 2)
    assert set(owner) == {1, 2}


@pytest.mark.parametrize("where", ["caller", "helper"])
def test_an_error_in_a_loop_job_reaches_the_caller_and_the_pool_goes_on(where, spin):
    """Raised once every thread has left the job. The caller's tasks are long (~1 ms
    each), so a helper joins long before they run out; the error of a helper that did not
    join would not exist, hence "at least once" over the rounds."""
    pool = _pool.shared_pool()
    raised = 0
    for _ in range(3):
        owner = np.zeros(64, np.int64)
        try:
            pool.run_loop(_claim_loop, 64, (owner, 50_000, 2 if where == "helper" else 1), 2)
        except ValueError as e:
            assert "task failed" in str(e)
            raised += 1
        owner = np.zeros(64, np.int64)
        pool.run_loop(_claim_loop, 64, (owner, 100), 2)  # the pool still works
        assert np.isin(owner, [1, 2]).all()
    assert raised == 3 if where == "caller" else raised >= 1


def test_a_loop_job_inside_a_busy_pool_runs_alone():
    inner_owners = []

    def outer(i: int, scratch: dict) -> None:
        owner = np.zeros(16, np.int64)
        _pool.shared_pool().run_loop(_claim_loop, 16, (owner, 20_000), 2)
        inner_owners.append(owner)

    _threads.run(outer, 4, 2)
    assert len(inner_owners) == 4
    assert all((o == 1).all() for o in inner_owners)  # on the calling thread alone


def test_the_spin_sees_another_threads_write():
    flags = np.zeros(2, np.int64)

    def write_later() -> None:
        time.sleep(0.02)
        flags[1] = 7

    writer = threading.Thread(target=write_later)
    writer.start()
    start = time.perf_counter()
    # ~10 s of reads at most with the x86 pause hint (~0.2 s without): far past the write
    seen = _pool._spin_until_equal(flags, 1, 7, 400_000_000)
    writer.join()
    assert seen and time.perf_counter() - start >= 0.015
    assert _pool._spin_while_equal(flags, 1, 7, 1000) is False  # no change: gives up


def test_set_spin_seconds_validates_and_restores():
    before = kernels.get_spin_seconds()
    for bad in (-1e-3, 0.5, "0.1", True, None):
        with pytest.raises(ValueError, match="seconds: expected a number in"):
            kernels.set_spin_seconds(bad)
    assert kernels.get_spin_seconds() == before
    kernels.set_spin_seconds(0)
    assert kernels.get_spin_seconds() == 0.0
    kernels.set_spin_seconds(before)


def _conv_in_child(queue) -> None:
    x = np.ones((8, 16, 8, 8), np.float32)
    w = np.ones((16, 1, 3, 3), np.float32)
    with kernels.using_threads(2):
        queue.put(float(kernels.conv2d(x, w, padding=1, groups=16).sum()))


def test_a_forked_child_gets_a_pool_of_its_own():
    x = np.ones((8, 16, 8, 8), np.float32)
    w = np.ones((16, 1, 3, 3), np.float32)
    with kernels.using_threads(2):
        want = float(kernels.conv2d(x, w, padding=1, groups=16).sum())  # parent's pool started
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_conv_in_child, args=(queue,))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and got == want
