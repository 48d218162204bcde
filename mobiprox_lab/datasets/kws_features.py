"""KWS features: MFCC as the Mobiprox KWS model takes them, and their standardisation.

``mfcc(audio)`` -> float32 (N, 101, 40) (librosa, ``MFCC_PARAMS``);
``fit_standardisation`` / ``model_inputs`` turn them into the model's float32
(N, 1, 101, 40) input.
"""

from __future__ import annotations

import numpy as np

from .. import checks
from .kws_audio import CLIP, SAMPLE_RATE

#: MFCC parameters (Honk / the Mobiprox KWS model): 30 ms windows, 10 ms hop, 20-4000 Hz.
MFCC_PARAMS = {"sr": SAMPLE_RATE, "n_mfcc": 40, "n_mels": 40, "n_fft": 480,
               "win_length": 480, "hop_length": 160, "fmin": 20.0, "fmax": 4000.0,
               "center": True, "top_db": 80.0}
N_FRAMES = 1 + CLIP // MFCC_PARAMS["hop_length"]  # 101


def mfcc(audio: np.ndarray, *, batch: int = 256, workers: int = 2,
         progress: bool = False) -> np.ndarray:
    """MFCC features as the Mobiprox KWS model takes them (``MFCC_PARAMS``), with librosa.

    audio : float (N, n) or (n,) waveforms at 16 kHz; n = 16000 gives 101 frames.
    Returns float32 (N, frames, 40) (or (frames, 40)): 40 mel bands (20-4000 Hz) of the
    power spectrum (480-point FFT, 30 ms Hann window, 10 ms hop, centred frames), in dB
    floored at 80 dB below each clip's own maximum, then a 40-coefficient orthonormal
    DCT-II: per clip exactly ``librosa.feature.mfcc`` of that clip. Computed in batches of
    ``batch`` clips on ``workers`` threads (the result does not depend on either).
    """
    x = np.asarray(audio)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"audio: expected a float array of waveforms, got dtype {x.dtype}")
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.ndim != 2 or x.shape[1] < MFCC_PARAMS["n_fft"]:
        raise ValueError(f"audio: expected shape (N, n) or (n,) with n >= "
                         f"{MFCC_PARAMS['n_fft']}, got {np.shape(audio)}")
    checks.integer("batch", batch, 1)
    checks.integer("workers", workers, 1)
    p = MFCC_PARAMS
    frames = 1 + x.shape[1] // p["hop_length"]
    out = np.empty((len(x), frames, p["n_mfcc"]), dtype=np.float32)

    def run(a: int) -> None:
        import librosa

        chunk = np.ascontiguousarray(x[a:a + batch], dtype=np.float32)
        mel = librosa.feature.melspectrogram(
            y=chunk, sr=p["sr"], n_fft=p["n_fft"], win_length=p["win_length"],
            hop_length=p["hop_length"], center=p["center"], n_mels=p["n_mels"],
            fmin=p["fmin"], fmax=p["fmax"], power=2.0)
        db = librosa.power_to_db(mel, ref=1.0, top_db=None)
        db = np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - p["top_db"])
        coef = librosa.feature.mfcc(S=db, n_mfcc=p["n_mfcc"], dct_type=2, norm="ortho")
        out[a:a + batch] = np.swapaxes(coef, -1, -2)

    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    starts = range(0, len(x), batch)
    if workers == 1 or len(starts) == 1:
        for a in tqdm(starts, desc="mfcc", disable=not progress, leave=False):
            run(a)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for _ in tqdm(pool.map(run, starts), total=len(starts), desc="mfcc",
                          disable=not progress, leave=False):
                pass
    return out[0] if single else out


def fit_standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and std of MFCC ``features`` (N, frames, 40) over clips and
    frames -> two float32 (40,)."""
    f = np.asarray(features)
    if f.ndim != 3:
        raise ValueError(f"features: expected shape (N, frames, n_mfcc), got {f.shape}")
    mean = f.mean(axis=(0, 1), dtype=np.float64)
    std = f.std(axis=(0, 1), dtype=np.float64)
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def model_inputs(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Standardised MFCC ``features`` (N, frames, 40) -> float32 (N, 1, frames, 40)."""
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 3 or f.shape[-1] != len(mean):
        raise ValueError(f"features: expected shape (N, frames, {len(mean)}), got {f.shape}")
    return ((f - mean) / std)[:, None].astype(np.float32)
