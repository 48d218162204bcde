"""The real Speech Commands dataset (v0.01 or v0.02 layout) read from ``root``.

``load_speech_commands(root, split)`` -> ``AudioSet`` of 1-s clips: the split's keyword
clips, a subsample of the other words as "unknown", and "silence" clips cut from the
background-noise recordings (the TensorFlow / Honk recipe). ``check_layout(root)``
names what is wrong with a folder that is not a Speech Commands tree.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import checks
from .kws_audio import CLIP, KEYWORDS, LABELS, SAMPLE_RATE, SILENCE, SPLIT_NAMES, UNKNOWN, AudioSet

BACKGROUND = "_background_noise_"


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


def check_layout(root) -> Path:
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


def clip_files(root: Path) -> list[str]:
    """Relative paths ``word/file.wav`` of every word clip under ``root``, sorted."""
    files = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith("_"):
            continue
        files.extend(f"{folder.name}/{f.name}" for f in sorted(folder.glob("*.wav")))
    return files


def _split_clips(root: Path, split: str) -> tuple[list[str], int]:
    """(relative paths of the clips of ``split``, number of clips under ``root``): the
    lists name the validation and test clips, train is every other clip. ValueError if
    the split's list names no clip that exists."""
    val = _read_list(root / "validation_list.txt")
    test = _read_list(root / "testing_list.txt")
    files = clip_files(root)
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
    return chosen, len(files)


def _keep_clips(is_kw: np.ndarray, unknown_fraction: float | None,
                rng: np.random.Generator) -> np.ndarray:
    """int64 sorted indices of the clips kept: every keyword clip (``is_kw``) plus
    ``unknown_fraction`` times as many other-word clips drawn at random (all: None)."""
    keep = np.flatnonzero(is_kw)
    unknown_idx = np.flatnonzero(~is_kw)
    if unknown_fraction is not None:
        n_unknown = min(len(unknown_idx), math.ceil(unknown_fraction * len(keep)))
        unknown_idx = np.sort(rng.choice(unknown_idx, n_unknown, replace=False))
    return np.sort(np.concatenate([keep, unknown_idx])).astype(np.int64)


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
    checks.choice("split", split, ("train", "validation", "test"))
    checks.number("silence_fraction", silence_fraction, 0, 10)
    if unknown_fraction is not None:
        checks.number("unknown_fraction", unknown_fraction, 0, 10)
    root = check_layout(root)
    chosen, n_files = _split_clips(root, split)
    words = [f.split("/")[0] for f in chosen]
    is_kw = np.array([w in KEYWORDS for w in words], dtype=bool)
    n_kw = int(is_kw.sum())
    rng = np.random.default_rng([seed, SPLIT_NAMES.index(split) if split != "validation"
                                 else 1, 77])
    keep = _keep_clips(is_kw, unknown_fraction, rng)
    n_sil = math.ceil(silence_fraction * n_kw) if silence_fraction else 0
    if len(keep) == 0 and n_sil == 0:
        raise ValueError(f"root: expected WAV clips of the {split!r} split under {root}, "
                         f"found none ({n_files} clips in total)")

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

