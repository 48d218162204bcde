"""Trained weights on disk: the cache key (what the weights were trained on), the data
statistics checked before reuse, the weights shipped with the package, and
:func:`load_or_train`."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import cache
from .nets import build_model
from .training import QUICK_BATCH_SIZE, QUICK_EPOCHS, TRAIN_DEFAULTS, evaluate, train


@dataclass
@dataclass
class TrainedModel:
    """A trained network and what is known about it.

    module : the torch model, in eval mode.
    task : "har" or "kws".
    labels : class names, ``labels[class_index]``.
    input_shape : (C, H, W) of one input.
    info : ``train_acc`` / ``tune_acc`` / ``test_acc`` (fractions in [0, 1], test = held-out
        subjects / voices), ``epochs`` (run), ``best_epoch``, ``seconds`` (training wall
        time), ``model`` (class name), ``hparams``, ``n_params``, ``seed``, ``quick``,
        ``train_kwargs``, ``key`` (cache key), ``cached`` (loaded from disk).
    history : one dict per epoch (``epoch``, ``loss``, ``train_acc``, ``tune_acc``, ``seconds``).
    path : where the weights are cached (None if not cached).
    """

    module: nn.Module
    task: str
    labels: tuple[str, ...]
    input_shape: tuple[int, ...]
    info: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    path: str | None = None



_VOLATILE_META = frozenset({"build_s"})


def data_identity(splits) -> dict:
    """The exact, machine-independent facts of the data a model trains on: what its cache
    key covers.

    Task, class names, non-volatile ``meta``, and per split the input shape and dtype and
    SHA-256 of the integer labels and groups. Float inputs are left out on purpose: the
    same preprocessing gives inputs that differ in the last bits from one CPU to another
    (SIMD paths of FFT, filtering and BLAS), so hashing their bytes made the shipped
    weights miss on every other machine. :func:`data_statistics` covers the inputs.
    """
    # "build_s" (how long preparing took) differs on every call: keeping it made the KWS
    # weights miss their cache in every new process
    out = {"task": getattr(splits, "task", None), "labels": list(splits.labels),
           "meta": {k: v for k, v in sorted(getattr(splits, "meta", {}).items())
                    if isinstance(v, (str, int, float, bool, type(None), tuple, list))
                    and k not in _VOLATILE_META}}
    for name in ("train", "tune", "test"):
        s = getattr(splits, name)
        h = hashlib.sha256(np.ascontiguousarray(s.y, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(s.group, dtype=np.int64).tobytes())
        out[name] = {"shape": list(s.x.shape), "dtype": str(s.x.dtype),
                     "labels_groups": h.hexdigest()[:16]}
    return out


_STATISTICS_BLOCK = 1024  # examples per block of data_statistics


def data_statistics(splits) -> dict[str, list[list[float]]]:
    """Per split, the mean and standard deviation of the inputs along each input axis.

    For a split with inputs x (N, C, H, W): ``{split: [mean over all but axis 1 (C,),
    std (C,), mean over all but axis 2 (H,), std (H,), mean ... axis 3 (W,), std (W,)]}``,
    accumulated in float64. Stored with trained weights and compared with tolerance
    (:func:`statistics_mismatch`) before they are reused: a change to the preprocessing
    moves these; last-bit differences between machines do not.
    """
    out = {}
    for name in ("train", "tune", "test"):
        x = getattr(splits, name).x
        rows = []
        for axis in range(1, x.ndim):
            others = tuple(a for a in range(x.ndim) if a != axis)
            mean = x.mean(axis=others, dtype=np.float64)
            shape = [1] * x.ndim
            shape[axis] = -1
            centre = mean.reshape(shape)
            squares = np.zeros_like(mean)
            # in blocks of examples: a whole-split float64 copy (~0.5 GB for KWS's train
            # split) made this 3 s on every load_or_train call
            for start in range(0, len(x), _STATISTICS_BLOCK):
                block = x[start:start + _STATISTICS_BLOCK].astype(np.float64) - centre
                squares += np.square(block).sum(axis=others)
            std = np.sqrt(squares / (x.size // x.shape[axis]))
            rows += [mean.tolist(), std.tolist()]
        out[name] = rows
    return out


#: How far stored data statistics may be from the current ones, relative to the split's
#: largest standard deviation: last-bit noise between machines moves them by ~1e-7 of it;
#: any real change to the preprocessing by far more than 1e-4.
STATISTICS_RTOL = 1e-4


def statistics_mismatch(stored, current) -> str | None:
    """None when ``stored`` and ``current`` (:func:`data_statistics` results) agree within
    :data:`STATISTICS_RTOL`, else a sentence saying where they differ first."""
    if stored is None:
        return "no data statistics were stored with the weights"
    for name in ("train", "tune", "test"):
        a, b = stored.get(name), current[name]
        if a is None or [len(u) for u in a] != [len(v) for v in b]:
            return f"the {name} split's statistics have another shape"
        scale = max(max(map(abs, row)) for row in b[1::2]) or 1.0
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            diff = np.abs(np.asarray(u) - np.asarray(v))
            if np.any(diff > STATISTICS_RTOL * scale):
                j = int(diff.argmax())
                what = "mean" if i % 2 == 0 else "std"
                return (f"{name} split, {what} along input axis {i // 2 + 1}, index {j}: "
                        f"stored {u[j]:.6g}, now {v[j]:.6g}")
    return None


#: Trained weights shipped with the package (``mobiprox-lab train --ship``), with a manifest
#: recording each file's SHA-256, the data fingerprint and recipe it was trained on and its
#: accuracies; ``load_or_train`` uses one when its cache key matches (``retrain`` skips it).
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"
SHIPPED_MANIFEST = SHIPPED_DIR / "manifest.json"


def shipped_manifest() -> dict:
    """{file name: entry} of the shipped weights (empty when none ship)."""
    if not SHIPPED_MANIFEST.exists():
        return {}
    return json.loads(SHIPPED_MANIFEST.read_text())


def _shipped(name: str) -> Path | None:
    """The shipped weights file ``name`` after its checksum check, or None if not shipped."""
    entry = shipped_manifest().get(name)
    path = SHIPPED_DIR / name
    if entry is None or not path.exists():
        return None
    digest = cache.file_sha256(path)
    if digest != entry["sha256"]:
        raise ValueError(f"shipped weights: {path} has SHA-256 {digest}, the manifest says "
                         f"{entry['sha256']}; reinstall the package or retrain (--retrain)")
    return path


def ship(trained: TrainedModel) -> Path:
    """Copy a trained model's cached weights into the package (:data:`SHIPPED_DIR`) and
    record them in the manifest; for maintainers (``mobiprox-lab train --ship``)."""
    if trained.info.get("quick"):
        raise ValueError("trained: quick-mode weights are not shipped (they train in seconds)")
    src = Path(trained.path)
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    dst = SHIPPED_DIR / src.name
    with cache.atomic_path(dst, checksum=False) as tmp:
        tmp.write_bytes(src.read_bytes())
    manifest = shipped_manifest()
    for name in [n for n, e in manifest.items() if e["task"] == trained.task and n != dst.name]:
        (SHIPPED_DIR / name).unlink(missing_ok=True)  # one shipped model per task
        del manifest[name]
    info = trained.info
    manifest[dst.name] = {
        "task": trained.task, "sha256": cache.file_sha256(dst), "key": info["key"],
        "model": info["model"], "hparams": info["hparams"], "seed": info["seed"],
        "train_kwargs": info["train_kwargs"], "epochs": info["epochs"],
        "seconds": round(float(info["seconds"]), 1), "torch": torch.__version__,
        **{k: round(float(info[k]), 4) for k in ("train_acc", "tune_acc", "test_acc")},
        "n_train": info["n_train"], "n_tune": info["n_tune"], "n_test": info["n_test"],
    }
    with cache.atomic_path(SHIPPED_MANIFEST, checksum=False) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return dst


def weights_key(model: nn.Module, splits, *, seed: int, quick: bool,
                train_kwargs: dict) -> str:
    """The cache key of ``model``'s weights trained on ``splits``: model class and
    hyper-parameters, :func:`data_identity`, seed, quick mode and the training recipe."""
    # the thread count is how the training runs, not what it trains: not part of the key
    return cache.cache_key(model=type(model).__name__, hparams=model.hparams,
                           data=data_identity(splits), seed=int(seed), quick=bool(quick),
                           train={k: v for k, v in train_kwargs.items() if k != "num_threads"},
                           version=2)


def load_or_train(task: str, splits, *, quick: bool = False, seed: int = 0,
                  model_kwargs: dict | None = None, progress: bool = True,
                  retrain: bool = False, **train_kwargs) -> TrainedModel:
    """The trained network of ``task`` ("har" / "kws"), trained once and then loaded from
    ``cache_dir("models")``.

    ``splits``: the task's ``datasets.Splits`` (``orchestration.tasks.prepare`` loads both;
    this module does not load data). The cache key covers the
    model class and hyper-parameters (``model_kwargs``, e.g. ``{"width": 1.0}``), a content
    fingerprint of the data, ``seed``, ``quick`` and the training arguments but the thread
    count (defaults in :data:`TRAIN_DEFAULTS`; ``quick`` caps epochs at :data:`QUICK_EPOCHS`
    and the batch at :data:`QUICK_BATCH_SIZE`; ``num_threads`` changes how long it takes,
    not the recipe). Prints and
    returns the train / tune / test accuracy (test = held-out subjects or voices).

    Weights shipped with the package (:data:`SHIPPED_DIR`, produced by this function and
    :func:`ship`) are used when their key matches, after a checksum check; ``retrain``
    trains anew whatever is cached or shipped (``mobiprox-lab train --retrain``).
    """
    if task not in TRAIN_DEFAULTS:
        raise ValueError(f"task: expected one of {tuple(TRAIN_DEFAULTS)}, got {task!r}")
    if not all(hasattr(splits, n) for n in ("train", "tune", "test", "labels")):
        raise ValueError(f"splits: expected the task's datasets.Splits, got "
                         f"{type(splits).__name__}")
    tkw = {**TRAIN_DEFAULTS[task], **train_kwargs}
    if quick:  # a few hundred examples: small batches, or the optimiser takes ~30 steps
        tkw["epochs"] = min(tkw["epochs"], QUICK_EPOCHS)
        tkw["batch_size"] = min(tkw["batch_size"], QUICK_BATCH_SIZE)
    model = build_model(task, splits.n_classes, splits.input_shape, **(model_kwargs or {}))
    key = weights_key(model, splits, seed=seed, quick=quick, train_kwargs=tkw)
    path = cache.cache_dir("models") / f"{task}_{type(model).__name__}_{key}.pt"
    stats = data_statistics(splits)
    source = None if retrain else path if path.exists() else _shipped(path.name)
    blob = None
    if source is not None:
        blob = torch.load(source, map_location="cpu", weights_only=False)
        why = statistics_mismatch(blob["info"].get("data_stats"), stats)
        if why is not None:
            print(f"[models] {source.name} does not fit this data ({why}): training anew")
            blob = None
    if blob is not None:
        model.load_state_dict(blob["state_dict"])
        model.eval()
        info = {**blob["info"], "cached": True, "shipped": source != path}
        history = blob.get("history", [])
    else:
        t0 = time.perf_counter()
        model, history = train(model, splits, seed=seed, progress=progress, **tkw)
        seconds = time.perf_counter() - t0
        info = {
            "model": type(model).__name__, "hparams": dict(model.hparams),
            "width": model.hparams.get("width"),
            "n_params": int(sum(p.numel() for p in model.parameters())),
            "train_acc": evaluate(model, splits.train), "tune_acc": evaluate(model, splits.tune),
            "test_acc": evaluate(model, splits.test),
            "epochs": len(history),
            "best_epoch": max(history, key=lambda r: r["tune_acc"])["epoch"],
            "seconds": seconds, "seed": int(seed), "quick": bool(quick),
            "train_kwargs": tkw, "key": key,
            "n_train": len(splits.train), "n_tune": len(splits.tune), "n_test": len(splits.test),
            "input_shape": tuple(splits.input_shape), "labels": list(splits.labels),
            "data_stats": stats,
        }
        with cache.atomic_path(path) as tmp:
            torch.save({"state_dict": model.state_dict(), "info": info, "history": history}, tmp)
        info = {**info, "cached": False}
    print(f"[models] {task} {info['model']} {info['hparams']}: train {info['train_acc']:.3f} "
          f"tune {info['tune_acc']:.3f} test (held out) {info['test_acc']:.3f} "
          f"({info['epochs']} epochs, {info['seconds']:.0f} s"
          f"{', cached' if info['cached'] else ''})")
    return TrainedModel(module=model, task=task, labels=tuple(splits.labels),
                        input_shape=tuple(splits.input_shape), info=info, history=history,
                        path=str(path))


def cached_model(task: str, *, quick: bool = False) -> TrainedModel | None:
    """The most recently cached trained model of ``task`` (any data / seed), else the
    shipped one (not in quick mode; checksum checked), or None.

    For tools that want trained weights when they exist but must not train (benchmarks);
    use :func:`load_or_train` for the model that matches a given data configuration.
    Shipped weights are served from the package, never copied into the cache, so without
    them a fresh clone's benchmarks had timed random weights.
    """
    if task not in TRAIN_DEFAULTS:
        raise ValueError(f"task: expected one of {tuple(TRAIN_DEFAULTS)}, got {task!r}")
    cached = sorted(cache.cache_dir("models").glob(f"{task}_*.pt"),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    # lazily: the shipped file's checksum is only computed when no cached file serves
    shipped = () if quick else (path for name, entry in sorted(shipped_manifest().items())
                                if entry["task"] == task and (path := _shipped(name)) is not None)
    for path in itertools.chain(cached, shipped):
        try:
            blob = torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - a corrupt or foreign file: skip it
            continue
        info = blob.get("info", {})
        if bool(info.get("quick")) != quick or "input_shape" not in info:
            continue
        hp = dict(info["hparams"])
        shape = tuple(info["input_shape"])
        model = build_model(task, hp.pop("n_classes"), shape,
                            **{k: v for k, v in hp.items() if k not in ("in_channels", "input_hw")})
        try:
            model.load_state_dict(blob["state_dict"])
        except RuntimeError:  # weights of an older architecture version: skip them
            continue
        model.eval()
        return TrainedModel(module=model, task=task, labels=tuple(info.get("labels", ())),
                            input_shape=shape, info={**info, "cached": True},
                            history=blob.get("history", []), path=str(path))
    return None
