"""Benchmarks of :mod:`mobiprox_lab.kernels` against torch on the layers of the two networks.

``layer_shapes()`` lists the benchmarked layers (HAR MobileNet, KWS CNN);
``bench_layers()`` times torch's exact conv2d, our exact conv2d and each
approximation family at stride 2, 3, 4 (offset 0); ``bench_breakdown()`` splits
our time into phases; ``speedups()`` / ``summary()`` turn the timings into the
ratios and targets reported by ``benchmarks/kernels.py``; ``roofs()`` measures this
machine's numpy sgemm GFLOP/s and memory bandwidth, ``pointwise_targets()`` checks the
1x1 layers against 1.6x or the bound their output write implies. Results are cached
under ``data/cache/kernelbench`` keyed by their inputs, the machine and the
kernels' source. Everything is timed with the allocator keeping freed memory
(``kernels.retain_freed_memory``), torch's conv2d too. torch is imported lazily, here only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from . import cache, kernels, knobs

BENCH_VERSION = 6  # 2: each timed call after an untimed one of the same variant;
# 3: after a torch call, wait for its OpenMP threads to stop spinning (settle);
# 4: the allocator keeps freed memory (kernels.retain_freed_memory; also in the key);
# 5: each timed call after at least WARM_SECONDS of untimed calls (warm_up);
# 6: read-only weights, as the runtime passes them (packings built once, not per call)
WARM_SECONDS = 0.02  # untimed calls of a variant before each timed one, at least (warm_up)
BATCH = 64
# variant label -> knob id (None: torch's exact conv2d)
APPROX_VARIANTS: dict[str, int] = {
    "perf row s2": 123, "perf row s3": 128, "perf row s4": 135,
    "perf col s2": 121, "perf col s3": 125, "perf col s4": 131,
    "samp s2": 231, "samp s3": 233, "samp s4": 236,
}
BREAKDOWN_VARIANTS: dict[str, int] = {
    "exact": 11, "perf row s2": 123, "perf col s2": 121, "samp s2": 231}
FAMILIES = ("perf row", "perf col", "samp")


@dataclass(frozen=True)
class LayerShape:
    """One convolution layer: input ``c x h x w``, ``k`` filters of ``kh x kw``."""

    name: str
    net: str
    kind: str  # "conv" (groups == 1) or "depthwise"
    c: int
    h: int
    w: int
    k: int
    kh: int
    kw: int
    stride: int
    padding: int

    @property
    def groups(self) -> int:
        return self.c if self.kind == "depthwise" else 1

    @property
    def out_hw(self) -> tuple[int, int]:
        return kernels.conv_output_hw((self.h, self.w), (self.kh, self.kw), self.stride,
                                      self.padding)


# HAR MobileNet (CIFAR-style): (out channels, depthwise stride) of its 13 blocks
MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                    (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def layer_shapes(har_width: float = 1.0) -> list[LayerShape]:
    """The distinct convolution layers of the HAR MobileNet and the KWS CNN.

    HAR: conv1 (3->32, 3x3, pad 1, 32x32), then per block a depthwise 3x3 (pad 1)
    and a pointwise 1x1; blocks repeating an earlier shape are left out and each
    layer is named after the first block that has its shape. ``har_width`` scales the
    HAR channel counts as ``HarMobileNet(width=...)`` does (rounded, at least 1; the
    shipped width is ``models.DEFAULT_HAR_WIDTH``). KWS: conv1 1->64 20x8 on 101x40,
    conv2 64->64 10x4 on 41x16 (after 2x2 max pooling).
    """
    if not 0 < har_width <= 4:
        raise ValueError(f"har_width: expected a float in (0, 4], got {har_width!r}")

    def scaled(channels: int) -> int:
        return max(1, int(round(channels * har_width)))

    c, hw = scaled(32), 32
    layers = [LayerShape("har.conv1", "har", "conv", 3, 32, 32, c, 3, 3, 1, 1)]
    seen: set[tuple] = set()
    for block, (k, s) in enumerate(MOBILENET_BLOCKS, start=1):
        k = scaled(k)
        if ("dw", c, hw, s) not in seen:
            seen.add(("dw", c, hw, s))
            layers.append(LayerShape(f"har.dw{block}", "har", "depthwise", c, hw, hw, c, 3, 3,
                                     s, 1))
        hw = (hw + 2 - 3) // s + 1
        if ("pw", c, k, hw) not in seen:
            seen.add(("pw", c, k, hw))
            layers.append(LayerShape(f"har.pw{block}", "har", "conv", c, hw, hw, k, 1, 1, 1, 0))
        c = k
    layers += [LayerShape("kws.conv1", "kws", "conv", 1, 101, 40, 64, 20, 8, 1, 0),
               LayerShape("kws.conv2", "kws", "conv", 64, 41, 16, 64, 10, 4, 1, 0)]
    return layers


def _select(layers, har_width: float = 1.0) -> list[LayerShape]:
    every = {layer.name: layer for layer in layer_shapes(har_width)}
    if layers is None:
        return list(every.values())
    unknown = [name for name in layers if name not in every]
    if unknown:
        raise ValueError(f"layers: unknown layer names {unknown}; expected some of {list(every)}")
    return [every[name] for name in layers]


def thread_counts() -> dict[str, int]:
    """Threads of torch and of our kernels (each kernel worker runs a one-thread BLAS)."""
    import torch

    return {"torch_threads": torch.get_num_threads(),
            "kernel_threads": kernels.get_num_threads()}


@contextlib.contextmanager
def _threads(n: int):
    """torch and our kernels both on ``n`` threads inside the block."""
    import torch

    before = torch.get_num_threads(), kernels.get_num_threads()
    torch.set_num_threads(n)
    kernels.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        kernels.set_num_threads(before[1])


def _code_fingerprint() -> str:
    """Hash of the kernels' and this module's source: results change when they do."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(Path(kernels.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _cached(kind: str, compute, refresh: bool, **inputs) -> pd.DataFrame:
    allocator = kernels.retain_freed_memory()  # for torch's conv2d and ours alike
    key = cache.cache_key(kind=kind, version=BENCH_VERSION, code=_code_fingerprint(),
                          machine=platform.node(), cpus=os.cpu_count(), allocator=allocator,
                          paths=kernels.path_thresholds(),
                          path_choices=kernels.path_choices(), **inputs)
    path = cache.cache_dir("kernelbench") / f"{kind}-{key}.csv"
    if path.exists() and not refresh:
        return pd.read_csv(path)
    frame = compute()
    cache.save_frame(path, frame)
    return frame


