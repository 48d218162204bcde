"""Background noise for the KWS clips, and mixing utterances into it.

``noise_stream(kind, length, rng)`` makes continuous noise of one of ``NOISE_TYPES``
(white, pink, brown, babble = a crowd of ``BABBLE_CROWD`` time-shifted talkers, street =
traffic rumble, hiss, clatter and horns); ``make_noise`` crops 1-s clips from it the way
the Speech Commands recipe crops its background recordings. ``render`` places each
utterance in its 1-s clip and mixes it with unit-RMS noise at a speech level and an SNR
(convention in ``kws_audio``), quantised to 16 bits like a WAV.
"""

from __future__ import annotations

import numpy as np

from .. import checks
from .kws_audio import CLIP, SAMPLE_RATE

NOISE_TYPES = ("white", "pink", "brown", "babble", "street")
STREAM_MAX = 2**20  # samples (~65 s): longest noise stream generated at once
#: Babble is a crowd: this many simultaneous talkers, each within ``BABBLE_SPREAD_DB`` of the
#: loudest, so any one talker lies >= 10 dB below the others together and no word of it is
#: intelligible (a "silence" clip must hold no word; "unknown" is for a word). Format 6 had
#: six talkers at -8..0 dB, where the loudest stood only ~3 dB below the rest.
BABBLE_CROWD = 16
BABBLE_SPREAD_DB = 3.0


def unit_rms(x: np.ndarray) -> np.ndarray:
    """float32 ``x`` scaled to unit RMS along the last axis."""
    x = np.asarray(x, dtype=np.float32)
    power = np.einsum("...i,...i->...", x, x, dtype=np.float64) / x.shape[-1]
    scale = (1.0 / np.sqrt(np.maximum(power, 1e-24))).astype(np.float32)
    return x * scale[..., None]


def _coloured_stream(length: int, rng: np.random.Generator, exponent: float,
                     lowpass_hz: float | None = None) -> np.ndarray:
    """float32 (length,) Gaussian noise with power spectrum ~ 1/f**exponent above 20 Hz."""
    spec = np.fft.rfft(rng.standard_normal(length, dtype=np.float32))
    f = np.fft.rfftfreq(length, 1.0 / SAMPLE_RATE)
    shape = np.maximum(f, 20.0) ** (-exponent / 2.0)
    shape[0] = 0.0
    if lowpass_hz:
        shape /= np.sqrt(1.0 + (f / lowpass_hz) ** 4)
    return unit_rms(np.fft.irfft(spec * shape.astype(np.float32), n=length))


def _babble_stream_noise(length: int, rng: np.random.Generator,
                         speech: np.ndarray) -> np.ndarray:
    """float32 (length,): ``BABBLE_CROWD`` talkers, time-shifted copies of ``speech`` at
    -``BABBLE_SPREAD_DB``..0 dB each."""
    if len(speech) < CLIP:
        raise ValueError(f"babble_speech: expected at least {CLIP} samples of 16 kHz speech, "
                         f"got {len(speech)}")
    base = np.resize(np.asarray(speech, dtype=np.float32), length)
    out = np.zeros(length, dtype=np.float32)
    for _ in range(BABBLE_CROWD):
        out += np.float32(10.0 ** (rng.uniform(-BABBLE_SPREAD_DB, 0.0) / 20.0)) * np.roll(
            base, int(rng.integers(len(speech))))
    return unit_rms(out)


