"""Logits of many configurations, here or fanned out to an executor (a
``concurrent.futures`` pool or a Dask client) that receives the model and inputs once."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from .. import cache
from .fingerprint import model_fingerprint

__all__ = ["SHARED_PREFIX_MAX_BYTES", "batched_logits", "map_logits", "prefix_bytes",
           "shared_prefix_logits"]

#: ``map_logits`` shares prefixes only while the intermediate values of ``x`` along one
#: branch of the prefix tree (:func:`prefix_bytes`) fit in this; else one run per config.
SHARED_PREFIX_MAX_BYTES = 2 << 30


def batched_logits(model, x: np.ndarray, config=None, *, backend: str = "reference",
                   batch_size: int = 256) -> np.ndarray:
    """``model.run`` over ``x`` in batches: logits float32 (N, n_classes)."""
    out = np.empty((len(x), model.n_classes), np.float32)
    for i in range(0, len(x), batch_size):
        out[i:i + batch_size] = model.run(x[i:i + batch_size], config, backend=backend)
    return out


def shared_prefix_logits(model, configs: Sequence[Mapping[str, int]], x: np.ndarray, *,
                         backend: str = "reference", batch_size: int = 256
                         ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(i, logits float32 (N, n_classes))`` for every configuration, the same
    logits as :func:`batched_logits`, each execution step computed once per distinct prefix.

    Configurations that run the first steps under the same knobs share those steps
    (``ApproxModel.run_prefix`` / ``branch`` on every batch of ``x``): a depth-first walk of
    the prefix tree, so a configuration is yielded as soon as its leaf is reached. Memory:
    the intermediate values of ``x`` along one branch of the tree (at most one value per
    step depth is alive).
    """
    steps = model.step_ops()
    full = [model.validate_config(c) for c in configs]
    paths = [tuple(tuple(f[op] for op in ops) for ops in steps) for f in full]
    roots = [model.run_prefix(x[i:i + batch_size], 0, None, backend=backend)
             for i in range(0, len(x), batch_size)]
    yield from _walk(model, roots, list(range(len(configs))), full, paths, 0, len(steps))


def prefix_bytes(model, n: int) -> int:
    """Bytes of float32 step outputs of ``n`` inputs summed over every execution step: a
    bound on what :func:`shared_prefix_logits` holds at once (one value per step depth)."""
    out = model.ops.set_index("name")["out_shape"]
    return 4 * n * sum(int(np.prod(out[ops[-1]])) for ops in model.step_ops())


def _walk(model, states: list, members: list[int], full: list[dict], paths: list[tuple],
          depth: int, n_steps: int) -> Iterator[tuple[int, np.ndarray]]:
    """The subtree of the configurations ``members``, which agree on steps < ``depth``
    (``states``: one per batch, ``depth`` steps done)."""
    if len(members) == 1 or depth == n_steps:
        logits = np.concatenate([model.run_from(st, full[members[0]]) for st in states])
        for i in members:  # equal configurations share every step
            yield i, logits
        return
    groups: dict[tuple, list[int]] = {}
    for i in members:
        groups.setdefault(paths[i][depth], []).append(i)
    for group in groups.values():
        # advance over every step the whole group agrees on, in one branch
        end = depth + 1
        while end < n_steps and len({paths[i][end] for i in group}) == 1:
            end += 1
        child = [model.branch(st, full[group[0]], steps=end - depth) for st in states]
        yield from _walk(model, child, group, full, paths, end, n_steps)
        del child


class _Payload:
    """A model and its inputs, shipped to executor workers once.

    Pickles (with cloudpickle: the runtime's execution steps are closures) to a blob made
    once per payload; a worker process unpickles a given payload once and keeps it
    (``_WORKER_PAYLOADS``), so later tasks only pay for moving the bytes (process pools) or
    nothing at all (a Dask client, which holds the payload as one task's result).
    """

    def __init__(self, model, x: np.ndarray, key: str) -> None:
        self.model, self.x, self.key = model, x, key
        self.parent_pid = os.getpid()
        self._blob: bytes | None = None

    def __reduce__(self):
        if self._blob is None:
            import cloudpickle

            self._blob = cloudpickle.dumps((self.model, self.x))
        return _payload_from_blob, (self.key, self.parent_pid, self._blob)


_WORKER_PAYLOADS: dict[str, _Payload] = {}
_SCATTERED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client -> {key: future}