def _inputs(layer: LayerShape, batch: int, seed: int):
    """Input ``x`` and weights ``w`` of ``layer``; ``w`` read-only, as the runtime passes a
    model's weights, so that the kernels pack each knob's weights once
    (``kernels`` ``_weights.packed``), not in every timed call; ``x`` on a 64-byte
    boundary, as the previous layer's ``kernels.conv2d`` returns it in a model (NumPy's own
    large arrays start 16 bytes into a page, which slows the register tiles'
    loads: ``kernels.aligned_empty``)."""
    rng = np.random.default_rng(seed)
    x = kernels.aligned_empty((batch, layer.c, layer.h, layer.w))
    x[...] = rng.standard_normal(x.shape, dtype=np.float32)
    w = rng.standard_normal((layer.k, layer.c // layer.groups, layer.kh, layer.kw),
                            dtype=np.float32) / np.float32(np.sqrt(layer.c // layer.groups
                                                                   * layer.kh * layer.kw))
    w.flags.writeable = False
    return x, w


def _variants(layer: LayerShape) -> dict[str, int | None]:
    variants: dict[str, int | None] = {"torch exact": None, "exact": 11}
    if layer.kind == "conv":
        variants.update({name: kid for name, kid in APPROX_VARIANTS.items()
                         if knobs.applicable(kid, "conv", layer.out_hw)})
    return variants


def _layer_columns(layer: LayerShape, batch: int) -> dict:
    ho, wo = layer.out_hw
    row = asdict(layer)
    row = {"layer": row.pop("name"), **row, "batch": batch, "groups": layer.groups, "ho": ho,
           "wo": wo}
    row["in_elems"] = batch * layer.c * layer.h * layer.w
    row["out_elems"] = batch * layer.k * ho * wo
    row["flops"] = 2 * row["out_elems"] * (layer.c // layer.groups) * layer.kh * layer.kw
    return row


def _knob_columns(variant: str, kid: int | None) -> dict:
    kn = knobs.get(11 if kid is None else kid)
    return {"variant": variant, "impl": "torch" if kid is None else "numba", "knob": kn.id,
            "technique": kn.technique, "axis": kn.axis or "", "knob_stride": kn.stride,
            "nominal_speedup": kn.speedup}


def bench_layers(*, quick: bool = False, batch: int = BATCH, threads: int = 2, layers=None,
                 seed: int = 0, refresh: bool = False, progress: bool = True,
                 har_width: float = 1.0) -> pd.DataFrame:
    """Median wall time of every variant on every layer (one call = the whole batch).

    Variants: "torch exact" (``torch.nn.functional.conv2d``), "exact" (knob 11) and,
    on regular convolutions, "perf row sS", "perf col sS", "samp sS" for S = 2, 3, 4
    (offset 0; knob ids in ``APPROX_VARIANTS``). Each is warmed up, then the
    variants are timed in turn ``repeats`` times (interleaved, so that load from
    other processes hits all alike). torch and our kernels both run on
    ``threads`` threads. ``quick``: fewer repeats. ``har_width``: the HAR layers'
    channel width (:func:`layer_shapes`).

    Columns: layer, net, kind, c, h, w, k, kh, kw, stride, padding, batch, groups,
    ho, wo, in_elems, out_elems, flops, variant, impl ("torch" | "numba"), knob,
    technique, axis, knob_stride, nominal_speedup, median_s, q25_s, q75_s, min_s (wall
    seconds per call), cpu_median_s (process CPU seconds per call: robust to other
    processes' load when run on one thread; with several threads it also counts
    idle spinning), repeats, torch_threads, kernel_threads.
    """
    chosen = _select(layers, har_width)
    repeats = 3 if quick else 9

    def compute() -> pd.DataFrame:
        import torch
        from tqdm.auto import tqdm

        rows = []
        total = sum(len(_variants(layer)) for layer in chosen)
        with (_threads(threads), torch.no_grad(),
              tqdm(total=total, desc=f"kernel benchmark ({threads} threads)",
                   disable=not progress) as bar):
            counts = thread_counts()
            for layer in chosen:
                calls = _calls(layer, *_inputs(layer, batch, seed))
                times = _time_interleaved(calls, repeats)
                for variant, (wall, cpu) in times.items():
                    kid = _variants(layer)[variant]
                    rows.append(_layer_columns(layer, batch) | _knob_columns(variant, kid) | {
                        "median_s": float(np.median(wall)),
                        "q25_s": float(np.percentile(wall, 25)),
                        "q75_s": float(np.percentile(wall, 75)),
                        "min_s": float(np.min(wall)),
                        "cpu_median_s": float(np.median(cpu)),
                        "repeats": repeats} | counts)
                    bar.update()
        return pd.DataFrame(rows)

    return _cached("layers", compute, refresh, quick=quick, batch=batch, threads=threads,
                   layers=[layer.name for layer in chosen], seed=seed, har_width=har_width)


def _calls(layer: LayerShape, x: np.ndarray, w: np.ndarray) -> dict:
    """variant -> a no-argument call computing it on ``x``, ``w`` (no bias)."""
    import torch

    geometry = {"stride": layer.stride, "padding": layer.padding, "groups": layer.groups}
    xt, wt = torch.from_numpy(x), torch.from_numpy(np.array(w))  # torch wants it writable
    return {variant: (partial(torch.nn.functional.conv2d, xt, wt, None, **geometry)
                      if kid is None else partial(kernels.conv2d, x, w, None, knob=kid, **geometry))
            for variant, kid in _variants(layer).items()}


def settle(max_s: float = 0.1, step_s: float = 0.002, idle_cpu_s: float = 2e-4) -> float:
    """Wait (at most ``max_s`` seconds) until this process's threads stop using CPU, and
    return the seconds waited. torch's OpenMP workers spin after a parallel call: after a
    HAR pw2 conv on 2 threads the process burnt a median 7.7 ms (3-10 ms) of CPU during
    the next 50 ms of sleep (0.05 ms after ours), which took a core from whatever ran next."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_s:
        cpu = time.process_time()
        time.sleep(step_s)
        if time.process_time() - cpu < idle_cpu_s:
            break
    return time.perf_counter() - start


def warm_up(call, seconds: float = WARM_SECONDS, calls: int = 1) -> None:
    """Call ``call()`` at least ``calls`` times and until ``seconds`` have passed.

    A call timed right after the process was idle (:func:`settle` sleeps until torch's
    threads stop) runs slow for a few milliseconds, whatever came before it: on 2 threads,
    HAR's depthwise layers at batch 64 (width 1.0), the same kernel timed three times in a
    row after torch's, each after one untimed call, measured 1.03, 0.78 and 0.71x torch's time
    (geomean); after 10 or 30 ms of untimed calls, 0.72-0.74 each. One untimed call had made
    the first variant after torch's (our exact) look slow, and every speedup over it large."""
    start = time.perf_counter()
    done = 0
    while done < calls or time.perf_counter() - start < seconds:
        call()
        done += 1


def _time_interleaved(calls: dict, repeats: int, warmup: int = 2, spinning=("torch exact",)
                      ) -> dict[str, tuple[list[float], list[float]]]:
    """variant -> (wall seconds, process CPU seconds) of each repeat.

    Each timed call follows untimed calls of the same variant (:func:`warm_up`): every
    variant is timed with its own data in cache and the machine busy, not with what the
    variant before it left there (torch's exact conv ran before ours and left it a cold
    cache: on the HAR 32x32 pointwise layer our exact measured ~40 % slower after it,
    inflating every speedup over it). After the variants in ``spinning`` (torch's) the
    next one starts when their threads have stopped spinning (:func:`settle`): on 2
    threads, our exact and perf row s2, the two variants right after torch's, had quartile
    spreads (q75 / q25 of wall time) of 1.6-2.1 on HAR pw2, pw4, pw12 and dw2-dw6, the
    later variants about 1.05."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            warm_up(call)
            cpu, start = time.process_time(), time.perf_counter()
            call()
            samples[name][0].append(time.perf_counter() - start)
            samples[name][1].append(time.process_time() - cpu)
            if name in spinning:
                settle()
    return samples


def bench_breakdown(*, quick: bool = False, batch: int = BATCH, threads: int = 2, layers=None,
                    seed: int = 0, refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """Seconds per phase of our conv2d (``kernels.PHASES``) for each layer and variant.

    Variants ``BREAKDOWN_VARIANTS`` (exact and the stride-2 approximations; exact
    only on depthwise layers). Each phase is the median over repeats; phases on
    worker threads are summed over the ``threads`` threads (see
    ``kernels.conv2d``), so they measure work rather than wall time.
    Columns: the layer columns of :func:`bench_layers`, patch_elems (im2col
    elements of the whole batch), variant, knob, technique, axis, knob_stride,
    phase, seconds.
    """
    chosen = _select(layers)
    repeats = 3 if quick else 7

    def compute() -> pd.DataFrame:
        from tqdm.auto import tqdm

        rows = []
        jobs = [(layer, variant, kid) for layer in chosen
                for variant, kid in BREAKDOWN_VARIANTS.items()
                if kid == 11 or (layer.kind == "conv"
                                 and knobs.applicable(kid, "conv", layer.out_hw))]
        data = {}
        bar = tqdm(jobs, desc=f"kernel breakdown ({threads} threads)", disable=not progress)
        for layer, variant, kid in bar:
            if layer.name not in data:
                data = {layer.name: _inputs(layer, batch, seed)}
            x, w = data[layer.name]
            per_phase = {phase: [] for phase in kernels.PHASES}
            for rep in range(repeats + 1):
                with _threads(threads):
                    _, phases = kernels.conv2d_breakdown(x, w, None, stride=layer.stride,
                                                         padding=layer.padding,
                                                         groups=layer.groups, knob=kid)
                if rep:  # the first call is the warm-up
                    for phase, sec in phases.items():
                        per_phase[phase].append(sec)
            base = _layer_columns(layer, batch) | _knob_columns(variant, kid)
            base["patch_elems"] = _patch_elems(layer, batch, kid)
            for phase, samples in per_phase.items():
                rows.append(base | {"phase": phase, "seconds": float(np.median(samples))})
        return pd.DataFrame(rows)

    return _cached("breakdown", compute, refresh, quick=quick, batch=batch, threads=threads,
                   layers=[layer.name for layer in chosen], seed=seed)


def _patch_elems(layer: LayerShape, batch: int, kid: int) -> int:
    """Elements of the (reduced) im2col matrix of the whole batch (0 on direct paths)."""
    if layer.kind != "conv":
        return 0
    kn = knobs.get(kid)
    ho, wo = layer.out_hw
    red = layer.c * layer.kh * layer.kw
    if kn.technique == "perforation":
        skipped, _ = knobs.perforation_skips(kid, (ho, wo))
        ho, wo = (ho - skipped, wo) if kn.axis == "row" else (ho, wo - skipped)
    elif kn.technique == "sampling":
        if (layer.kh * layer.kw) % kn.stride == 0:  # regular: 1 of s per channel block
            red -= red // kn.stride
        else:
            red -= knobs.skipped_count(red, kn.stride, kn.offset)
    return batch * red * ho * wo


def speedups(df: pd.DataFrame, stat: str = "median_s") -> pd.DataFrame:
    """Per layer and approximate variant: measured vs nominal speedup, from column ``stat``.

    Columns: layer, net, kind, ho, wo, out_elems, variant, family ("perf row" |
    "perf col" | "samp"), knob_stride, nominal_speedup, time_s, exact_s, torch_s
    (seconds: ``stat`` of the variant, of our exact, of torch exact), speedup
    (our exact / variant), fraction_of_nominal, vs_torch (torch exact / variant;
    > 1 means faster than torch).
    """
    times = df.pivot_table(index="layer", columns="variant", values=stat)
    approx = df[df["technique"].isin(["perforation", "sampling"])].copy()
    approx["time_s"] = approx[stat]
    approx["family"] = approx["variant"].str.rsplit(" ", n=1).str[0]
    approx["exact_s"] = approx["layer"].map(times["exact"])
    approx["torch_s"] = approx["layer"].map(times["torch exact"])
    approx["speedup"] = approx["exact_s"] / approx["time_s"]
    approx["fraction_of_nominal"] = approx["speedup"] / approx["nominal_speedup"]
    approx["vs_torch"] = approx["torch_s"] / approx["time_s"]
    cols = ["layer", "net", "kind", "ho", "wo", "out_elems", "variant", "family", "knob_stride",
            "nominal_speedup", "time_s", "exact_s", "torch_s", "speedup",
            "fraction_of_nominal", "vs_torch"]
    return approx[cols].reset_index(drop=True)


def _geomean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.exp(np.mean(np.log(values)))) if values.size else float("nan")


def summary(df: pd.DataFrame, stat: str = "median_s") -> pd.DataFrame:
    """The headline ratios (from column ``stat``) and whether the project's targets are met.

    Columns: metric, value, target, met (bool, or None where there is no target).
    """
    times = df.pivot_table(index="layer", columns="variant", values=stat)
    kinds = df.groupby("layer")["kind"].first()
    regular = kinds[kinds == "conv"].index
    ratio = times["exact"] / times["torch exact"]
    sp = speedups(df, stat)
    big = sp[(sp["ho"] >= 8) & (sp["wo"] >= 8)]
    rows = [
        ("exact / torch, geo mean, regular convs", _geomean(ratio[regular]), "<= 1.5"),
        ("exact / torch, geo mean, depthwise", _geomean(ratio.drop(regular)), "<= 1.0"),
        # torch's time on one large depthwise layer swings 0.8-40 ms between runs and can
        # steer the geo mean; the worst layer shows the gap on the small maps
        ("exact / torch, worst depthwise layer", float(ratio.drop(regular).max()), None),
        ("exact / torch, geo mean, all layers", _geomean(ratio), None),
    ]
    for family in FAMILIES:
        s2 = sp[(sp["family"] == family) & (sp["knob_stride"] == 2)]
        rows.append((f"{family} s2: speedup over our exact, geo mean, all layers (target)",
                     _geomean(s2["speedup"]), ">= 1.6"))
    for family in FAMILIES:
        s2 = big[(big["family"] == family) & (big["knob_stride"] == 2)]
        rows.append((f"{family} s2: min fraction of nominal, outputs >= 8x8",
                     float(s2["fraction_of_nominal"].min()), ">= 0.8"))
    for family in FAMILIES:
        for stride in (2, 3, 4):
            sel = sp[(sp["family"] == family) & (sp["knob_stride"] == stride)]
            rows.append((f"{family} s{stride}: speedup over our exact, geo mean",
                         _geomean(sel["speedup"]), None))
            rows.append((f"{family} s{stride}: fraction of nominal, geo mean",
                         _geomean(sel["fraction_of_nominal"]), None))
            rows.append((f"{family} s{stride}: vs torch exact (>1 faster), geo mean",
                         _geomean(sel["vs_torch"]), None))
    for family in ("perf row", "perf col"):
        sel = sp[(sp["family"] == family) & (sp["knob_stride"] == 2)]
        rows.append((f"{family} s2: share of layers faster than torch exact",
                     float((sel["vs_torch"] > 1).mean()), "> 0.5"))
    out = pd.DataFrame(rows, columns=["metric", "value", "target"])
    out["met"] = [_met(v, t) for v, t in zip(out["value"], out["target"], strict=True)]
    return out


def roofs(threads: int = 1, seconds: float = 0.3) -> dict[str, float]:
    """This machine's practical roofs, measured now (medians); on one thread in CPU time of
    the calling thread (like ``cpu_median_s``: robust to other processes' load), else wall.

    ``sgemm_gflops``: numpy float32 1024^3 matrix product on ``threads`` BLAS threads;
    ``write_gbs``: bytes per second of filling a 64 MiB float32 array the process already
    holds (streaming writes past the caches, no page faults: how the layers' outputs are
    written under the timings' allocator policy, ``kernels.retain_freed_memory``; with page
    faults, a fresh array measured 10.9 GB/s here, against 57 GB/s for a 16 MiB one that
    stays in L3); ``read_gbs``: bytes per second of reading a 64 MiB array (``max``). Not
    cached: load changes them.
    """
    from threadpoolctl import threadpool_limits

    kernels.retain_freed_memory()
    clock = time.thread_time if threads == 1 else time.perf_counter
    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    c = np.empty_like(a)
    n = 16 << 20
    src = np.ones(n, np.float32)
    dst = np.empty(n, np.float32)

    def rate(fn) -> float:
        fn()
        times, end = [], time.perf_counter() + seconds
        while len(times) < 5 or time.perf_counter() < end:
            t0 = clock()
            fn()
            times.append(clock() - t0)
        return float(np.median(times))

    with threadpool_limits(threads, user_api="blas"):
        gemm = rate(lambda: np.dot(a, a, out=c))
    return {"sgemm_gflops": 2 * 1024**3 / gemm / 1e9,
            "write_gbs": 4 * n / rate(lambda: dst.fill(1.0)) / 1e9,
            "read_gbs": 4 * n / rate(src.max) / 1e9}


def pointwise_targets(df: pd.DataFrame, machine: dict[str, float], stat: str = "median_s",
                      target: float = 1.6, slack: float = 1.1) -> pd.DataFrame:
    """The 1x1 layers with >= 8x8 outputs, stride-2 perforation / sampling: met if the
    speedup over our exact is >= ``target``, or, where the output write alone (plus reading
    the kept input) takes longer than exact / ``target`` at ``machine``'s bandwidth
    (:func:`roofs`), if the time is within ``slack`` of that bound.

    Columns: layer, variant, exact_ms, time_ms, speedup, bound_ms (out bytes / write
    GB/s + half the input's bytes / read GB/s), bound_speedup (exact / bound), target_ms,
    met.
    """
    sp = speedups(df, stat)
    shapes = df.groupby("layer").first()
    sel = sp[(sp["knob_stride"] == 2) & (sp["ho"] >= 8) & (sp["wo"] >= 8)]
    sel = sel[sel["layer"].map(shapes["kh"]).eq(1) & sel["layer"].map(shapes["kw"]).eq(1)]
    rows = []
    for r in sel.itertuples():
        out_b = 4 * r.out_elems
        in_b = 4 * int(shapes.loc[r.layer, "in_elems"]) / 2  # half the input is kept
        bound = out_b / (machine["write_gbs"] * 1e9) + in_b / (machine["read_gbs"] * 1e9)
        write_bound = bound > r.exact_s / target
        target_s = bound * slack if write_bound else r.exact_s / target
        rows.append({"layer": r.layer, "variant": r.variant, "exact_ms": 1e3 * r.exact_s,
                     "time_ms": 1e3 * r.time_s, "speedup": r.speedup, "bound_ms": 1e3 * bound,
                     "bound_speedup": r.exact_s / bound, "target_ms": 1e3 * target_s,
                     "met": bool(r.time_s <= target_s)})
    return pd.DataFrame(rows)


def gflops(df: pd.DataFrame, stat: str = "median_s") -> pd.DataFrame:
    """GFLOP/s of torch's and our exact conv per layer (columns: layer, kind, torch, exact)."""
    ex = df[df["variant"].isin(["torch exact", "exact"])]
    wide = ex.pivot_table(index="layer", columns="variant", values=stat, sort=False)
    flops = ex.groupby("layer", sort=False)["flops"].first()
    out = pd.DataFrame({"kind": ex.groupby("layer", sort=False)["kind"].first(),
                        "torch": flops / wide["torch exact"] / 1e9,
                        "exact": flops / wide["exact"] / 1e9})
    return out.reset_index()


def _met(value: float, target):
    if not isinstance(target, str) or not np.isfinite(value):
        return None
    op, bound = target.split()
    bound = float(bound)
    return {"<=": value <= bound, ">=": value >= bound, ">": value > bound}[op]
