"""Keyword spotting (KWS): Speech Commands, synthetic keywords, MFCC, noisy-context traces.

The task follows the Mobiprox KWS setup (Speech Commands v0.01, 12 labels: silence,
unknown and ten keywords; 1-s clips at 16 kHz; MFCC 101 x 40).

- ``load_speech_commands(root, split)`` reads the real dataset from disk.
- ``synth_keywords()`` (the offline default) synthesises the same 12-class task with
  eSpeak NG (``espeakng-loader``). Speakers (``synth_voices``) are eSpeak voice variants
  generated at random (male / female / child vocal tracts: pitch, formant scaling, voice
  quality) plus eSpeak's standard variants, each with an accent (English dialects or
  foreign-accented English), a speaking rate, pitch, pitch range and vocal-tract warp.
  Each utterance is jittered, shifted at random in its 1-s clip and mixed with generated
  background noise (white, pink, brown, babble, street) over a range of SNRs. Speakers
  are split into train / tune / test, so the test set holds unseen voices.
- ``mfcc(audio)`` -> float32 (N, 101, 40) features computed with librosa.
- ``prepare()`` -> model-ready ``Splits`` with x float32 (N, 1, 101, 40).
- ``context_trace()`` -> a voice-assistant ``Trace`` from held-out voices, one input a
  second: long stretches of background and of people talking nearby (unknown words),
  commands in bursts (``speech_schedule``), while the background drifts between quiet,
  office and street noise. ``mean_run_lengths`` measures how long labels persist.

SNR convention: 10 log10 of the speech power over the utterance itself (the trimmed
word, not the whole clip) over the noise power over the 1-s clip. NaN where it is
undefined (silence examples, real recordings).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import cache
from . import Split, Splits
from .traces import Trace

LABELS = ("silence", "unknown", "yes", "no", "up", "down", "left", "right", "on", "off",
          "stop", "go")
KEYWORDS = LABELS[2:]
SILENCE, UNKNOWN = 0, 1
#: The 20 auxiliary words of Speech Commands v0.01, the synthetic "unknown" vocabulary.
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree",
                 "wow", "zero", "one", "two", "three", "four", "five", "six", "seven",
                 "eight", "nine")
SAMPLE_RATE = 16000  # Hz
CLIP = 16000  # samples per example (1 s)
BACKGROUND = "_background_noise_"
#: MFCC parameters (Honk / the Mobiprox KWS model): 30 ms windows, 10 ms hop, 20-4000 Hz.
MFCC_PARAMS = {"sr": SAMPLE_RATE, "n_mfcc": 40, "n_mels": 40, "n_fft": 480,
               "win_length": 480, "hop_length": 160, "fmin": 20.0, "fmax": 4000.0,
               "center": True, "top_db": 80.0}
N_FRAMES = 1 + CLIP // MFCC_PARAMS["hop_length"]  # 101
NOISE_TYPES = ("white", "pink", "brown", "babble", "street")
#: eSpeak NG language voices: native English dialects, then foreign-accented English
#: (languages whose letter-to-sound rules read the ten keywords recognisably).
ACCENTS_EN = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
              "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
ACCENTS_FOREIGN = ("de", "es", "it", "pl", "ro", "cs")
#: Background contexts of ``context_trace``: SNR centre (dB) and the noise types heard.
CONTEXTS = {
    "quiet": {"snr_db": 25.0, "noise": ("pink", "brown")},
    "office": {"snr_db": 12.0, "noise": ("babble",)},
    "street": {"snr_db": 0.0, "noise": ("street",)},
}
#: Sentences read by the babble talkers (no keyword among them).
BABBLE_TEXT = (
    "The weather report said it will be cloudy with light rain later this evening.",
    "We should meet at the library after lunch to finish the project together.",
    "My brother bought a new bicycle and rides it to work every morning.",
    "Could you pass the salt and pepper, and maybe some bread as well?",
    "The meeting has been moved to Thursday because the manager is travelling.",
    "I think the train was delayed again, so I will be a little late.",
    "She has been learning to play the piano since she was a child.",
    "They painted the kitchen a bright shade of yellow last summer.",
    "Remember to water the plants while I am away this week.",
    "The museum has a wonderful collection of old maps and paintings.",
    "Our neighbours are having a party for their daughter's birthday.",
    "The coffee in this place is much better than the one near the station.",
)
SPLIT_NAMES = ("train", "tune", "test")
_FORMAT = 5  # bump when generation changes, to invalidate cached artefacts


# ----------------------------------------------------------------------------- data type


@dataclass
class AudioSet:
    """Fixed-length 1-s audio examples with who said what, and how noisy.

    audio : float32 (N, 16000) waveform in [-1, 1] at 16 kHz.
    y : int64 (N,) class index into ``labels``.
    speaker : str (N,) speaker / voice id ("_silence_<split>_" for silence examples).
    word : str (N,) what is said ("_silence_" for silence).
    split : str (N,) "train" / "validation" / "test" (real) or "train" / "tune" / "test".
    snr_db : float32 (N,) speech-to-noise ratio in dB; NaN where undefined.
    noise : str (N,) background noise type ("" for none / unknown, a file stem for real
        background clips).
    extra : more per-example (N,) arrays (voice rate, pitch, shift...), shown by ``info``.
    meta : dataset-level facts (source, seed, parameters...).
    """

    audio: np.ndarray
    y: np.ndarray
    speaker: np.ndarray
    word: np.ndarray
    split: np.ndarray
    snr_db: np.ndarray
    noise: np.ndarray
    labels: tuple[str, ...] = LABELS
    extra: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.audio = np.asarray(self.audio, dtype=np.float32)
        if self.audio.ndim != 2 or self.audio.shape[1] != CLIP:
            raise ValueError(f"audio: expected shape (N, {CLIP}), got {self.audio.shape}")
        n = len(self.audio)
        self.y = np.asarray(self.y, dtype=np.int64)
        self.snr_db = np.asarray(self.snr_db, dtype=np.float32)
        for attr in ("speaker", "word", "split", "noise"):
            setattr(self, attr, np.asarray(getattr(self, attr), dtype=str))
        for attr in ("y", "speaker", "word", "split", "snr_db", "noise"):
            if getattr(self, attr).shape != (n,):
                raise ValueError(f"{attr}: expected shape ({n},), "
                                 f"got {getattr(self, attr).shape}")
        for key, arr in self.extra.items():
            if np.shape(arr) != (n,):
                raise ValueError(f"extra[{key!r}]: expected shape ({n},), got {np.shape(arr)}")
        self.labels = tuple(str(s) for s in self.labels)
        if n and (self.y.min() < 0 or self.y.max() >= len(self.labels)):
            raise ValueError(f"y: expected values in [0, {len(self.labels)}), "
                             f"got [{self.y.min()}, {self.y.max()}]")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> AudioSet:
        """The examples at ``index`` (int indices or a boolean mask of length N)."""
        index = np.asarray(index)
        return AudioSet(self.audio[index], self.y[index], self.speaker[index],
                        self.word[index], self.split[index], self.snr_db[index],
                        self.noise[index], self.labels,
                        {k: np.asarray(v)[index] for k, v in self.extra.items()},
                        dict(self.meta))

    def class_counts(self) -> np.ndarray:
        """int64 (n_classes,) number of examples of each class."""
        return np.bincount(self.y, minlength=len(self.labels)).astype(np.int64)

    def info(self):
        """pandas DataFrame, one row per example: label, word, speaker, split, snr_db, noise,
        and the ``extra`` columns (no audio)."""
        import pandas as pd

        cols = {"y": self.y, "label": np.asarray(self.labels)[self.y], "word": self.word,
                "speaker": self.speaker, "split": self.split, "snr_db": self.snr_db,
                "noise": self.noise}
        cols.update({k: np.asarray(v) for k, v in self.extra.items()})
        return pd.DataFrame(cols)


def _check_choice(name: str, value, options) -> None:
    if value not in options:
        raise ValueError(f"{name}: expected one of {tuple(options)}, got {value!r}")


def _check_fraction(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 10.0:
        raise ValueError(f"{name}: expected a number in [0, 10]"
                         f"{' or None' if allow_none else ''}, got {value!r}")


# ------------------------------------------------------------------ real Speech Commands


def _wav_truncation(path: Path) -> str | None:
    """Why a RIFF / WAVE file's ``data`` chunk is cut short (libsndfile reads such a file
    silently, returning fewer samples), or None when its length matches its header."""
    import struct

    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # not RIFF: libsndfile judges it
        size = path.stat().st_size
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            tag, n = struct.unpack("<4sI", fh.read(8))
            if tag == b"data":
                if n in (0, 0xFFFFFFFF):  # size unknown (a streamed file)
                    return None
                if pos + 8 + n > size:
                    return (f"truncated: the header announces {n} bytes of audio, the file "
                            f"holds {size - pos - 8}")
                return None
            pos += 8 + n + (n & 1)
    return None


def _read_wav(path: Path) -> np.ndarray:
    """A mono 16 kHz WAV as float32 (n,) in [-1, 1]; ValueError naming ``root`` and the file
    if it is unreadable, truncated, empty, not 16 kHz or not mono."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise ValueError(f"root: {path}: expected a readable WAV file ({exc})") from exc
    if sr != SAMPLE_RATE:
        raise ValueError(f"root: {path}: expected a {SAMPLE_RATE} Hz sample rate, got {sr} Hz")
    if data.shape[1] != 1:
        raise ValueError(f"root: {path}: expected a mono file, got {data.shape[1]} channels")
    why = _wav_truncation(path)
    if why:
        raise ValueError(f"root: {path}: expected a complete WAV file, {why}")
    if len(data) == 0:
        raise ValueError(f"root: {path}: expected audio samples, the file holds none")
    return np.clip(data[:, 0], -1.0, 1.0)


