"""``ApproxModel``: a traced torch CNN run step by step under a per-operator knob
configuration (see the package doc, :mod:`mobiprox_lab.runtime`)."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import knobs
from .graph import Op, finish_ops, trace
from .steps import Step, make_step

__all__ = ["BACKENDS", "ApproxModel", "RunState", "softmax"]

BACKENDS = ("numba", "reference")
_EXACT, _FP16 = knobs.EXACT, knobs.FP16


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax float32 (N, C) of logits (N, C)."""
    z = np.asarray(logits, np.float32)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=1, keepdims=True)


@dataclass
class RunState:
    """A partial run of an :class:`ApproxModel` (:meth:`ApproxModel.run_prefix`).

    backend : the backend it runs on. step : execution steps done so far.
    values : the live intermediate values (runtime-internal layout; pass the state back to
        ``advance`` / ``run_from`` rather than reading them).
    """

    backend: str
    step: int
    values: list


class ApproxModel:
    """A trained torch CNN run layer by layer under a per-operator knob configuration.

    Parameters
    ----------
    module : trained ``nn.Module`` (a copy is traced in eval mode; the original is untouched).
    input_shape : (C, H, W) of one input.
    backend : "numba" (``mobiprox_lab.kernels``) or "reference" (``mobiprox_lab.reference``).
    warmup : JIT-compile the exact path at construction (numba backend).

    Attributes
    ----------
    ops : DataFrame, one row per operator in execution order: ``name`` (unique, stable: the
        module path, e.g. ``"features.1.dw"``), ``kind`` (conv | group_conv | linear |
        batchnorm | relu | pool | flatten | add), ``in_shape`` / ``out_shape`` (per sample),
        ``flops`` (per sample, ApproxTuner rules), ``knobs`` (applicable ids), ``layer_kind``
        (``knobs.LAYER_KINDS``), ``folded`` (BN folded into its conv), ``fused_into`` (the
        op whose execution step runs this one, else None), ``params`` (weights + bias count).
    tunable_ops : names of ops with more than one applicable knob, in execution order.
    n_classes : width of the output logits.
    """

    def __init__(self, module: nn.Module, input_shape: Sequence[int], backend: str = "numba",
                 *, warmup: bool = True) -> None:
        if not isinstance(module, nn.Module):
            raise ValueError(f"module: expected a torch nn.Module, got {type(module).__name__}")
        try:
            shape = tuple(int(v) for v in input_shape)
        except (TypeError, ValueError):
            raise ValueError(f"input_shape: expected (C, H, W) ints, got {input_shape!r}") from None
        if len(shape) < 1 or min(shape) < 1:
            raise ValueError(f"input_shape: expected positive ints (C, H, W), got {input_shape!r}")
        self._check_backend(backend)
        self.input_shape = shape
        self.backend = backend
        module = copy.deepcopy(module).eval()
        ops, alias, in_node, out_node = trace(module, shape)
        finish_ops(ops)
        self._op_list = ops
        self._index = {op.name: i for i, op in enumerate(ops)}
        self._allowed = [frozenset(op.knobs) for op in ops]
        out_op = next((op for op in ops if op.node == out_node), None)
        if out_op is None or len(out_op.out_shape) != 1:
            raise ValueError("module: expected the output to be logits of shape (N, n_classes)")
        self.n_classes = int(out_op.out_shape[0])
        self._build_plans(ops, in_node, out_node)
        self.ops = pd.DataFrame([{
            "name": op.name, "kind": op.kind, "in_shape": op.in_shape, "out_shape": op.out_shape,
            "flops": op.flops, "knobs": list(op.knobs), "layer_kind": op.layer_kind,
            "folded": op.folded, "fused_into": op.fused_into,
            "params": int(sum(int(np.prod(v.shape)) for k, v in op.params.items()
                              if k in ("w", "b") and v is not None)),
        } for op in ops])
        self.ops["fused_into"] = pd.Series([op.fused_into for op in ops], dtype=object)
        self.tunable_ops: list[str] = [op.name for op in ops if len(op.knobs) > 1]
        self._exact = tuple([_EXACT] * len(ops))
        self._valid: set[tuple[int, ...]] = {self._exact}  # validated knob tuples
        self._trusted: dict[int, tuple[int, ...]] = {}  # id -> tuple from prepare_config
        self._warm_vecs: set[tuple[int, ...]] = {self._exact}
        self._kv = self._exact
        self._warmed: set[tuple] = set()
        if warmup:
            self.run(np.zeros((1, *shape), np.float32))
            if backend == "numba":
                self._warmed.update((i, _EXACT) for i in range(len(ops)))

    # -------------------------------------------------------------------- construction

    @staticmethod
    def _check_backend(backend) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")

    def _build_plans(self, ops: list[Op], in_node: str, out_node: str) -> None:
        by_node = {op.node: i for i, op in enumerate(ops)}
        users: dict[str, int] = {}
        for op in ops:
            for s in op.inputs:
                users[s] = users.get(s, 0) + 1
        users[out_node] = users.get(out_node, 0) + 1
        # fuse conv/linear -> batchnorm -> relu chains
        groups: list[list[int]] = []
        head_of: dict[int, int] = {}  # op index -> group index
        for i, op in enumerate(ops):
            prev = by_node.get(op.inputs[0]) if len(op.inputs) == 1 else None
            if prev is not None and users[ops[prev].node] == 1 and prev in head_of:
                g = groups[head_of[prev]]
                kinds = [ops[j].kind for j in g]
                head = ops[g[0]]
                if (op.kind == "batchnorm" and kinds == [head.kind]
                        and head.kind in ("conv", "group_conv", "linear")) or \
                        (op.kind == "relu" and kinds[-1] != "relu"
                         and head.kind in ("conv", "group_conv", "linear", "batchnorm")):
                    g.append(i)
                    head_of[i] = head_of[prev]
                    op.fused_into = head.name
                    if op.kind == "batchnorm" and head.kind != "batchnorm":
                        op.folded = True
                    continue
            head_of[i] = len(groups)
            groups.append([i])
        # env slots: 0 = input, then one per group
        slot_of = {in_node: 0}
        for gi, g in enumerate(groups):
            slot_of[ops[g[-1]].node] = gi + 1
            for j in g:
                slot_of[ops[j].node] = gi + 1
        last_use: dict[int, int] = {}
        for gi, g in enumerate(groups):
            for s in ops[g[0]].inputs:
                last_use[slot_of[s]] = gi
        out_slot = slot_of[out_node]
        self._out_slot = out_slot
        self._groups = groups
        self._slots = (len(groups) + 1, tuple(
            tuple(slot_of[s] for s in ops[g[0]].inputs) for g in groups))
        sole = {gi + 1 for gi, g in enumerate(groups) if users.get(ops[g[-1]].node, 0) == 1}
        self._plans: dict[str, list[Step]] = {}
        for backend in BACKENDS:
            steps = []
            for gi, g in enumerate(groups):
                ins = self._slots[1][gi]
                free = tuple(s for s, last in last_use.items() if last == gi and s != out_slot)
                inplace = len(ins) >= 1 and ins[0] != 0 and ins[0] in sole
                fn = make_step(backend, [ops[j] for j in g], g, inplace)
                steps.append(Step(fn, ins, gi + 1, free, tuple(g), ops[g[0]].name))
            self._plans[backend] = steps

    # ------------------------------------------------------------------------- configs

    def _vector(self, config) -> tuple[int, ...]:
        """Validate ``config`` (mapping, knob tuple or None) into a knob tuple."""
        if config is None:
            return self._kv
        if self._trusted.get(id(config)) is config or (
                isinstance(config, tuple) and config in self._valid):
            return config
        if isinstance(config, tuple):
            if len(config) != len(self._op_list):
                raise ValueError(f"config: expected a mapping op name -> knob id or a tuple of "
                                 f"{len(self._op_list)} knob ids, got a tuple of {len(config)}")
            config = dict(zip(self._index, config, strict=True))
        if not isinstance(config, Mapping) and not hasattr(config, "items"):
            raise ValueError(f"config: expected a mapping op name -> knob id, got "
                             f"{type(config).__name__}")
        kv = list(self._exact)
        index, allowed = self._index, self._allowed
        for name, k in config.items():
            i = index.get(name)
            if i is not None and type(k) is int and k in allowed[i]:  # fast path
                kv[i] = k
                continue
            if i is None:
                known = ", ".join(list(index)[:4])
                raise ValueError(f"config: unknown operator {name!r}; expected one of the "
                                 f"{len(index)} names in .ops.name (e.g. {known}, ...)")
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer, float)) \
                    or k != int(k):
                raise ValueError(f"config[{name!r}]: expected an int knob id, got {k!r}")
            kid = int(k)
            if kid not in allowed[i]:
                if kid not in knobs.KNOBS:
                    raise ValueError(f"config[{name!r}]: unknown knob id {kid}; valid ids are "
                                     f"{knobs.VALID_RANGES}")
                op = self._op_list[i]
                raise ValueError(
                    f"config[{name!r}]: knob {kid} ({knobs.KNOBS[kid].describe()}) is not "
                    f"applicable to operator {name!r} ({op.kind}, output {op.out_shape}); "
                    f"applicable: {_ranges(op.knobs)}")
            kv[i] = kid
        vec = tuple(kv)
        self._valid.add(vec)
        return vec

    def validate_config(self, config) -> dict[str, int]:
        """The complete, validated configuration (every op; missing ones -> 11)."""
        return dict(zip(self._index, self._vector(config), strict=True))

    def prepare_config(self, config) -> tuple[int, ...]:
        """Validate once and return the knob tuple (execution order) that ``set_config`` /
        ``run`` accept without re-validation (switching then costs ~1 microsecond)."""
        vec = self._vector(config)
        self._warm(vec)
        self._trusted[id(vec)] = vec
        return vec

    def set_config(self, config) -> None:
        """Make ``config`` (mapping op name -> knob id, missing -> 11; or a tuple from
        ``prepare_config``; None = all exact) the current configuration."""
        if config is None:
            self._kv = self._exact
        elif self._trusted.get(id(config)) is config:  # prepared: validated and warmed
            self._kv = config
        else:
            vec = self._vector(config)
            if vec not in self._warm_vecs:
                self._warm(vec)
            self._kv = vec

    @property
    def config(self) -> dict[str, int]:
        """The current configuration, every op name -> knob id."""
        return dict(zip(self._index, self._kv, strict=True))

    @property
    def config_vector(self) -> tuple[int, ...]:
        """The current configuration as a knob tuple (execution order of ``ops``)."""
        return self._kv

    def op_names(self, kind: str | Sequence[str] | None = None) -> list[str]:
        """Op names in execution order, optionally only those of ``kind`` (e.g. "conv")."""
        if kind is None:
            return list(self._index)
        kinds = {kind} if isinstance(kind, str) else set(kind)
        return [op.name for op in self._op_list if op.kind in kinds]

    def _warm(self, vec: tuple[int, ...]) -> None:
        """JIT-compile the numba kernels for knobs not used before, on a tiny input."""
        if self.backend != "numba" or vec in self._warm_vecs:
            return
        todo = [(i, k) for i, k in enumerate(vec) if k != _EXACT and (i, k) not in self._warmed]
        for i, k in todo:
            op = self._op_list[i]
            w, b = op.params.get("exec", (None, None))
            if op.kind in ("conv", "group_conv"):
                from .. import kernels

                (sh, sw), (ph, pw) = op.params["stride"], op.params["padding"]
                h = max(1, 7 * sh + w.shape[2] - 2 * ph)  # an 8x8 output map
                wd = max(1, 7 * sw + w.shape[3] - 2 * pw)
                x = np.zeros((1, w.shape[1] * op.params["groups"], h, wd), np.float32)
                if knobs.applicable(k, op.layer_kind, ((h + 2 * ph - w.shape[2]) // sh + 1,
                                                       (wd + 2 * pw - w.shape[3]) // sw + 1)):
                    kernels.conv2d(x, w, b, stride=(sh, sw), padding=(ph, pw),
                                   groups=op.params["groups"], knob=k)
            elif op.kind == "linear":
                from .. import kernels

                kernels.linear(np.zeros((1, w.shape[1]), np.float32), w, b, knob=k)
            self._warmed.add((i, k))
        self._warm_vecs.add(vec)

    def warmup(self, configs: Sequence) -> None:
        """Validate and JIT-warm a list of configurations up front."""
        for c in configs:
            self._warm(self._vector(c))

    # ----------------------------------------------------------------------- running

    def _check_x(self, x):
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if not isinstance(x, np.ndarray):
            dims = ", ".join(map(str, self.input_shape))
            raise ValueError(f"x: expected a float32 numpy array (N, {dims}), "
                             f"got {type(x).__name__}")
        if x.dtype != np.float32:
            raise ValueError(f"x: expected dtype float32, got {x.dtype}")
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape \
                or x.shape[0] < 1:
            raise ValueError(f"x: expected shape (N, {', '.join(map(str, self.input_shape))}) "
                             f"with N >= 1, got {tuple(x.shape)}")
        return np.ascontiguousarray(x)

    def run(self, x: np.ndarray, config=None, *, backend: str | None = None) -> np.ndarray:
        """Logits float32 (N, n_classes) of x float32 (N, *input_shape) under ``config``
        (mapping op name -> knob id, missing -> 11; None = the current configuration).
        Does not change the current configuration."""
        x = self._check_x(x)
        kv = self._kv if config is None else self._vector(config)
        backend = self.backend if backend is None else backend
        self._check_backend(backend)
        n_slots, _ = self._slots
        env: list = [None] * n_slots
        env[0] = torch.from_numpy(x) if backend == "reference" else x
        out = self._execute_steps(self._plans[backend], env, kv, backend)
        if backend == "reference":
            return out.numpy().astype(np.float32, copy=False)
        return np.ascontiguousarray(out, np.float32)

    def _execute(self, steps: list[Step], env: list, kv: tuple[int, ...]):
        for st in steps:
            ins = st.inputs
            if len(ins) == 1:
                env[st.out] = st.fn(env[ins[0]], kv)
            else:
                env[st.out] = st.fn(*[env[i] for i in ins], kv)
            for f in st.free:
                env[f] = None
        return env[self._out_slot]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``run(x)`` under the current configuration."""
        return self.run(x)

    def predict_proba(self, x: np.ndarray, config=None, *, backend: str | None = None,
                      batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """Softmax float32 (N, n_classes), computed in batches of ``batch_size``."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
        x = self._check_x(x)
        kv = self._kv if config is None else self._vector(config)
        from tqdm.auto import tqdm

        out = np.empty((len(x), self.n_classes), np.float32)
        for i in tqdm(range(0, len(x), batch_size), desc="predict", disable=not progress):
            out[i:i + batch_size] = softmax(self.run(x[i:i + batch_size], kv, backend=backend))
        return out

    def time_steps(self, x: np.ndarray, config=None, *, repeats: int = 5,
                   backend: str | None = None, clock: Callable[[], float] = time.perf_counter
                   ) -> pd.DataFrame:
        """Median wall time per execution step (seconds) over ``repeats`` runs.

        ``clock``: ``time.perf_counter`` (wall, default) or e.g. ``time.thread_time`` (CPU
        seconds of the calling thread: robust to other processes' load when the kernels run
        on one thread).

        Columns: ``step`` (name of the step's first op), ``ops`` (op names it executes),
        ``seconds``. A step is an op with the batch norm / ReLU fused into it.
        """
        x = self._check_x(x)
        kv = self._kv if config is None else self._vector(config)
        backend = self.backend if backend is None else backend
        self._check_backend(backend)
        steps = self._plans[backend]
        times = np.zeros((repeats, len(steps)))
        from ..kernels import single_threaded_blas

        with contextlib.ExitStack() as stack:
            if backend == "numba":  # as in run(): one BLAS thread per kernel worker
                stack.enter_context(single_threaded_blas())
            self._time_steps(x, kv, backend, steps, times, clock)
        return pd.DataFrame({"step": [s.label for s in steps],
                             "ops": [[self._op_list[i].name for i in s.ops] for s in steps],
                             "seconds": np.median(times, axis=0)})

    def _time_steps(self, x, kv, backend, steps, times, clock) -> None:
        # values are released after their last use, as in ``_execute``: holding them all
        # made every step write fresh memory (HAR batch 64, 1 thread: the steps summed to
        # 21-22 ms against 15.5-16 ms for run(), and the convs' share was inflated)
        for r in range(times.shape[0]):
            env: list = [None] * self._slots[0]
            env[0] = torch.from_numpy(x) if backend == "reference" else x
            with torch.no_grad():
                for si, st in enumerate(steps):
                    t0 = clock()
                    env[st.out] = st.fn(*[env[i] for i in st.inputs], kv)
                    times[r, si] = clock() - t0
                    for f in st.free:
                        env[f] = None

    # ------------------------------------------------------------------ partial runs

    def step_ops(self) -> list[tuple[str, ...]]:
        """Op names executed by each execution step, in execution order (a step is an op
        with the batch norm / ReLU fused into it; the same steps on both backends)."""
        return [tuple(self._op_list[i].name for i in g) for g in self._groups]

    def run_prefix(self, x: np.ndarray, upto: int, config=None, *,
                   backend: str | None = None) -> RunState:
        """Run the first ``upto`` execution steps (0 <= upto <= len(step_ops())) of ``x``
        float32 (N, *input_shape) under ``config``; continue with :meth:`advance` /
        :meth:`run_from` (each step may use its own configuration)."""
        backend = self.backend if backend is None else backend
        self._check_backend(backend)
        x = self._check_x(x)
        env: list = [None] * self._slots[0]
        env[0] = torch.from_numpy(x) if backend == "reference" else x
        state = RunState(backend, 0, env)
        return self.advance(state, config, steps=upto)

    def advance(self, state: RunState, config=None, *, steps: int = 1) -> RunState:
        """Run the next ``steps`` execution steps of ``state`` in place under ``config``."""
        self._check_state(state)
        plan = self._plans[state.backend]
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0 \
                or state.step + steps > len(plan):
            raise ValueError(f"steps: expected an int in [0, {len(plan) - state.step}] "
                             f"(steps left after step {state.step}), got {steps!r}")
        kv = self._kv if config is None else self._vector(config)
        self._execute_steps(plan[state.step:state.step + steps], state.values, kv,
                            state.backend)
        state.step += int(steps)
        return state

    def branch(self, state: RunState, config=None, *, steps: int = 1) -> RunState:
        """A new state: ``state`` advanced by ``steps`` execution steps under ``config``;
        ``state`` itself is left as it was, so several configurations can continue from one
        shared prefix."""
        self._check_state(state)
        values = list(state.values)
        if state.backend == "numba":  # numba steps may overwrite an input they alone use
            values = [v.copy() if isinstance(v, np.ndarray) and i else v
                      for i, v in enumerate(values)]
        child = RunState(state.backend, state.step, values)
        return self.advance(child, config, steps=steps)

    def run_from(self, state: RunState, config=None) -> np.ndarray:
        """Logits float32 (N, n_classes) of the remaining steps of ``state`` under ``config``
        (as :meth:`run` returns them); ``state`` itself is left as it was."""
        self._check_state(state)
        done = self.branch(state, config, steps=len(self._plans[state.backend]) - state.step)
        out = done.values[self._out_slot]
        if state.backend == "reference":
            return out.numpy().astype(np.float32, copy=False)
        return np.ascontiguousarray(out, np.float32)

    @staticmethod
    def _check_state(state) -> None:
        if not isinstance(state, RunState):
            raise ValueError(f"state: expected a RunState (run_prefix), got "
                             f"{type(state).__name__}")

    def _execute_steps(self, steps: list[Step], env: list, kv: tuple[int, ...], backend: str):
        """``_execute`` under ``run``'s execution context: no grad (reference) or one BLAS
        thread, set once per call rather than once per kernel call (numba)."""
        if backend == "reference":
            with torch.no_grad():
                return self._execute(steps, env, kv)
        from ..kernels import single_threaded_blas

        with single_threaded_blas():
            return self._execute(steps, env, kv)

    # ------------------------------------------------------------------ introspection

    def named_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every operator's tensors as ``(name, tensor)`` in execution order, as traced (before
        batch-norm folding): ``"<op>.<param>"`` (``w``, ``b``) and ``"<op>.<param>.<entry>"``
        for a module's state (a batch norm's running statistics). Used for fingerprints."""
        for op in self._op_list:
            for key, value in sorted(op.params.items()):
                if isinstance(value, nn.Module):
                    for name, t in value.state_dict().items():
                        yield f"{op.name}.{key}.{name}", t
                elif isinstance(value, torch.Tensor):
                    yield f"{op.name}.{key}", value

    def __repr__(self) -> str:
        return (f"ApproxModel({len(self._op_list)} ops, {len(self.tunable_ops)} tunable, "
                f"input {self.input_shape}, {self.n_classes} classes, backend={self.backend!r})")


def _ranges(ids: Sequence[int]) -> str:
    """Compact '11, 12, 121-138' rendering of sorted knob ids."""
    out, run = [], []
    for k in sorted(ids):
        if run and k == run[-1] + 1:
            run.append(k)
        else:
            if run:
                out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run = [k]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(out)
