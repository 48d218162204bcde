"""Training and evaluating the networks: augmentation, the optimiser loop with early
stopping on the tune split, and the per-task recipes (:data:`TRAIN_DEFAULTS`)."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from .nets import HarMobileNet


def _check_split(split, name: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = getattr(split, "x", None), getattr(split, "y", None)
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype != np.float32:
        raise ValueError(f"{name}.x: expected a float32 array (N, C, H, W), got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
    if not isinstance(y, np.ndarray) or y.shape != (len(x),):
        raise ValueError(f"{name}.y: expected an int array of shape ({len(x)},), got "
                         f"{getattr(y, 'shape', type(y).__name__)}")
    return x, y.astype(np.int64, copy=False)


@torch.no_grad()
def predict_logits(module: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """float32 (N, n_classes) logits of ``module`` (put in eval mode) on ``x`` (N, C, H, W)."""
    module.eval()
    out = [module(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size]))).numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def evaluate(module: nn.Module, split, batch_size: int = 512) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``module`` on a ``Split`` (``.x``, ``.y``)."""
    x, y = _check_split(split, "split")
    if len(y) == 0:
        return float("nan")
    return float((predict_logits(module, x, batch_size).argmax(1) == y).mean())


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


_IMAGE_AXES = (0, 1, 2, 1, 0, 2, 0, 1)  # axis of each row of an 8-row signal-image group


def _image_to_raw(img: torch.Tensor) -> torch.Tensor:
    """HAR signal images (N, 3, 32, 32) -> windows (N, 3 sensors, 3 axes, 128 samples)."""
    n = img.shape[0]
    g = img.reshape(n, 3, 4, 8, 32)[:, :, :, :3, :]  # rows 0, 1, 2 of a group: x, y, z
    return g.permute(0, 1, 3, 2, 4).reshape(n, 3, 3, 128)