def _fit_clip(wav: np.ndarray) -> np.ndarray:
    """Pad with zeros at the end / trim to exactly ``CLIP`` samples."""
    out = np.zeros(CLIP, dtype=np.float32)
    n = min(len(wav), CLIP)
    out[:n] = wav[:n]
    return out


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        raise FileNotFoundError(f"root: expected the Speech Commands split list {path} "
                                f"(one relative path like 'yes/0a7c2a8d_nohash_0.wav' a line)")
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines()
            if line.strip()}


_LAYOUT = (f"one sub-folder of 16 kHz mono WAVs per word (yes/, no/, ...), "
           f"validation_list.txt, testing_list.txt and {BACKGROUND}/")


def _check_layout(root) -> Path:
    """``root`` as a Path after checking it looks like a Speech Commands folder:
    FileNotFoundError if it or its split lists are missing, ValueError for a wrong layout."""
    if not isinstance(root, (str, Path)) or not str(root):
        raise ValueError(f"root: expected the path of the Speech Commands folder ({_LAYOUT}), "
                         f"got {root!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root: expected the Speech Commands folder ({_LAYOUT}); "
                                f"{root} does not exist or is not a folder")
    entries = list(root.iterdir())
    if not entries:
        raise FileNotFoundError(f"root: expected the Speech Commands folder ({_LAYOUT}); "
                                f"{root} is empty")
    nested = sorted(p for p in entries if (p / "testing_list.txt").is_file())
    if not (root / "testing_list.txt").is_file() and nested:
        raise ValueError(f"root: expected the Speech Commands folder itself ({_LAYOUT}); "
                         f"{root} holds it one level down: pass root={str(nested[0])!r}")
    for name in ("validation_list.txt", "testing_list.txt"):
        _read_list(root / name)  # FileNotFoundError naming root if missing
    folders = sorted(p.name for p in entries if p.is_dir() and not p.name.startswith("_")
                     and any(p.glob("*.wav")))
    if not folders:
        flat = len(list(root.glob("*.wav")))
        raise ValueError(f"root: expected {_LAYOUT}; {root} has no sub-folder of WAVs"
                         + (f" ({flat} WAVs lie directly in it)" if flat else ""))
    if not set(folders) & set(KEYWORDS):
        shown = ", ".join(folders[:8]) + (", ..." if len(folders) > 8 else "")
        raise ValueError(f"root: expected keyword folders {KEYWORDS} (Speech Commands "
                         f"layout: {_LAYOUT}); {root} has only: {shown}")
    return root


def _speech_commands_files(root: Path) -> list[str]:
    """Relative paths ``word/file.wav`` of every word clip under ``root``, sorted."""
    files = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith("_"):
            continue
        files.extend(f"{folder.name}/{f.name}" for f in sorted(folder.glob("*.wav")))
    return files


def load_speech_commands(root: str | Path, split: str = "train", *,
                         silence_fraction: float = 0.1, unknown_fraction: float | None = 0.1,
                         seed: int = 0, progress: bool = True) -> AudioSet:
    """One split of the real Speech Commands dataset (v0.01 or v0.02 layout) as 1-s clips.

    root : folder with one sub-folder of 16 kHz mono WAVs per word
        (``<speaker>_nohash_<n>.wav``), ``validation_list.txt``, ``testing_list.txt`` and
        ``_background_noise_/``. FileNotFoundError if it, or a split list, is missing or it
        is empty; ValueError (naming ``root`` and the file) for a wrong layout (no word
        folders, no keyword folder, the dataset one level down, split lists naming no
        existing clip) and for an unreadable, truncated, empty, non-16 kHz or stereo WAV.
    split : "train" (files in neither list), "validation" or "test".
    silence_fraction : number of "silence" clips as a fraction of the split's keyword clips
        (TensorFlow / Honk recipe: 0.1). They are random 1-s crops of the background-noise
        files scaled by a random gain in [0, 1]; each file is cut in time, the first 80 %
        feeding train, the next 10 % validation, the last 10 % test, so splits share no
        noise audio.
    unknown_fraction : keep this many non-keyword clips ("unknown") as a fraction of the
        split's keyword clips (recipe: 0.1), drawn at random; None keeps them all.
    seed : seeds the silence crops / gains and the unknown subsample.

    Clips are padded with zeros at the end or trimmed to 16000 samples. ``snr_db`` is NaN
    (unknown for real recordings); ``noise`` names the background file of silence clips.
    """
    _check_choice("split", split, ("train", "validation", "test"))
    _check_fraction("silence_fraction", silence_fraction)
    _check_fraction("unknown_fraction", unknown_fraction, allow_none=True)
    root = _check_layout(root)
    val = _read_list(root / "validation_list.txt")
    test = _read_list(root / "testing_list.txt")
    files = _speech_commands_files(root)
    listed = val if split == "validation" else test if split == "test" else set()
    if listed and not listed & set(files):
        name = "validation_list.txt" if split == "validation" else "testing_list.txt"
        raise ValueError(f"root: expected the clips named in {root / name} under {root}; "
                         f"none of its {len(listed)} entries (e.g. {sorted(listed)[0]!r}) "
                         f"exists there (a list from another dataset version?)")
    if split == "validation":
        chosen = [f for f in files if f in val]
    elif split == "test":
        chosen = [f for f in files if f in test]
    else:
        chosen = [f for f in files if f not in val and f not in test]
    words = [f.split("/")[0] for f in chosen]
    is_kw = np.array([w in KEYWORDS for w in words], dtype=bool)
    n_kw = int(is_kw.sum())
    rng = np.random.default_rng([seed, SPLIT_NAMES.index(split) if split != "validation"
                                 else 1, 77])
    keep = np.flatnonzero(is_kw)
    unknown_idx = np.flatnonzero(~is_kw)
    if unknown_fraction is not None:
        n_unknown = min(len(unknown_idx), math.ceil(unknown_fraction * n_kw))
        unknown_idx = np.sort(rng.choice(unknown_idx, n_unknown, replace=False))
    keep = np.sort(np.concatenate([keep, unknown_idx])).astype(np.int64)
    n_sil = math.ceil(silence_fraction * n_kw) if silence_fraction else 0
    if len(keep) == 0 and n_sil == 0:
        raise ValueError(f"root: expected WAV clips of the {split!r} split under {root}, "
                         f"found none ({len(files)} clips in total)")

    from tqdm.auto import tqdm

    audio = np.zeros((len(keep) + n_sil, CLIP), dtype=np.float32)
    for i, j in enumerate(tqdm(keep, desc=f"speech commands {split}", disable=not progress,
                               leave=False)):
        audio[i] = _fit_clip(_read_wav(root / chosen[j]))
    y = np.array([LABELS.index(words[j]) if is_kw[j] else UNKNOWN for j in keep],
                 dtype=np.int64)
    word = [words[j] for j in keep]
    speaker = [chosen[j].split("/")[1].split("_nohash_")[0] for j in keep]
    noise = [""] * len(keep)
    if n_sil:
        sil_audio, sil_noise = _background_silence(root, split, n_sil, rng)
        audio[len(keep):] = sil_audio
        y = np.concatenate([y, np.full(n_sil, SILENCE, dtype=np.int64)])
        word += ["_silence_"] * n_sil
        speaker += [f"_silence_{split}_"] * n_sil
        noise += sil_noise
    n = len(y)
    return AudioSet(audio, y, np.array(speaker), np.array(word), np.full(n, split),
                    np.full(n, np.nan, dtype=np.float32), np.array(noise), LABELS,
                    {"path": np.array([chosen[j] for j in keep] + [""] * n_sil)},
                    {"source": "speech_commands", "root": str(root), "split": split,
                     "seed": seed, "silence_fraction": silence_fraction,
                     "unknown_fraction": unknown_fraction})