def _street_stream(length: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (length,) traffic-like noise: low-frequency rumble that swells as vehicles
    pass (Gaussian bumps of 1-4 s, ~one every 3 s), a pink hiss floor, clatter bursts
    (~1.2 per s, 20-150 ms decaying noise) and occasional horns (~0.1 per s)."""
    dur = length / SAMPLE_RATE
    swell = np.full(length, 0.3, dtype=np.float32)
    for centre in rng.uniform(-2.0, dur + 2.0, rng.poisson(dur / 3.0 + 1)):
        height, width = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0)
        a = int(max(0.0, centre - 4 * width) * SAMPLE_RATE)
        b = int(min(dur, centre + 4 * width) * SAMPLE_RATE)
        if b > a:
            tt = np.arange(a, b) / SAMPLE_RATE
            swell[a:b] += (height * np.exp(-0.5 * ((tt - centre) / width) ** 2)).astype(
                np.float32)
    out = _coloured_stream(length, rng, 2.0, lowpass_hz=200.0) * swell
    out += np.float32(0.35) * _coloured_stream(length, rng, 1.0)
    for _ in range(rng.poisson(1.2 * dur)):
        n = int(rng.uniform(0.02, 0.15) * SAMPLE_RATE)
        start = int(rng.integers(0, length - n))
        out[start:start + n] += (rng.uniform(1.0, 4.0) * np.exp(-np.arange(n) / (n / 4.0))
                                 * rng.standard_normal(n)).astype(np.float32)
    for _ in range(rng.poisson(0.1 * dur)):
        n = int(rng.uniform(0.2, 0.5) * SAMPLE_RATE)
        start = int(rng.integers(0, length - n))
        f0, tt = rng.uniform(350.0, 500.0), np.arange(n) / SAMPLE_RATE
        tone = sum(np.sign(np.sin(2 * np.pi * f0 * h * tt)) / h for h in (1, 2, 3))
        out[start:start + n] += (rng.uniform(0.5, 2.0) * tone * np.hanning(n)).astype(np.float32)
    return unit_rms(out)


def noise_stream(kind: str, length: int, rng: np.random.Generator,
                 babble_speech: np.ndarray | None = None) -> np.ndarray:
    """float32 (length,) continuous background noise of type ``kind`` (``NOISE_TYPES``) at
    16 kHz, unit RMS overall. ``babble_speech`` (float32 (m,) 16 kHz speech, m >= 16000)
    is required for "babble"."""
    checks.choice("kind", kind, NOISE_TYPES)
    if length < CLIP:
        raise ValueError(f"length: expected >= {CLIP} samples, got {length}")
    if kind == "white":
        return unit_rms(rng.standard_normal(length, dtype=np.float32))
    if kind in ("pink", "brown"):
        return _coloured_stream(length, rng, 1.0 if kind == "pink" else 2.0)
    if kind == "babble":
        if babble_speech is None:
            raise ValueError("babble_speech: expected 16 kHz speech for kind='babble'")
        return _babble_stream_noise(length, rng, babble_speech)
    return _street_stream(length, rng)


def make_noise(kind: str, n: int, rng: np.random.Generator,
               babble_speech: np.ndarray | None = None) -> np.ndarray:
    """float32 (n, 16000) background clips of type ``kind``, unit RMS each: random 1-s crops
    (random polarity) of one ``noise_stream`` of about n / 8 s (8 s to ~65 s), the way the
    Speech Commands recipe crops a few long background recordings."""
    if n < 0:
        raise ValueError(f"n: expected a count >= 0, got {n}")
    length = int(min(max(n * CLIP // 8, 8 * CLIP), STREAM_MAX))
    stream = noise_stream(kind, length, rng, babble_speech)
    start = rng.integers(0, length - CLIP + 1, n)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    out = np.empty((n, CLIP), dtype=np.float32)
    for i in range(n):
        out[i] = stream[start[i]:start[i] + CLIP] * sign[i]
    return unit_rms(out) if n else out


def noise_matrix(kinds: np.ndarray, rng: np.random.Generator,
                 babble_speech: np.ndarray | None) -> np.ndarray:
    """float32 (len(kinds), CLIP) unit-RMS noise, example i of type ``kinds[i]``."""
    out = np.zeros((len(kinds), CLIP), dtype=np.float32)
    for kind in NOISE_TYPES:
        idx = np.flatnonzero(kinds == kind)
        if len(idx):
            out[idx] = make_noise(kind, len(idx), rng, babble_speech)
    return out



def place(clips: list[np.ndarray], shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Put each utterance into a 1-s clip at a relative position ``shift`` in [0, 1)
    and scale it to unit RMS over the utterance; returns (float32 (n, CLIP), lengths)."""
    out = np.zeros((len(clips), CLIP), dtype=np.float32)
    lengths = np.zeros(len(clips), dtype=np.int64)
    for i, c in enumerate(clips):
        c = c[:CLIP]
        if len(c) == 0:
            continue
        rms = float(np.sqrt(np.mean(np.square(c, dtype=np.float64))))
        start = int(shift[i] * (CLIP - len(c)))
        out[i, start:start + len(c)] = c / max(rms, 1e-9)
        lengths[i] = len(c)
    return out, lengths


def render(clips: list[np.ndarray | None], shift: np.ndarray, noise: np.ndarray,
           level_db: np.ndarray, snr_db: np.ndarray, chunk: int = 256) -> np.ndarray:
    """int16 (n, CLIP) mixtures: utterance ``clips[i]`` (None: silence) placed at ``shift``,
    at ``level_db`` dBFS RMS over the utterance, plus unit-RMS ``noise`` at
    ``level_db - snr_db`` dBFS (silence: noise at ``level_db``). A clip whose peak would
    exceed 0.99 is scaled down as a whole (SNR kept); quantised to 16 bits like a WAV."""
    n = len(clips)
    out = np.empty((n, CLIP), dtype=np.int16)
    silent = np.array([c is None for c in clips], dtype=bool)
    g_s = np.where(silent, 0.0, 10.0 ** (level_db / 20.0)).astype(np.float32)
    g_n = (10.0 ** ((level_db - np.where(silent, 0.0, snr_db)) / 20.0)).astype(np.float32)
    empty = np.zeros(0, np.float32)
    for a in range(0, n, chunk):
        sl = slice(a, min(n, a + chunk))
        speech, _ = place([empty if c is None else c for c in clips[sl]], shift[sl])
        x = speech * g_s[sl, None] + noise[sl] * g_n[sl, None]
        peak = np.abs(x).max(axis=1, keepdims=True)
        x *= np.minimum(np.float32(1.0), np.float32(0.99) / np.maximum(peak, 1e-12))
        out[sl] = np.rint(x * np.float32(32767.0))
    return out