def _raw_to_image(raw: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_image_to_raw` (the authors' row layout x,y,z,y,x,z,x,y)."""
    n = raw.shape[0]
    g = raw.reshape(n, 3, 3, 4, 32)[:, :, list(_IMAGE_AXES)]  # (N, 3, 8, 4, 32)
    return g.permute(0, 1, 3, 2, 4).reshape(n, 3, 32, 32)


def _rotations(n: int, max_deg: float, gen: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) rotation matrices from uniform angles in [-max_deg, max_deg] about x, y, z."""
    a = (torch.rand(n, 3, generator=gen) * 2 - 1) * np.deg2rad(max_deg)
    c, s = torch.cos(a), torch.sin(a)
    one, zero = torch.ones(n), torch.zeros(n)
    rx = torch.stack([one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]], 1)
    ry = torch.stack([c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]], 1)
    rz = torch.stack([c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one], 1)
    return rx.view(n, 3, 3) @ ry.view(n, 3, 3) @ rz.view(n, 3, 3)


def _augment(xb: torch.Tensor, kind: str | None, gen: torch.Generator,
             max_rotation_deg: float = 15.0,
             standardisation: tuple[torch.Tensor, torch.Tensor] | None = None,
             asinh: tuple[float, list[int]] | None = None) -> torch.Tensor:
    """Light, label-preserving augmentation of a batch (N, C, H, W).

    "har" (signal images): unfold to the 3x3x128 windows, then per example a time warp
    (speed x0.8-1.25 plus a shift of up to +-16 samples: people move at different paces
    and phases), a small rotation of the x/y/z axes (up to ``max_rotation_deg`` about each axis: the
    device sits differently on each body; on HAPT, dropping it lost 1 pp), a per-sensor
    gain (+-10 %) and noise; fold back. ``standardisation`` (mean, std: (3 sensors, 3
    axes) each): rotate the windows in their physical units (g, rad/s), i.e. undo the
    per-channel standardisation around the rotation; without it the standardised values
    are rotated, which leaves the gravity component (subtracted as the channel means) in
    place. ``asinh`` (scale, image channels): the inputs hold ``asinh(v / scale)`` of those
    channels (``datasets.har.model_inputs``); they are turned back into standardised
    values before the steps above and transformed again after them, so the augmentation
    acts on the sensor axes, not on their logarithm. "kws" (MFCC): a time shift of up to
    +-10 frames and light noise; "kws_masks" adds time and coefficient masks (:func:`_masks`).
    """
    if not kind:
        return xb
    n = xb.shape[0]
    if kind == "har":
        if xb.shape[1:] != (3, 32, 32):
            raise ValueError(f"augment: 'har' expects (N, 3, 32, 32) signal images, "
                             f"got {tuple(xb.shape)}")
        if asinh is not None:
            xb = xb.clone()
            xb[:, asinh[1]] = torch.sinh(xb[:, asinh[1]]) * asinh[0]
        raw = _image_to_raw(xb)
        scale = torch.exp((torch.rand(n, 1, generator=gen) * 2 - 1) * np.log(1.25))
        shift = (torch.rand(n, 1, generator=gen) * 2 - 1) * 16
        pos = ((torch.arange(128.0) - 63.5) * scale + 63.5 + shift).clamp(0, 127)
        i0 = pos.floor().long().clamp(max=126)
        frac = (pos - i0).view(n, 1, 1, 128)
        idx0 = i0.view(n, 1, 1, 128).expand(n, 3, 3, 128)
        raw = torch.gather(raw, 3, idx0) * (1 - frac) + torch.gather(raw, 3, idx0 + 1) * frac
        rot = _rotations(n, max_rotation_deg, gen)
        if standardisation is None:
            raw = torch.einsum("nij,nsjt->nsit", rot, raw)
        else:
            mean, std = (v.view(1, 3, 3, 1) for v in standardisation)
            raw = (torch.einsum("nij,nsjt->nsit", rot, raw * std + mean) - mean) / std
        raw = raw * (1.0 + 0.1 * torch.randn(n, 3, 1, 1, generator=gen))
        raw = raw + 0.05 * torch.randn(raw.shape, generator=gen)
        out = _raw_to_image(raw).contiguous()
        if asinh is not None:
            out[:, asinh[1]] = torch.asinh(out[:, asinh[1]] / asinh[0])
        return out
    if kind in ("kws", "kws_masks"):
        # time shift of up to +-10 frames (zero filled) and light noise: voices differ in timing
        shifts = torch.randint(-10, 11, (n,), generator=gen)
        out = torch.zeros_like(xb)
        t = xb.shape[2]
        for i, s in enumerate(shifts.tolist()):
            if s >= 0:
                out[i, :, s:] = xb[i, :, :t - s]
            else:
                out[i, :, :t + s] = xb[i, :, -s:]
        out = out + 0.05 * torch.randn(xb.shape, generator=gen) * xb.std()
        return _masks(out, gen) if kind == "kws_masks" else out
    raise ValueError(f"augment: expected None, 'har', 'kws' or 'kws_masks', got {kind!r}")


def _masks(xb: torch.Tensor, gen: torch.Generator, max_frames: int = 10,
           max_coefs: int = 5) -> torch.Tensor:
    """SpecAugment-style masking of standardised MFCC (N, 1, frames, coefficients): per
    example two time masks of 0..``max_frames`` frames and two masks of 0..``max_coefs``
    coefficients, set to 0 (the training mean): a word stays recognisable when part of
    it is buried in noise."""
    n, _, t, f = xb.shape
    keep = torch.ones(n, 1, t, f)
    for size, axis in ((max_frames, 2), (max_frames, 2), (max_coefs, 3), (max_coefs, 3)):
        extent = xb.shape[axis]
        length = torch.randint(0, min(size, extent) + 1, (n,), generator=gen)
        start = (torch.rand(n, generator=gen) * (extent - length + 1)).long()
        pos = torch.arange(extent)[None]
        masked = (pos >= start[:, None]) & (pos < (start + length)[:, None])  # (n, extent)
        shape = (n, 1, extent, 1) if axis == 2 else (n, 1, 1, extent)
        keep = keep * (~masked).float().view(shape)
    return xb * keep


def train(model: nn.Module, splits, *, epochs: int = 30, lr: float = 2e-3,
          batch_size: int = 64, seed: int = 0, patience: int = 6,
          weight_decay: float = 1e-4, augment: str | None = None,
          max_rotation_deg: float = 15.0, rotation_units: str = "standardised",
          label_smoothing: float = 0.0, warmup_epochs: int = 0, num_threads: int | None = 1,
          keep: str = "best_tune", progress: bool = True) -> tuple[nn.Module, list[dict]]:
    """Train ``model`` on ``splits.train`` with AdamW + cosine learning rate, early stopping
    on ``splits.tune`` accuracy.

    Deterministic for a ``seed``: the initial weights are re-drawn from it, the data order
    and augmentation come from seeded generators, and torch's deterministic algorithms are on.
    ``augment``: None, "har", "kws" or "kws_masks" (see :func:`_augment`);
    ``max_rotation_deg``: the largest axis rotation of "har" (degrees about each axis).
    ``rotation_units``: "standardised" (rotate the standardised channels) or "physical"
    (rotate in g and rad/s: needs ``splits.meta["standardisation"]`` {"mean", "std": (9,)}).
    When ``splits.meta`` has ``asinh_scale`` and ``asinh_image_channels`` (HAR inputs
    from ``datasets.har.prepare``), "har" undoes that transform around its steps.
    ``warmup_epochs``: linear learning-rate warm-up (the KWS CNN has no batch norm and
    dies at full lr from step 1).
    ``num_threads``: torch threads while training (default 1: on the shared 2-core box two
    threads oversubscribe and ran an epoch ~10x slower, and one thread makes the result
    independent of the core count; None keeps torch's setting).
    ``keep``: which weights are returned, "best_tune" (those of the epoch with the best tune
    accuracy), "last" (those after the last epoch run; with ``patience >= epochs`` the
    cosine schedule runs to its end) or "average" (the mean of the weights after each of
    the last ``ceil(epochs / 2)`` epochs, stochastic weight averaging on the cosine tail,
    with batch-norm statistics re-estimated on the un-augmented training inputs; needs
    ``patience >= epochs``). HAR's tune split is 4 subjects, near 1.0 and noisy between
    epochs, so its best epoch can be an early one.
    Returns (model in eval mode, history: one dict per epoch).
    """
    for name, v, lo in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                        ("patience", patience, 1)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr: expected a positive float, got {lr!r}")
    if not 0 <= max_rotation_deg <= 180:
        raise ValueError(f"max_rotation_deg: expected degrees in [0, 180], got "
                         f"{max_rotation_deg!r}")
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep: expected one of {KEEP_CHOICES}, got {keep!r}")
    if keep == "average" and patience < epochs:
        raise ValueError(f'patience: keep="average" averages the last epochs of the whole '
                         f"schedule, expected patience >= epochs ({epochs}), got {patience}")
    if rotation_units not in ROTATION_UNITS:
        raise ValueError(f"rotation_units: expected one of {ROTATION_UNITS}, got "
                         f"{rotation_units!r}")
    standardisation = None
    if rotation_units == "physical":
        st = getattr(splits, "meta", {}).get("standardisation")
        if st is None:
            raise ValueError('rotation_units: "physical" needs splits.meta["standardisation"] '
                             '{"mean", "std"} of the 9 channels')
        standardisation = tuple(torch.as_tensor(np.asarray(st[k], np.float32).reshape(3, 3))
                                for k in ("mean", "std"))
    asinh = None
    meta = getattr(splits, "meta", {})
    if meta.get("asinh_scale") is not None:
        asinh = (float(meta["asinh_scale"]), [int(c) for c in meta["asinh_image_channels"]])
    xtr, ytr = _check_split(splits.train, "splits.train")
    _check_split(splits.tune, "splits.tune")
    if len(ytr) == 0:
        raise ValueError("splits.train: expected at least one example, got 0")

    prev_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _train(model, splits, xtr, ytr, epochs=epochs, lr=lr, batch_size=batch_size,
                      seed=seed, patience=patience, weight_decay=weight_decay, augment=augment,
                      max_rotation_deg=max_rotation_deg, standardisation=standardisation,
                      asinh=asinh, label_smoothing=label_smoothing, warmup_epochs=warmup_epochs,
                      keep=keep, progress=progress)
    finally:
        torch.set_num_threads(prev_threads)


def _train(model, splits, xtr, ytr, *, epochs, lr, batch_size, seed, patience, weight_decay,
           augment, max_rotation_deg, standardisation, asinh, label_smoothing, warmup_epochs,
           keep, progress):
    from tqdm.auto import tqdm

    with _deterministic():
        torch.manual_seed(seed)
        for m in model.modules():  # re-initialise from the seed
            if m is not model and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        if isinstance(model, HarMobileNet):
            for m in model.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
        best_acc, best_state, best_epoch, history = -1.0, None, 0, []
        average, n_averaged, average_from = None, 0, epochs - (epochs + 1) // 2
        bar = tqdm(range(epochs), desc=f"train {type(model).__name__}", disable=not progress)
        for epoch in bar:
            t0 = time.perf_counter()
            model.train()
            order = torch.randperm(len(yt), generator=gen)
            total, correct, loss_sum = 0, 0, 0.0
            n_batches = (len(order) + batch_size - 1) // batch_size
            for b, i in enumerate(range(0, len(order), batch_size)):
                if epoch < warmup_epochs:  # linear warm-up per batch, ends at the base lr
                    frac = (epoch * n_batches + b + 1) / (warmup_epochs * n_batches)
                    for pg in opt.param_groups:
                        pg["lr"] = lr * frac
                idx = order[i:i + batch_size]
                if len(idx) < 2 and total > 0:  # a batch of 1 breaks batch norm
                    continue
                xb = _augment(xt[idx], augment, gen, max_rotation_deg, standardisation, asinh)
                out = model(xb)
                loss = loss_fn(out, yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += len(idx)
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((out.argmax(1) == yt[idx]).sum())
            sched.step()
            tune_acc = evaluate(model, splits.tune)
            rec = {"epoch": epoch + 1, "loss": loss_sum / max(total, 1),
                   "train_acc": correct / max(total, 1), "tune_acc": tune_acc,
                   "seconds": time.perf_counter() - t0}
            history.append(rec)
            if tune_acc > best_acc:
                best_acc, best_epoch = tune_acc, epoch + 1
                best_state = copy.deepcopy(model.state_dict())
            if keep == "average" and epoch >= average_from:
                average, n_averaged = _accumulate(average, n_averaged, model), n_averaged + 1
            bar.set_postfix(loss=f"{rec['loss']:.3f}", tune=f"{tune_acc:.3f}",
                            best=f"{best_acc:.3f}")
            if epoch + 1 - best_epoch >= patience:
                break
        if keep == "best_tune" and best_state is not None:
            model.load_state_dict(best_state)
        elif keep == "average" and average is not None:
            with torch.no_grad():
                for p, mean in zip(model.parameters(), average, strict=True):
                    p.copy_(mean)
            _refresh_batch_norm(model, xt, batch_size)
    model.eval()
    return model, history


def _accumulate(average: list | None, n: int, model: nn.Module) -> list[torch.Tensor]:
    """Running mean of ``model``'s parameters: ``average`` holds the mean of ``n`` snapshots."""
    params = [p.detach() for p in model.parameters()]
    if average is None:
        return [p.clone() for p in params]
    return [a + (p - a) / (n + 1) for a, p in zip(average, params, strict=True)]


@torch.no_grad()
def _refresh_batch_norm(model: nn.Module, xt: torch.Tensor, batch_size: int) -> None:
    """Re-estimate every batch-norm layer's running mean and variance as the plain average
    over the training inputs ``xt`` (no augmentation), as averaged weights need."""
    norms = [m for m in model.modules()
             if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    for i in range(0, len(xt), batch_size):
        if i == 0 or len(xt) - i >= 2:  # a trailing batch of one breaks batch norm
            model(xt[i:i + batch_size])
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


#: The values of :func:`train`'s ``keep``.
KEEP_CHOICES = ("best_tune", "last", "average")
#: The values of :func:`train`'s ``rotation_units``.
ROTATION_UNITS = ("standardised", "physical")

TRAIN_DEFAULTS: dict[str, dict] = {
    "har": {"epochs": 12, "lr": 2e-3, "batch_size": 64, "patience": 6, "augment": "har",
            "weight_decay": 0.05, "label_smoothing": 0.1},
    "kws": {"epochs": 8, "lr": 3e-3, "batch_size": 64, "patience": 8, "augment": "kws_masks",
            "weight_decay": 0.01, "label_smoothing": 0.1, "warmup_epochs": 1,
            "num_threads": 2},
}
QUICK_EPOCHS = 10
QUICK_BATCH_SIZE = 16