def _background_silence(root: Path, split: str, n: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``n`` random 1-s crops of the split's time portion of the background-noise files."""
    folder = root / BACKGROUND
    paths = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    if not paths:
        raise FileNotFoundError(f"root: expected background-noise WAVs in {folder} to cut "
                                f"'silence' clips from (or pass silence_fraction=0)")
    lo, hi = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}[split]
    clips = [_read_wav(p) for p in paths]
    which = rng.integers(0, len(clips), n)
    u = rng.random(n)
    gain = rng.random(n).astype(np.float32)
    out = np.zeros((n, CLIP), dtype=np.float32)
    for i in range(n):
        wav = clips[which[i]]
        a, b = int(lo * len(wav)), int(hi * len(wav))
        if b - a < CLIP:  # portion shorter than 1 s: take a window around it
            b = min(len(wav), a + CLIP)
            a = max(0, b - CLIP)
        start = a + int(u[i] * max(0, b - a - CLIP))
        out[i] = _fit_clip(wav[start:start + CLIP]) * gain[i]
    return out, [paths[k].stem for k in which]


# ------------------------------------------------------------------------- noise models


STREAM_MAX = 2**20  # samples (~65 s): longest noise stream generated at once


def _unit_rms(x: np.ndarray) -> np.ndarray:
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
    return _unit_rms(np.fft.irfft(spec * shape.astype(np.float32), n=length))


def _babble_stream_noise(length: int, rng: np.random.Generator,
                         speech: np.ndarray) -> np.ndarray:
    """float32 (length,): six talkers (time-shifted copies of ``speech``, -8..0 dB each)."""
    if len(speech) < CLIP:
        raise ValueError(f"babble_speech: expected at least {CLIP} samples of 16 kHz speech, "
                         f"got {len(speech)}")
    base = np.resize(np.asarray(speech, dtype=np.float32), length)
    out = np.zeros(length, dtype=np.float32)
    for _ in range(6):
        out += np.float32(10.0 ** (rng.uniform(-8.0, 0.0) / 20.0)) * np.roll(
            base, int(rng.integers(len(speech))))
    return _unit_rms(out)


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
    return _unit_rms(out)


def noise_stream(kind: str, length: int, rng: np.random.Generator,
                 babble_speech: np.ndarray | None = None) -> np.ndarray:
    """float32 (length,) continuous background noise of type ``kind`` (``NOISE_TYPES``) at
    16 kHz, unit RMS overall. ``babble_speech`` (float32 (m,) 16 kHz speech, m >= 16000)
    is required for "babble"."""
    _check_choice("kind", kind, NOISE_TYPES)
    if length < CLIP:
        raise ValueError(f"length: expected >= {CLIP} samples, got {length}")
    if kind == "white":
        return _unit_rms(rng.standard_normal(length, dtype=np.float32))
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
    return _unit_rms(out) if n else out


def _noise_matrix(kinds: np.ndarray, rng: np.random.Generator,
                  babble_speech: np.ndarray | None) -> np.ndarray:
    """float32 (len(kinds), CLIP) unit-RMS noise, example i of type ``kinds[i]``."""
    out = np.zeros((len(kinds), CLIP), dtype=np.float32)
    for kind in NOISE_TYPES:
        idx = np.flatnonzero(kinds == kind)
        if len(idx):
            out[idx] = make_noise(kind, len(idx), rng, babble_speech)
    return out


# --------------------------------------------------------------------- synthetic speech


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an eSpeak NG language (accent) + voice variant (timbre), with
    its own speaking rate (words per minute), pitch and pitch range (eSpeak's 0..100 scale
    around the variant's own pitch) and vocal-tract ``warp`` (time stretch, pitch and
    formants / warp; see ``_espeak.synthesize``).

    kind : "male" / "female" / "child" for a generated variant, "preset" for one of eSpeak's.
    definition : the generated variant file's text ("" for a preset).
    """

    name: str
    accent: str
    variant: str
    kind: str
    rate: int
    pitch: int
    pitch_range: int
    warp: float
    split: str
    definition: str = ""


#: eSpeak NG's standard variants used as speakers (its community variants are left out:
#: many are voice effects with extreme settings rather than plausible speakers).
PRESET_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7",
                   "m8", "klatt", "klatt2", "klatt3", "klatt4")
N_SPEAKERS = 300  # generated speakers of the default voice set


def _random_variant(name: str, rng: np.random.Generator) -> tuple[str, str]:
    """(kind, eSpeak variant file text) of a random speaker: pitch range (Hz), formant
    frequency / height / width scaling (% of eSpeak's defaults; a common vocal-tract factor
    per speaker with per-formant jitter), voicing / consonant amplitude, flutter, and
    sometimes breathiness, roughness, spectral tilt or the Klatt synthesiser."""
    kind = str(rng.choice(["male", "female", "child"], p=[0.47, 0.43, 0.10]))
    lo, scale = {"male": (rng.uniform(70, 115), rng.uniform(0.90, 1.06)),
                 "female": (rng.uniform(145, 215), rng.uniform(1.06, 1.22)),
                 "child": (rng.uniform(220, 290), rng.uniform(1.20, 1.32))}[kind]
    lines = ["language variant", f"name {name}",
             f"gender {'male' if kind == 'male' else 'female'}",
             f"pitch {lo:.0f} {lo * rng.uniform(1.3, 1.9):.0f}",
             f"formant 0 100 {rng.uniform(80, 120):.0f} {rng.uniform(80, 150):.0f}"]
    for k in range(1, 6):
        jitter = rng.uniform(0.95, 1.05) if k < 4 else rng.uniform(0.98, 1.02)
        lines.append(f"formant {k} {100 * scale * jitter:.0f} {rng.uniform(75, 115):.0f} "
                     f"{rng.uniform(80, 150):.0f}")
    lines += [f"voicing {rng.uniform(80, 130):.0f}",
              f"consonants {rng.uniform(70, 120):.0f} {rng.uniform(70, 120):.0f}",
              f"flutter {rng.uniform(0, 40):.0f}"]
    if kind != "male" and rng.random() < 0.4:
        b = int(rng.integers(1, 4))
        lines.append(f"breath 0 {b} {b + 1} {b + 1} {b + 1} {b + 1} {b + 1} {b}")
    if rng.random() < 0.2:
        lines.append(f"roughness {int(rng.integers(1, 5))}")
    if rng.random() < 0.5:
        t1 = rng.uniform(170, 255)
        t2 = rng.uniform(110, t1)
        lines.append(f"tone 600 255 1200 {t1:.0f} 2000 {t2:.0f} 3000 {rng.uniform(70, t2):.0f}")
    if rng.random() < 0.15:
        lines.append(f"klatt {int(rng.integers(1, 4))}")
    return kind, "\n".join(lines) + "\n"


def synth_voices(seed: int = 0, *, n_speakers: int = N_SPEAKERS,
                 presets: tuple[str, ...] = PRESET_VARIANTS,
                 split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                 foreign_share: float = 0.3) -> list[Voice]:
    """The synthetic speakers and their split, deterministic for ``seed``.

    ``n_speakers`` generated speakers (random eSpeak variant files, ``_random_variant``:
    male / female / child vocal tracts, pitch, voice quality) plus one speaker per eSpeak
    preset variant in ``presets``. Each speaks with one accent: a native English dialect
    (``ACCENTS_EN``) or, with probability ``foreign_share``, a foreign one
    (``ACCENTS_FOREIGN``). Speakers are shuffled into train / tune / test by
    ``split_fractions``, so the test set holds speakers never heard in training.
    """
    from ._espeak import variants

    if n_speakers < 0:
        raise ValueError(f"n_speakers: expected >= 0, got {n_speakers}")
    fr = np.asarray(split_fractions, dtype=float)
    if fr.shape != (3,) or (fr <= 0).any() or not math.isclose(fr.sum(), 1.0):
        raise ValueError(f"split_fractions: expected three positive fractions summing to 1, "
                         f"got {split_fractions!r}")
    known = set(variants())
    for p in presets:
        if p not in known:
            raise ValueError(f"presets: expected eSpeak variant names, {p!r} is not one")
    rng = np.random.default_rng([seed, 1])
    specs = [(p, "preset", "") for p in presets]
    for i in range(n_speakers):
        name = f"mpx{i:03d}"
        specs.append((name, *_random_variant(name, rng)))
    if len(specs) < 3:
        raise ValueError(f"n_speakers: expected at least 3 speakers in all, got {len(specs)}")
    order = rng.permutation(len(specs))
    bounds = np.round(np.cumsum(fr) * len(specs)).astype(int)
    split_of = np.empty(len(specs), dtype=object)
    split_of[order] = [SPLIT_NAMES[int(np.searchsorted(bounds, rank, side="right"))]
                       for rank in range(len(specs))]
    voices = []
    for (variant, kind, definition), split in zip(specs, split_of, strict=True):
        accent = str(rng.choice(ACCENTS_FOREIGN if rng.random() < foreign_share
                                else ACCENTS_EN))
        voices.append(Voice(f"{accent}+{variant}", accent, variant, kind,
                            int(rng.integers(85, 161)), int(rng.integers(35, 66)),
                            int(rng.integers(25, 86)),
                            round(float(np.exp(rng.uniform(np.log(0.94), np.log(1.07)))), 4),
                            str(split), definition))
    return voices


def voice_data_root(voices: list[Voice]) -> Path:
    """Folder with an ``espeak-ng-data`` holding the generated variants of ``voices`` (the
    bundled data linked, plus the variant files), under ``cache_dir("espeak")``."""
    from ._espeak import build_data_dir

    defs = {v.variant: v.definition for v in voices if v.definition}
    presets = tuple(sorted({v.variant for v in voices if not v.definition}))
    languages = tuple(sorted({*ACCENTS_EN, *ACCENTS_FOREIGN, *(v.accent for v in voices)}))
    key = cache.cache_key(variants=sorted(defs.items()), presets=presets, languages=languages,
                          f=_FORMAT)
    return build_data_dir(cache.cache_dir("espeak") / key, defs, languages=languages,
                          keep_variants=presets)


def _utterance_requests(voices: list[Voice], words: list[str],
                        rng: np.random.Generator) -> list[tuple]:
    """eSpeak requests: each voice's rate / pitch / range jittered per utterance."""
    reqs = []
    for v, w in zip(voices, words, strict=True):
        rate = int(np.clip(round(v.rate * rng.uniform(0.88, 1.15)), 80, 450))
        pitch = int(np.clip(v.pitch + rng.integers(-6, 7), 0, 100))
        prange = int(np.clip(v.pitch_range + rng.integers(-10, 11), 0, 100))
        warp = v.warp * float(np.exp(rng.uniform(-0.02, 0.02)))
        reqs.append((w, v.name, rate, pitch, prange, int(rng.integers(0, 2**31 - 1)), warp))
    return reqs