def _payload_from_blob(key: str, parent_pid: int, blob: bytes) -> _Payload:
    payload = _WORKER_PAYLOADS.get(key)
    if payload is None:
        import pickle

        model, x = pickle.loads(blob)
        payload = _Payload(model, x, key)
        payload.parent_pid = parent_pid
        if len(_WORKER_PAYLOADS) >= 4:
            _WORKER_PAYLOADS.clear()
        _WORKER_PAYLOADS[key] = payload
    return payload


def _identity(value):
    """Executor task returning its argument: ships a payload as a recomputable result."""
    return value


def _remote_logits(payload: _Payload, config: dict, backend: str, batch_size: int) -> np.ndarray:
    """Executor task: logits of one configuration on the payload's inputs."""
    if os.getpid() != payload.parent_pid:
        import torch

        if torch.get_num_threads() != 1:  # workers parallelise across tasks, not inside one
            torch.set_num_threads(1)
    return batched_logits(payload.model, payload.x, config, backend=backend,
                          batch_size=batch_size)


def map_logits(model, configs: Sequence[Mapping[str, int]], x: np.ndarray, *, executor=None,
               backend: str = "reference", batch_size: int = 256, progress: bool = True,
               desc: str = "configs") -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(i, logits float32 (N, n_classes))`` for every configuration, as each finishes.

    executor : None (run here, sharing the execution steps that configurations run under
        the same knobs, :func:`shared_prefix_logits`, within ``SHARED_PREFIX_MAX_BYTES``),
        a ``concurrent.futures`` executor, or a
        ``dask.distributed.Client`` (the model and ``x`` are shipped once per client as a
        task's result, kept for later calls with the same model and inputs, and recomputed
        by the scheduler if the workers holding them die).
        Either way the logits are those of :func:`batched_logits`; unfinished tasks are
        cancelled if the consumer stops early (e.g. on KeyboardInterrupt).
    """
    from tqdm.auto import tqdm

    configs = [dict(c) for c in configs]
    bar = tqdm(total=len(configs), desc=desc, disable=not progress or not configs, leave=False)
    try:
        if executor is None:
            if (hasattr(model, "branch") and len(configs) > 1
                    and prefix_bytes(model, len(x)) <= SHARED_PREFIX_MAX_BYTES):
                done = shared_prefix_logits(model, configs, x, backend=backend,
                                            batch_size=batch_size)
            else:
                done = ((i, batched_logits(model, x, cfg, backend=backend,
                                           batch_size=batch_size))
                        for i, cfg in enumerate(configs))
            for i, logits in done:
                yield i, logits
                bar.update()
            return
        if not hasattr(executor, "submit"):
            raise ValueError(f"executor: expected an object with .submit (a concurrent.futures "
                             f"executor or a dask Client), got {type(executor).__name__}")
        payload = _Payload(model, x, f"{model_fingerprint(model)}-{cache.cache_key(x=x)}")
        is_dask = hasattr(executor, "scatter")
        if is_dask:
            from distributed import as_completed

            scattered = _SCATTERED.setdefault(executor, {})
            if payload.key not in scattered:
                if len(scattered) >= 3:  # keep a few (tune / test inputs), free the oldest
                    scattered.pop(next(iter(scattered)))
                # a task, not scatter(): the scheduler can recompute a task's result when
                # the workers holding it die; scattered data lost with every replica
                # cancels the tasks that need it (FutureCancelledError)
                scattered[payload.key] = executor.submit(_identity, payload, pure=False)
            payload = scattered[payload.key]
        else:
            from concurrent.futures import as_completed
        # pure=False: every call gets fresh task keys. With dask's default (keys from the
        # arguments) a configuration asked for again (the exact one, by the profile and then
        # by the validation) reused the key whose cancellation below, still in flight to
        # the scheduler, then cancelled the new task (FutureCancelledError, seen in CI)
        extra = {"pure": False} if is_dask else {}
        futures = {executor.submit(_remote_logits, payload, cfg, backend, batch_size, **extra): i
                   for i, cfg in enumerate(configs)}
        try:
            for fut in as_completed(list(futures)):
                yield futures[fut], np.asarray(fut.result(), np.float32)
                bar.update()
        finally:
            for fut in futures:
                if not fut.done():  # only what the consumer left unfinished
                    fut.cancel()
    finally:
        bar.close()
