"""The keyword-spotting task's vocabulary and clip format, and ``AudioSet``, the 1-s clips
every KWS source (real Speech Commands, eSpeak synthesis) produces.

The task follows the Mobiprox KWS setup (Speech Commands v0.01, 12 labels: silence,
unknown and ten keywords; 1-s clips at 16 kHz).

SNR convention: 10 log10 of the speech power over the utterance itself (the trimmed
word, not the whole clip) over the noise power over the 1-s clip. NaN where it is
undefined (silence examples, real recordings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
SPLIT_NAMES = ("train", "tune", "test")
#: Version of the KWS generation, part of every KWS cache key: bump it when generation
#: changes, to invalidate cached artefacts.
CACHE_FORMAT = 8


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