def _babble_speech(seed: int) -> np.ndarray:
    """float32 (m,) ~1-2 minutes of sentences read by 12 voices, each utterance unit RMS."""
    from ._espeak import synthesize

    path = cache.cache_dir("datasets") / f"kws_babble_{cache.cache_key(seed=seed, f=_FORMAT)}.npz"
    if path.exists():
        return cache.load_npz(path)["stream"]
    voices = synth_voices(seed)
    rng = np.random.default_rng([seed, 2])
    pick = rng.choice(len(voices), 12, replace=False)
    reqs = []
    for k, i in enumerate(pick):
        for s in range(2):
            text = BABBLE_TEXT[(2 * k + s) % len(BABBLE_TEXT)]
            reqs.append((text, voices[i].name, voices[i].rate, voices[i].pitch,
                         voices[i].pitch_range, int(rng.integers(0, 2**31 - 1)),
                         voices[i].warp))
    clips = [_unit_rms(c) for c in synthesize(reqs, voice_data_root(voices)) if len(c)]
    stream = np.concatenate(clips).astype(np.float32)
    cache.save_npz(path, stream=stream)
    return stream


def _place(clips: list[np.ndarray], shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _render(clips: list[np.ndarray | None], shift: np.ndarray, noise: np.ndarray,
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
        speech, _ = _place([empty if c is None else c for c in clips[sl]], shift[sl])
        x = speech * g_s[sl, None] + noise[sl] * g_n[sl, None]
        peak = np.abs(x).max(axis=1, keepdims=True)
        x *= np.minimum(np.float32(1.0), np.float32(0.99) / np.maximum(peak, 1e-12))
        out[sl] = np.rint(x * np.float32(32767.0))
    return out


def _split_counts(n: int, fractions) -> list[int]:
    """Largest-remainder rounding of ``n * fractions``, at least 1 each when n >= 3."""
    raw = np.asarray(fractions, dtype=float) * n
    counts = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - counts))[: n - counts.sum()]:
        counts[k] += 1
    if n >= len(counts):
        while (counts == 0).any():
            counts[np.argmax(counts)] -= 1
            counts[np.argmin(counts)] += 1
    return [int(c) for c in counts]


def _per_split_counts(n_per_word, split_fractions) -> list[int]:
    """Examples per class in each of train / tune / test (see ``synth_keywords``)."""
    if isinstance(n_per_word, (int, np.integer)) and not isinstance(n_per_word, bool):
        if n_per_word < 1:
            raise ValueError(f"n_per_word: expected an integer >= 1, got {n_per_word!r}")
        return _split_counts(int(n_per_word), split_fractions)
    counts = tuple(n_per_word) if isinstance(n_per_word, (tuple, list)) else ()
    if len(counts) != 3 or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                                   and c >= 1 for c in counts):
        raise ValueError(f"n_per_word: expected an integer >= 1 or a (train, tune, test) "
                         f"tuple of integers >= 1, got {n_per_word!r}")
    return [int(c) for c in counts]


def synth_keywords(n_per_word: int | tuple[int, int, int] = 800, seed: int = 0, *,
                   snr_db: tuple[float, float] = (0.0, 30.0),
                   eval_snr_db: tuple[float, float] | None = None,
                   noise_types: tuple[str, ...] = NOISE_TYPES,
                   split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                   level_db: tuple[float, float] = (-32.0, -16.0),
                   use_cache: bool = True, progress: bool = True) -> AudioSet:
    """Synthetic 12-class keyword data from eSpeak NG, split by voice; deterministic for a seed.

    n_per_word : examples per class (12 classes: the ten keywords, "unknown" = a random word
        of ``UNKNOWN_WORDS``, "silence" = noise only): an int over all splits, divided into
        train / tune / test by ``split_fractions``, or a (train, tune, test) tuple of counts
        per split. Each split's examples come only from that split's voices
        (``synth_voices(seed)``; ``split_fractions`` also divides the voices).
    snr_db : (low, high) dB; each word example's SNR is uniform in it.
    eval_snr_db : (low, high) dB of the tune and test examples instead (None: ``snr_db``);
        train examples are the same either way.
    noise_types : background types drawn uniformly per example (``NOISE_TYPES``).
    level_db : (low, high) dBFS RMS of the speech over the utterance; silence examples
        have the noise level a word example would have (level - SNR).

    Each utterance has its own voice rate / pitch / range jitter and a random position in
    the 1-s clip. ``extra`` holds voice rate (wpm), pitch, pitch_range, warp, shift_s
    (start of the word, s), duration_s (of the word, s) and level_db. Cached under
    ``cache_dir("datasets")`` keyed by the parameters (16-bit audio in an .npz).
    """
    per_split = _per_split_counts(n_per_word, split_fractions)
    lo, hi = (float(v) for v in snr_db)
    if not lo <= hi:
        raise ValueError(f"snr_db: expected (low, high) with low <= high, got {snr_db!r}")
    ev_lo, ev_hi = (lo, hi) if eval_snr_db is None else (float(v) for v in eval_snr_db)
    if not ev_lo <= ev_hi:
        raise ValueError(f"eval_snr_db: expected (low, high) with low <= high, "
                         f"got {eval_snr_db!r}")
    lv_lo, lv_hi = (float(v) for v in level_db)
    if not lv_lo <= lv_hi <= 0:
        raise ValueError(f"level_db: expected (low, high) dBFS with low <= high <= 0, "
                         f"got {level_db!r}")
    noise_types = tuple(noise_types)
    if not noise_types:
        raise ValueError(f"noise_types: expected a non-empty subset of {NOISE_TYPES}")
    for kind in noise_types:
        _check_choice("noise_types", kind, NOISE_TYPES)
    params = {"n_per_word": (int(n_per_word) if isinstance(n_per_word, (int, np.integer))
                             else tuple(per_split)), "seed": int(seed), "snr_db": (lo, hi),
              **({} if eval_snr_db is None else {"eval_snr_db": (ev_lo, ev_hi)}),
              "noise_types": noise_types, "split_fractions": tuple(split_fractions),
              "level_db": (lv_lo, lv_hi), "format": _FORMAT}
    path = cache.cache_dir("datasets") / f"kws_synth_{cache.cache_key(**params)}.npz"
    if use_cache and path.exists():
        return _audioset_from_npz(cache.load_npz(path), params)

    from tqdm.auto import tqdm

    from ._espeak import SynthesisJob

    bar = tqdm(total=4, desc="synth keywords", disable=not progress, leave=False)
    t0 = time.perf_counter()
    voices = synth_voices(seed, split_fractions=split_fractions)
    rng = np.random.default_rng([seed, 3])
    rows = []  # (split, class, voice or None, word)
    for split, count in zip(SPLIT_NAMES, per_split, strict=True):
        pool = [v for v in voices if v.split == split]
        if not pool:
            raise ValueError(f"split_fractions: no voice falls in the {split!r} split with "
                             f"{split_fractions!r}; expected larger fractions")
        for c in range(len(LABELS)):
            # each voice says each word about equally often: cycle a shuffled voice list
            order = np.concatenate([rng.permutation(len(pool))
                                    for _ in range(count // len(pool) + 1)])[:count]
            for k in order:
                if c == SILENCE:
                    rows.append((split, c, None, "_silence_"))
                else:
                    word = (LABELS[c] if c != UNKNOWN
                            else str(UNKNOWN_WORDS[rng.integers(len(UNKNOWN_WORDS))]))
                    rows.append((split, c, pool[k], word))
    n = len(rows)
    is_word = np.array([r[2] is not None for r in rows])
    word_rows = np.flatnonzero(is_word)
    reqs = _utterance_requests([rows[i][2] for i in word_rows],
                               [rows[i][3] for i in word_rows], rng)
    u = rng.random(n)  # SNR = low + (high - low) * u, as rng.uniform draws it
    is_train = np.array([r[0] == "train" for r in rows])
    snr = np.where(is_train, lo + (hi - lo) * u, ev_lo + (ev_hi - ev_lo) * u).astype(np.float32)
    level = rng.uniform(lv_lo, lv_hi, n)
    kinds = np.array(noise_types)[rng.integers(0, len(noise_types), n)]
    shift = rng.random(n)
    bar.update()

    # eSpeak runs in the background while the noise is made
    job = SynthesisJob(reqs, voice_data_root(voices))
    try:
        stream = _babble_speech(seed) if "babble" in kinds else None
        split_of = np.array([r[0] for r in rows])
        noise = np.empty((n, CLIP), dtype=np.float32)
        for k, split in enumerate(SPLIT_NAMES):  # separate noise streams per split
            idx = np.flatnonzero(split_of == split)
            noise[idx] = _noise_matrix(kinds[idx], np.random.default_rng([seed, 4, k]), stream)
    except BaseException:
        job.close()
        raise
    bar.update()
    clips: list[np.ndarray | None] = [None] * n
    for i, c in zip(word_rows, job.result(), strict=True):
        clips[i] = c
    bar.update()
    snr_all = np.where(is_word, snr, np.nan).astype(np.float32)
    level_all = np.where(is_word, level, level - snr)
    audio16 = _render(clips, shift, noise, level_all, snr_all)
    del noise
    bar.update()
    bar.close()
    lengths = np.array([0 if c is None else min(len(c), CLIP) for c in clips])
    start_s = (shift * np.maximum(CLIP - lengths, 0)).astype(int) / SAMPLE_RATE
    rate = np.full(n, -1, dtype=np.int64)
    pitch = np.full(n, -1, dtype=np.int64)
    prange = np.full(n, -1, dtype=np.int64)
    rate[word_rows] = [r[2] for r in reqs]
    pitch[word_rows] = [r[3] for r in reqs]
    prange[word_rows] = [r[4] for r in reqs]
    warp = np.full(n, np.nan, dtype=np.float32)
    warp[word_rows] = [r[6] for r in reqs]
    arrays = {
        "audio16": audio16,
        "y": np.array([r[1] for r in rows], dtype=np.int64),
        "speaker": np.array([r[2].name if r[2] is not None else f"_silence_{r[0]}_"
                             for r in rows]),
        "word": np.array([r[3] for r in rows]),
        "split": np.array([r[0] for r in rows]),
        "snr_db": snr_all,
        "noise": kinds,
        "rate": rate, "pitch": pitch, "pitch_range": prange, "warp": warp,
        "shift_s": np.where(is_word, start_s, 0.0).astype(np.float32),
        "duration_s": (lengths / SAMPLE_RATE).astype(np.float32),
        "level_db": level_all.astype(np.float32),
        "build_s": np.float64(time.perf_counter() - t0),
    }
    if use_cache:
        cache.save_npz(path, **arrays)
    return _audioset_from_npz(arrays, params)


def _audioset_from_npz(d: dict, params: dict) -> AudioSet:
    extra = {k: d[k] for k in ("rate", "pitch", "pitch_range", "warp", "shift_s",
                               "duration_s", "level_db")}
    meta = {"source": "synthetic", **params, "build_s": float(d["build_s"])}
    audio = np.multiply(d["audio16"], np.float32(1.0 / 32767.0), dtype=np.float32)
    return AudioSet(audio, d["y"], d["speaker"],
                    d["word"], d["split"], d["snr_db"], d["noise"], LABELS, extra, meta)


# ------------------------------------------------------------------------------ features


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
    if batch < 1:
        raise ValueError(f"batch: expected >= 1, got {batch}")
    if workers < 1:
        raise ValueError(f"workers: expected >= 1, got {workers}")
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


# ------------------------------------------------------------------------------ prepare

#: examples per class of the synthetic default, (train, tune, test), and of its quick
#: version (all splits together). Tune / test: 960 examples each (80 per class), so an
#: accuracy near 0.8-0.9 has a binomial standard error of about 1.0-1.3 pp; the tuner runs
#: the 96 MFLOP CNN on the tune set many times, so it stays modest. Train: 14,400.
SYNTH_PER_WORD = (1200, 80, 80)
QUICK_PER_WORD = 60


_COLUMNS = ("y", "speaker", "word", "split", "snr_db", "noise")


def _columns(ds: AudioSet) -> dict[str, np.ndarray]:
    """Everything about the examples but the audio, as (N,) arrays (extras prefixed x_)."""
    cols = {k: getattr(ds, k) for k in _COLUMNS}
    cols.update({f"x_{k}": np.asarray(v) for k, v in ds.extra.items()})
    return cols


def _cached_features(path: Path, make_set, progress: bool) -> tuple[np.ndarray, dict, dict]:
    """(MFCC float32 (N, 101, 40), columns, dataset meta) from ``path``, or built from the
    AudioSet ``make_set()`` returns and cached (the audio itself is not kept)."""
    import json

    if path.exists():
        d = cache.load_npz(path)
        return d.pop("mfcc"), d, json.loads(str(d.pop("meta_json")))
    ds = make_set()
    feats = mfcc(ds.audio, progress=progress)
    cols = _columns(ds)
    cache.save_npz(path, mfcc=feats, meta_json=np.array(json.dumps(ds.meta, default=str)),
                   **cols)
    return feats, cols, json.loads(json.dumps(ds.meta, default=str))


def prepare(quick: bool = False, root: str | Path | None = None, seed: int = 0, *,
            n_per_word: int | tuple[int, int, int] | None = None, progress: bool = True,
            **synth_options) -> Splits:
    """Model-ready KWS ``Splits`` (task "kws"): x float32 (N, 1, 101, 40) standardised MFCC.

    root None (default): ``synth_keywords(n_per_word, seed)`` split by voice (train / tune /
    test voices disjoint); n_per_word defaults to ``SYNTH_PER_WORD`` (``QUICK_PER_WORD`` when
    ``quick``); ``synth_options`` (snr_db, eval_snr_db, noise_types, level_db,
    split_fractions) go to ``synth_keywords``. root given: the real Speech Commands
    (train / validation -> tune / test; ``quick`` keeps 30 / 10 / 10 clips per class).
    group : int64 id of the speaker / voice (``meta["group_names"][group]``); silence clips
    get one pseudo-speaker per split, so splits never share a group.
    The MFCC standardisation (per coefficient) is fitted on train. The features are cached
    under ``cache_dir("datasets")`` keyed by the parameters.

    meta: source, seed, quick, root, labels, mfcc (``MFCC_PARAMS``), standardisation
    {"mean", "std": float32 (40,)}, group_names, voices {split: [names]}, examples
    {split: {"word", "speaker", "snr_db", "noise", ...: (N,) arrays}} aligned with each
    split's rows, synth (the ``synth_keywords`` parameters, synthetic only), build_s
    (seconds this call took).
    """
    t0 = time.perf_counter()
    if root is not None:
        if synth_options or n_per_word is not None:
            raise ValueError(f"root: the real dataset takes no synthesis options, got "
                             f"{sorted(synth_options) + (['n_per_word'] if n_per_word else [])}")
        return _prepare_real(Path(root), quick, seed, progress, t0)
    allowed = {"snr_db", "eval_snr_db", "noise_types", "level_db", "split_fractions"}
    if set(synth_options) - allowed:
        raise ValueError(f"synth_options: expected keys among {sorted(allowed)}, got "
                         f"{sorted(set(synth_options) - allowed)}")
    if n_per_word is None:
        n_per_word = QUICK_PER_WORD if quick else SYNTH_PER_WORD
    key = cache.cache_key(kind="prepare", n_per_word=n_per_word, seed=seed, f=_FORMAT,
                          **{k: tuple(v) for k, v in synth_options.items()})
    path = cache.cache_dir("datasets") / f"kws_prepared_{key}.npz"
    # the features are cached, so the audio itself need not be (synth_keywords caches it
    # when called directly)
    feats, cols, ds_meta = _cached_features(
        path, lambda: synth_keywords(n_per_word, seed, use_cache=False, progress=progress,
                                     **synth_options), progress)
    parts = {name: np.flatnonzero(cols["split"] == name) for name in SPLIT_NAMES}
    splits = _build_splits(cols, feats, parts)
    splits.meta.update({"source": "synthetic", "seed": seed, "quick": quick, "root": None,
                        "synth": {k: v for k, v in ds_meta.items() if k != "source"},
                        "build_s": time.perf_counter() - t0})
    return splits


def _build_splits(cols: dict[str, np.ndarray], feats: np.ndarray,
                  parts: dict[str, np.ndarray]) -> Splits:
    speaker = cols["speaker"]
    names = np.unique(speaker)
    group = np.searchsorted(names, speaker).astype(np.int64)
    mean, std = fit_standardisation(feats[parts["train"]])
    out = {name: Split(model_inputs(feats[idx], mean, std), cols["y"][idx].astype(np.int64),
                       group[idx]) for name, idx in parts.items()}
    shown = ("word", "speaker", "snr_db", "noise")
    meta = {
        "labels": LABELS,
        "mfcc": dict(MFCC_PARAMS),
        "standardisation": {"mean": mean, "std": std,
                            "applied_to": "MFCC coefficients, over train clips and frames"},
        "group_names": tuple(str(s) for s in names),
        "voices": {name: sorted({str(s) for s in speaker[idx] if not s.startswith("_silence_")})
                   for name, idx in parts.items()},
        "examples": {name: {**{k: cols[k][idx].copy() for k in shown},
                            **{k[2:]: cols[k][idx].copy() for k in cols if k.startswith("x_")}}
                     for name, idx in parts.items()},
    }
    return Splits("kws", LABELS, out["train"], out["tune"], out["test"], meta)


def _prepare_real(root: Path, quick: bool, seed: int, progress: bool, t0: float) -> Splits:
    root = _check_layout(root)
    listing = _speech_commands_files(root)
    lists = [(root / n).read_text() if (root / n).is_file() else ""
             for n in ("validation_list.txt", "testing_list.txt")]
    key = cache.cache_key(kind="prepare_real", root=str(root.resolve()), files=listing,
                          lists=lists, quick=quick, seed=seed, f=_FORMAT)
    path = cache.cache_dir("datasets") / f"kws_real_{key}.npz"

    def load() -> AudioSet:
        sets = []
        for k, split in enumerate(("train", "validation", "test")):
            ds = load_speech_commands(root, split, seed=seed, progress=progress)
            if quick:
                rng = np.random.default_rng([seed, 5, k])
                keep = [rng.permutation(np.flatnonzero(ds.y == c))[:30 if k == 0 else 10]
                        for c in range(len(LABELS))]
                ds = ds.subset(np.sort(np.concatenate(keep)))
            sets.append(ds)
        def cat(attr: str) -> np.ndarray:
            return np.concatenate([getattr(s, attr) for s in sets])

        return AudioSet(cat("audio"), cat("y"), cat("speaker"), cat("word"), cat("split"),
                        cat("snr_db"), cat("noise"), LABELS,
                        {"path": np.concatenate([s.extra["path"] for s in sets])},
                        {"source": "speech_commands", "root": str(root)})

    feats, cols, _ = _cached_features(path, load, progress)
    parts = {"train": np.flatnonzero(cols["split"] == "train"),
             "tune": np.flatnonzero(cols["split"] == "validation"),
             "test": np.flatnonzero(cols["split"] == "test")}
    splits = _build_splits(cols, feats, parts)
    splits.meta.update({"source": "speech_commands", "seed": seed, "quick": quick,
                        "root": str(root), "build_s": time.perf_counter() - t0})
    return splits


# ------------------------------------------------------------------------ context trace


def _context_schedule(n: int, dt: float, contexts: tuple[str, ...], dwell_s: tuple[float, float],
                      rng: np.random.Generator) -> np.ndarray:
    """int64 (n,) context code per step: dwell times uniform in ``dwell_s``, never the same
    context twice in a row."""
    codes = np.zeros(n, dtype=np.int64)
    i, cur = 0, int(rng.integers(len(contexts)))
    while i < n:
        steps = max(1, int(round(rng.uniform(*dwell_s) / dt)))
        codes[i:i + steps] = cur
        i += steps
        if len(contexts) > 1:
            cur = int((cur + rng.integers(1, len(contexts))) % len(contexts))
    return codes


def _snr_track(codes: np.ndarray, centres: np.ndarray, dt: float, transition_s: float,
               wander_db: float, rng: np.random.Generator) -> np.ndarray:
    """float64 (n,) SNR per step: the context centre, smoothed over ``transition_s`` (an
    exponential glide between contexts), plus a slow AR(1) wander (std ``wander_db``, ~60 s
    correlation) and 1 dB step-to-step jitter."""
    from scipy.signal import lfilter

    target = centres[codes]
    a = 1.0 - math.exp(-dt / transition_s) if transition_s > 0 else 1.0
    smooth = lfilter([a], [1.0, a - 1.0], target, zi=[(1.0 - a) * target[0]])[0]
    phi = math.exp(-dt / 60.0)
    wander = lfilter([wander_db * math.sqrt(1 - phi**2)], [1.0, -phi],
                     rng.standard_normal(len(codes)))
    return smooth + wander + rng.normal(0.0, 1.0, len(codes))


#: What the user / the room is doing at a step of the voice-assistant stream.
SEGMENTS = ("background", "chatter", "command")
#: Default parameters of the speech schedule of ``context_trace`` (times in seconds).
STREAM_DEFAULTS = {
    "background_mean_s": 20.0,   # mean length of a stretch with no speech (exponential-like)
    "chatter_mean_s": 8.0,       # mean length of a stretch of people talking nearby (unknown)
    "commands_mean": 2.5,        # commands per burst (geometric, >= 1)
    "repeat_mean": 1.8,          # times a command is said in a row, "up, up, up" (geometric)
    "pause_p": 0.3,              # chance of a pause (1-2 silent steps) between two commands
    "p_chatter_after_background": 0.4,  # else a command burst follows
    "p_command_after_chatter": 0.3,     # else background follows
    "p_chatter_after_command": 0.2,     # else background follows
    "level_db": (-28.0, -18.0),  # speech level range (dBFS RMS), drawn per segment
    "level_jitter_db": 1.5,      # per-utterance level jitter within a segment (std, dB)
}


def _geometric(rng: np.random.Generator, mean: float) -> int:
    """A draw >= 1 from the geometric law with the given mean (>= 1)."""
    return int(rng.geometric(1.0 / max(1.0, float(mean))))


def speech_schedule(n: int, dt: float = 1.0, n_voices: int = 1, seed: int = 0,
                    **stream) -> dict[str, np.ndarray]:
    """Who says what at each step of a voice-assistant stream (no audio): a semi-Markov chain
    over ``SEGMENTS``.

    background : no speech (label silence) for a geometric number of steps of mean
        ``background_mean_s / dt``; then chatter with ``p_chatter_after_background``, else a
        command burst.
    chatter : people talking nearby, one unknown word (``UNKNOWN_WORDS``) per step, for a
        geometric number of steps of mean ``chatter_mean_s / dt``; two voices take turns at
        random. Then a burst with ``p_command_after_chatter``, else background.
    command : the user addresses the device: a geometric number (mean ``commands_mean``) of
        commands, each a keyword drawn uniformly and said a geometric number of times in a
        row (mean ``repeat_mean``), with a pause of 1-2 silent steps between two commands
        with probability ``pause_p``; one voice says the whole burst. Then chatter with
        ``p_chatter_after_command``, else background.
    The stream starts in background. Each segment has a speech level uniform in ``level_db``
    (the talker's distance), each utterance that level plus ``level_jitter_db`` jitter.

    n : steps; dt : seconds per step; n_voices : voices to draw from (indices 0..n_voices-1);
    stream : overrides of ``STREAM_DEFAULTS``. Deterministic for ``seed``.
    Returns int64 (n,) arrays y (class: silence / unknown / keyword), segment (into
    ``SEGMENTS``), voice (-1 at silence), word_id (index into ``UNKNOWN_WORDS`` for unknown,
    -1 otherwise) and float64 (n,) level_db.
    """
    unknown = set(stream) - set(STREAM_DEFAULTS)
    if unknown:
        raise ValueError(f"stream: expected keys among {sorted(STREAM_DEFAULTS)}, got "
                         f"{sorted(unknown)}")
    p = {**STREAM_DEFAULTS, **stream}
    for key in ("background_mean_s", "chatter_mean_s"):
        if not float(p[key]) > 0:
            raise ValueError(f"{key}: expected a duration > 0 s, got {p[key]!r}")
    for key in ("commands_mean", "repeat_mean"):
        if not float(p[key]) >= 1:
            raise ValueError(f"{key}: expected a mean count >= 1, got {p[key]!r}")
    for key in ("pause_p", "p_chatter_after_background", "p_command_after_chatter",
                "p_chatter_after_command"):
        if not 0.0 <= float(p[key]) <= 1.0:
            raise ValueError(f"{key}: expected a probability in [0, 1], got {p[key]!r}")
    lv_lo, lv_hi = (float(v) for v in p["level_db"])
    if not lv_lo <= lv_hi <= 0:
        raise ValueError(f"level_db: expected (low, high) dBFS with low <= high <= 0, "
                         f"got {p['level_db']!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    if not dt > 0:
        raise ValueError(f"dt: expected > 0 s, got {dt!r}")
    if not isinstance(n_voices, (int, np.integer)) or n_voices < 1:
        raise ValueError(f"n_voices: expected an int >= 1, got {n_voices!r}")
    rng = np.random.default_rng([int(seed), 8])
    y = np.full(n, SILENCE, dtype=np.int64)
    seg = np.zeros(n, dtype=np.int64)
    voice = np.full(n, -1, dtype=np.int64)
    word_id = np.full(n, -1, dtype=np.int64)
    level = np.zeros(n, dtype=np.float64)
    i, state = 0, 0
    while i < n:
        seg_level = rng.uniform(lv_lo, lv_hi)
        if state == 0:
            steps = _geometric(rng, p["background_mean_s"] / dt)
            seg[i:i + steps] = 0
            i += steps
            state = 1 if rng.random() < p["p_chatter_after_background"] else 2
        elif state == 1:
            steps = min(_geometric(rng, p["chatter_mean_s"] / dt), n - i)
            pair = rng.integers(0, n_voices, 2)
            sl = slice(i, i + steps)
            seg[sl], y[sl] = 1, UNKNOWN
            voice[sl] = pair[rng.integers(0, 2, steps)]
            word_id[sl] = rng.integers(0, len(UNKNOWN_WORDS), steps)
            level[sl] = seg_level
            i += steps
            state = 2 if rng.random() < p["p_command_after_chatter"] else 0
        else:
            who = int(rng.integers(n_voices))
            for c in range(_geometric(rng, p["commands_mean"])):
                if c and rng.random() < p["pause_p"]:
                    pause = int(rng.integers(1, 3))
                    seg[i:i + pause] = 2
                    i += pause
                steps = _geometric(rng, p["repeat_mean"])
                sl = slice(i, min(n, i + steps))
                seg[sl], y[sl], voice[sl] = 2, 2 + int(rng.integers(len(KEYWORDS))), who
                level[sl] = seg_level
                i += steps
                if i >= n:
                    break
            state = 1 if rng.random() < p["p_chatter_after_command"] else 0
    spoken = y != SILENCE
    level[spoken] += rng.normal(0.0, float(p["level_jitter_db"]), int(spoken.sum()))
    level[~spoken] = 0.0
    return {"y": y, "segment": seg, "voice": voice, "word_id": word_id,
            "level_db": np.minimum(level, 0.0)}


def mean_run_lengths(y: np.ndarray, n_classes: int = len(LABELS)) -> np.ndarray:
    """float64 (n_classes,) mean length (steps) of the maximal runs of each class in the
    sequence ``y`` (NaN for a class that does not occur): the persistence of the labels."""
    y = np.asarray(y, dtype=np.int64)
    if y.ndim != 1:
        raise ValueError(f"y: expected a 1-D label sequence, got shape {y.shape}")
    out = np.full(int(n_classes), np.nan)
    if not len(y):
        return out
    starts = np.flatnonzero(np.r_[True, y[1:] != y[:-1]])
    lengths = np.diff(np.r_[starts, len(y)])
    for c in range(int(n_classes)):
        runs = lengths[y[starts] == c]
        if len(runs):
            out[c] = runs.mean()
    return out


def context_trace(splits: Splits | None = None, minutes: float = 30.0,
                  utterance_every_s: float = 1.0,
                  contexts: tuple[str, ...] = ("quiet", "office", "street"), seed: int = 0, *,
                  dwell_minutes: tuple[float, float] = (2.0, 6.0), transition_s: float = 20.0,
                  wander_db: float = 2.0, stream: dict | None = None, quick: bool = False,
                  use_cache: bool = True, progress: bool = True) -> Trace:
    """A voice-assistant stream from held-out voices, in a background that drifts between
    noise contexts (``CONTEXTS``).

    One 1-s input every ``utterance_every_s`` seconds for ``minutes``. What is said follows
    ``speech_schedule`` (parameters ``STREAM_DEFAULTS``, overridden by ``stream``): long
    stretches of background only (silence, mean 20 s) and of people talking nearby (unknown
    words, mean 8 s), and commands in bursts (mean 2.5 keywords, each said ~1.8 times in a
    row). With the defaults (measured over 200k steps) 72 % of the steps are silence, 16 %
    unknown and 12 % keywords, and labels persist: mean run lengths (steps, see
    ``mean_run_lengths``) are 15.4 for silence, 8.3 for unknown and 1.9 for each keyword,
    against 3.6 / 1.2 / 1.0 for the same labels in random order.
    Every utterance is a fresh synthesis by a test voice of ``splits`` (a burst: one voice;
    chatter: two voices taking turns), placed at a random position in its clip and mixed
    with the current context's noise at the current SNR (``CONTEXTS[c]["snr_db"]`` glided
    over ``transition_s`` s, plus a slow wander of std ``wander_db``). The user dwells
    ``dwell_minutes`` (uniform range) in each context. Inputs are MFCC standardised with
    ``splits``' train statistics.

    splits : the ``prepare`` result the model was trained on (default ``prepare(quick=quick,
        seed=seed)``). Synthetic splits: its test voices only. Real Speech Commands splits:
        the real test clips (treated as clean) of each step's class, mixed with the noise.
    Returns a ``Trace`` named "kws_context": pool_x float32 (T, 1, 101, 40), pool_index
    = arange(T), context codes into ``contexts``; meta holds the parameters (``stream``:
    the schedule's), per-step (T,) arrays segment (into ``meta["segments"]``), snr_db
    (NaN at silence steps), snr_track_db (the context's SNR at every step), level_db
    (speech level, NaN at silence), noise (type), speaker, word, and build_s.
    Contexts (``CONTEXTS``): quiet = pink / brown noise around 25 dB SNR, office = babble
    around 12 dB, street = traffic around 0 dB; silence steps carry the same noise at the
    level it would have under speech. Deterministic for ``seed``; cached keyed by the
    parameters and the standardisation.
    """
    for c in contexts:
        _check_choice("contexts", c, tuple(CONTEXTS))
    if not contexts or len(set(contexts)) != len(contexts):
        raise ValueError(f"contexts: expected distinct names from {tuple(CONTEXTS)}, "
                         f"got {contexts!r}")
    if not minutes > 0:
        raise ValueError(f"minutes: expected > 0, got {minutes!r}")
    if not utterance_every_s > 0:
        raise ValueError(f"utterance_every_s: expected > 0 s, got {utterance_every_s!r}")
    d_lo, d_hi = (float(v) for v in dwell_minutes)
    if not 0 < d_lo <= d_hi:
        raise ValueError(f"dwell_minutes: expected (low, high) with 0 < low <= high, "
                         f"got {dwell_minutes!r}")
    stream = dict(stream or {})
    speech_schedule(1, float(utterance_every_s), 1, seed, **stream)  # validates ``stream``
    if splits is None:
        splits = prepare(quick=quick, seed=seed, progress=progress)
    if not isinstance(splits, Splits) or splits.task != "kws":
        raise ValueError("splits: expected the Splits of task 'kws' (kws.prepare())")
    std = splits.meta["standardisation"]
    n = max(1, int(round(minutes * 60.0 / utterance_every_s)))
    contexts = tuple(contexts)
    params = {"minutes": float(minutes), "utterance_every_s": float(utterance_every_s),
              "contexts": contexts, "seed": int(seed), "dwell_minutes": (d_lo, d_hi),
              "transition_s": float(transition_s), "wander_db": float(wander_db),
              "stream": {**STREAM_DEFAULTS, **stream}, "source": splits.meta.get("source"),
              "root": splits.meta.get("root"), "synth": splits.meta.get("synth"),
              "voices": splits.meta["voices"]["test"], "mean": std["mean"],
              "std": std["std"], "format": _FORMAT}
    path = cache.cache_dir("datasets") / f"kws_trace_{cache.cache_key(**params)}.npz"
    if use_cache and path.exists():
        d = cache.load_npz(path)
    else:
        d = _build_trace(splits, n, contexts, params, progress)
        if use_cache:
            cache.save_npz(path, **d)
    meta = {k: v for k, v in params.items() if k not in ("mean", "std", "voices")}
    meta["segments"] = SEGMENTS
    meta.update({k: d[k] for k in ("segment", "snr_db", "snr_track_db", "level_db", "noise",
                                   "speaker", "word")})
    meta["build_s"] = float(d["build_s"])
    return Trace("kws_context", np.arange(n) * float(utterance_every_s), d["y"], d["context"],
                 np.arange(n), d["pool_x"], LABELS, contexts, meta)


def _build_trace(splits: Splits, n: int, contexts: tuple[str, ...], params: dict,
                 progress: bool) -> dict:
    t0 = time.perf_counter()
    seed, dt = params["seed"], params["utterance_every_s"]
    rng = np.random.default_rng([seed, 6])
    real = voices = every = None
    if params["source"] == "speech_commands":
        real = load_speech_commands(splits.meta["root"], "test", silence_fraction=0.0,
                                    unknown_fraction=None, seed=int(splits.meta.get("seed", 0)),
                                    progress=progress)
        if len(real) == 0:
            raise ValueError("splits: expected word clips in the real test split, found none")
        n_voices = 1
    else:
        synth = params["synth"]
        names = set(params["voices"])
        every = synth_voices(synth["seed"], split_fractions=tuple(synth["split_fractions"]))
        voices = [v for v in every if v.name in names]
        if not voices:
            raise ValueError("splits: expected synthetic test voices in meta['voices']['test']")
        n_voices = len(voices)
    sched = speech_schedule(n, dt, n_voices, seed, **{
        k: v for k, v in params["stream"].items()})
    y = sched["y"]
    if real is not None:  # classes without a test clip become silence
        missing = ~np.isin(y, np.unique(real.y)) & (y != SILENCE)
        y = np.where(missing, SILENCE, y)
    codes = _context_schedule(n, dt, contexts, (params["dwell_minutes"][0] * 60.0,
                                                params["dwell_minutes"][1] * 60.0), rng)
    centres = np.array([CONTEXTS[c]["snr_db"] for c in contexts])
    track = _snr_track(codes, centres, dt, params["transition_s"], params["wander_db"], rng)
    silent = y == SILENCE
    kinds = np.array([CONTEXTS[contexts[c]]["noise"][rng.integers(
        len(CONTEXTS[contexts[c]]["noise"]))] for c in codes])
    # silence steps: the noise at the level it has under speech of a typical segment
    lv_lo, lv_hi = params["stream"]["level_db"]
    level = np.where(silent, 0.5 * (lv_lo + lv_hi), sched["level_db"])
    shift = rng.random(n)
    words_idx = np.flatnonzero(~silent)
    speaker = np.array(["_silence_test_"] * n, dtype=object)
    word = np.array(["_silence_"] * n, dtype=object)
    job = None
    if real is not None:
        from ._espeak import trim

        clips = []
        for j in words_idx:
            pool = np.flatnonzero(real.y == y[j])
            k = pool[rng.integers(len(pool))]
            clips.append(trim(real.audio[k]))
            speaker[j], word[j] = real.speaker[k], real.word[k]
    else:
        chosen = [voices[k] for k in sched["voice"][words_idx]]
        texts = [LABELS[c] if c != UNKNOWN else str(UNKNOWN_WORDS[w])
                 for c, w in zip(y[words_idx], sched["word_id"][words_idx], strict=True)]
        from ._espeak import SynthesisJob

        job = SynthesisJob(_utterance_requests(chosen, texts, rng), voice_data_root(every))
        speaker[words_idx] = [v.name for v in chosen]
        word[words_idx] = texts
    try:
        stream = _babble_speech(seed) if "babble" in kinds else None
        noise = _noise_matrix(kinds, np.random.default_rng([seed, 7]), stream)
    except BaseException:
        if job is not None:
            job.close()
        raise
    if job is not None:
        clips = job.result()
    all_clips: list[np.ndarray | None] = [None] * n
    for i, c in zip(words_idx, clips, strict=True):
        all_clips[i] = c
    snr = np.where(silent, np.nan, track).astype(np.float32)
    audio = _render(all_clips, shift, noise, np.where(silent, level - track, level), snr)
    del noise
    audio = audio.astype(np.float32) / np.float32(32767.0)
    feats = mfcc(audio, progress=progress)
    std = splits.meta["standardisation"]
    return {"pool_x": model_inputs(feats, std["mean"], std["std"]), "y": y, "context": codes,
            "segment": sched["segment"], "snr_db": snr,
            "snr_track_db": track.astype(np.float32),
            "level_db": np.where(silent, np.nan, level).astype(np.float32), "noise": kinds,
            "speaker": speaker.astype(str), "word": word.astype(str),
            "build_s": np.float64(time.perf_counter() - t0)}
