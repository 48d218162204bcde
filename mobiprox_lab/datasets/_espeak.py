"""A minimal ctypes binding to the eSpeak NG speech synthesiser bundled by ``espeakng-loader``.

Only what the keyword-spotting dataset needs: initialise in synchronous mode with a
synth callback that collects the 16-bit samples, choose a voice (``"en-us+f3"``
style names: language, then an optional ``+variant``), set rate / pitch / range, and
synthesise one text to a float32 waveform at eSpeak's native rate (22050 Hz).

eSpeak keeps global state, so every call holds a process-wide lock, and batches are
synthesised in fresh worker processes (``synthesize``) to be reproducible.
``build_data_dir`` makes an ``espeak-ng-data`` with extra voice variant files (generated
speakers) next to the bundled data, which stays untouched.
"""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

# espeak_AUDIO_OUTPUT
AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize options
ESPEAK_INITIALIZE_DONT_EXIT = 0x8000
# espeak_PARAMETER
ESPEAK_RATE = 1
ESPEAK_VOLUME = 2
ESPEAK_PITCH = 3
ESPEAK_RANGE = 4
ESPEAK_WORDGAP = 7
# espeak_POSITION_TYPE / synth flags
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_ENDPAUSE = 0x1000

VOLUME = 40  # eSpeak amplitude (0..200, default 100); lower keeps loud variants unclipped
RATE_RANGE = (80, 450)  # words per minute accepted by eSpeak
PITCH_RANGE = (0, 100)  # eSpeak's 0..100 pitch / range scale


class _Event(ctypes.Structure):
    """``espeak_EVENT`` (only its size matters here: the callback gets an array of them)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)

_LOCK = threading.Lock()


def bundled_data_path() -> Path:
    """The ``espeak-ng-data`` folder shipped by ``espeakng-loader``."""
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("espeakng-loader: expected the package to be installed "
                          "(it ships libespeak-ng and espeak-ng-data)") from exc
    return Path(espeakng_loader.get_data_path())


def variants(data_path: str | Path | None = None) -> tuple[str, ...]:
    """Names of the voice variant files (``+name`` voice modifiers) in ``espeak-ng-data``."""
    folder = Path(data_path or bundled_data_path()) / "voices" / "!v"
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file()))


MAX_VOICES = 349  # eSpeak NG lists at most this many voice files (languages + variants)


def language_file(name: str, data_path: str | Path | None = None) -> Path:
    """The ``lang/`` file (relative path) of eSpeak language voice ``name`` (e.g. "en-us")."""
    lang = Path(data_path or bundled_data_path()) / "lang"
    for path in sorted(lang.rglob("*")):
        if path.is_file() and path.name.lower() == name.lower():
            return path.relative_to(lang)
    raise ValueError(f"language: expected an eSpeak NG language voice in {lang}, got {name!r}")


def build_data_dir(target: str | Path, extra_variants: dict[str, str], *,
                   languages: tuple[str, ...] | None = None,
                   keep_variants: tuple[str, ...] | None = None) -> Path:
    """A folder holding an ``espeak-ng-data`` that is the bundled one (linked entry by entry,
    copied where links are not allowed) plus ``extra_variants`` {name: variant file text} in
    ``voices/!v``. ``languages`` / ``keep_variants`` (None: all) restrict the language
    voices and bundled variants it offers: eSpeak lists at most ``MAX_VOICES`` of them all
    together. Built in a temporary sibling and renamed; reused if present. Returns ``target``
    (what ``Espeak(root=...)`` / ``synthesize(..., root)`` take)."""
    import os
    import shutil
    import tempfile

    target = Path(target)
    if (target / "espeak-ng-data" / "voices" / "!v").is_dir():
        return target
    for name in extra_variants:
        if not name or not name.replace("_", "").isalnum():
            raise ValueError(f"extra_variants: expected alphanumeric names, got {name!r}")
    src = bundled_data_path()
    lang_files = ([language_file(n, src) for n in languages] if languages is not None
                  else [p.relative_to(src / "lang") for p in (src / "lang").rglob("*")
                        if p.is_file()])
    bundled = variants(src)
    kept = bundled if keep_variants is None else tuple(keep_variants)
    for name in kept:
        if name not in bundled:
            raise ValueError(f"keep_variants: expected bundled variant names, got {name!r}")
    total = len(lang_files) + len(set(kept) | set(extra_variants))
    if total > MAX_VOICES:
        raise ValueError(f"extra_variants: eSpeak NG lists at most {MAX_VOICES} voices, these "
                         f"settings give {total} ({len(lang_files)} languages); expected fewer")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))

    def link(source: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(source, dest, target_is_directory=source.is_dir())
        except OSError:  # pragma: no cover - e.g. Windows without the privilege
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, dest)

    try:
        data = tmp / "espeak-ng-data"
        (data / "voices" / "!v").mkdir(parents=True)
        for entry in src.iterdir():
            if entry.name not in ("voices", "lang"):
                link(entry, data / entry.name)
        for rel in lang_files:
            link(src / "lang" / rel, data / "lang" / rel)
        for entry in (src / "voices").iterdir():
            if entry.name != "!v":
                link(entry, data / "voices" / entry.name)
        for name in kept:
            link(src / "voices" / "!v" / name, data / "voices" / "!v" / name)
        for name, text in extra_variants.items():
            (data / "voices" / "!v" / name).write_text(text)
        try:
            os.replace(tmp, target)
        except OSError:  # another process built it meanwhile
            if not (target / "espeak-ng-data").is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


class Espeak:
    """The process-wide eSpeak NG engine (use :func:`engine`, not this class directly).

    root : folder that contains ``espeak-ng-data`` (default: the bundled data).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        import espeakng_loader

        lib_path = Path(espeakng_loader.get_library_path())
        data_path = Path(root) / "espeak-ng-data" if root else bundled_data_path()
        if not lib_path.exists():
            raise FileNotFoundError(f"libespeak-ng: expected the shared library at {lib_path}")
        if not (data_path / "phontab").exists():
            raise FileNotFoundError(f"root: expected an espeak-ng-data folder at {data_path}")
        self.data_path = data_path
        lib = ctypes.CDLL(str(lib_path))
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        self._has_seed = hasattr(lib, "espeak_ng_SetRandSeed")
        if self._has_seed:
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed.restype = None
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._on_audio)  # keep a reference: C holds it
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                     str(data_path.parent).encode(),
                                     ESPEAK_INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize: expected a sample rate > 0, got {rate} "
                               f"(data path {data_path})")
        self.sample_rate = int(rate)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n, _events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = continue synthesis

    def variants(self) -> tuple[str, ...]:
        """Names of the voice variant files (``+name`` modifiers) in the data directory."""
        return variants(self.data_path)

    def synth(self, text: str, voice: str = "en", *, rate: int = 175, pitch: int = 50,
              pitch_range: int = 50, seed: int = 0) -> np.ndarray:
        """Synthesise ``text`` with ``voice``; float32 (n,) in [-1, 1] at ``sample_rate`` Hz.

        voice : "language" or "language+variant" (e.g. "en-us+f3").
        rate : words per minute in [80, 450]; pitch, pitch_range : eSpeak scale [0, 100];
        seed : seeds eSpeak's internal noise (breath, roughness).
        """
        if not text:
            raise ValueError("text: expected a non-empty string")
        for name, value, (lo, hi) in (("rate", rate, RATE_RANGE), ("pitch", pitch, PITCH_RANGE),
                                      ("pitch_range", pitch_range, PITCH_RANGE)):
            if not lo <= int(value) <= hi:
                raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {value!r}")
        variant = voice.partition("+")[2]
        if variant and not (self.data_path / "voices" / "!v" / variant).is_file():
            # eSpeak silently ignores an unknown variant; refuse instead
            raise ValueError(f"voice: expected a variant in {self.data_path / 'voices' / '!v'}, "
                             f"got {voice!r}")
        with _LOCK:
            err = self._lib.espeak_SetVoiceByName(voice.encode())
            if err != 0:
                raise ValueError(f"voice: expected a voice name known to eSpeak NG "
                                 f"(e.g. 'en-us+f3'), got {voice!r} (error {err})")
            self._lib.espeak_SetParameter(ESPEAK_RATE, int(rate), 0)
            self._lib.espeak_SetParameter(ESPEAK_PITCH, int(pitch), 0)
            self._lib.espeak_SetParameter(ESPEAK_RANGE, int(pitch_range), 0)
            self._lib.espeak_SetParameter(ESPEAK_VOLUME, VOLUME, 0)
            if self._has_seed:
                self._lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
            buf = ctypes.create_string_buffer(text.encode("utf-8"))
            self._chunks = []
            err = self._lib.espeak_Synth(buf, len(buf), 0, POS_CHARACTER, 0,
                                         ESPEAK_CHARS_UTF8, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth: failed with error {err} for {text!r}")
            self._lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return (np.concatenate(chunks).astype(np.float32) / 32768.0)


@lru_cache(maxsize=1)
def engine(root: str | None = None) -> Espeak:
    """The shared eSpeak NG engine, initialised on first use (one per process: eSpeak's
    state is global, so a process should use one ``root`` only)."""
    return Espeak(root)


# ------------------------------------------------------------ isolated batch synthesis
#
# eSpeak NG carries hidden state from one utterance to the next (the output of a request
# depends on every request made before it in the process, and neither the random seed
# nor re-initialising resets it). To make a batch a pure function of its requests, each
# batch is synthesised in fresh interpreter processes that run this file as a script.

N_WORKERS = 2  # fixed (not os.cpu_count()): the output depends on how requests are chunked
TARGET_RATE = 16000  # Hz
TRIM_TOP_DB = 40.0  # leading / trailing parts quieter than peak - 40 dB are trimmed


def _resampler():
    """``f(wav, sr, out_rate)``: soxr (librosa's own resampling backend; imports in ~0.1 s,
    unlike librosa's audio module) or, if it is missing, scipy's polyphase filter."""
    try:
        import soxr

        return lambda wav, sr, out: soxr.resample(wav, sr, out, quality="HQ")
    except ImportError:  # pragma: no cover - soxr comes with librosa
        from math import gcd

        from scipy.signal import resample_poly

        def poly(wav, sr, out):
            up, down = int(round(out)), int(sr)
            g = gcd(up, down)
            return resample_poly(wav, up // g, down // g)

        return poly


def trim(wav: np.ndarray, top_db: float = TRIM_TOP_DB, frame: int = 256,
         hop: int = 64) -> np.ndarray:
    """``wav`` without the leading / trailing frames whose RMS is ``top_db`` below the loudest
    frame (the same rule as ``librosa.effects.trim``); float32 (m,), m <= len(wav)."""
    if len(wav) < frame:
        return wav
    n = 1 + (len(wav) - frame) // hop
    energy = np.concatenate([[0.0], np.cumsum(np.square(wav, dtype=np.float64))])
    start = hop * np.arange(n)
    rms = np.sqrt(np.maximum(energy[start + frame] - energy[start], 0.0) / frame)
    if rms.max() <= 0:
        return wav[:0]
    loud = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-12) / rms.max()) > -top_db)
    return wav[loud[0] * hop: min(len(wav), loud[-1] * hop + frame)]


def _worker(requests: list[list], out_path: str, root: str | None = None) -> None:
    """Synthesise ``requests`` in order; write lengths + concatenated 16 kHz audio to npz."""
    eng = engine(root)
    resample = _resampler()
    clips = []
    for text, voice, rate, pitch, rng_, seed, warp in requests:
        wav = eng.synth(text, voice, rate=rate, pitch=pitch, pitch_range=rng_, seed=seed)
        if len(wav):
            wav = resample(wav, eng.sample_rate, TARGET_RATE * warp)
            wav = trim(np.asarray(wav, dtype=np.float32))
        clips.append(np.clip(wav, -1.0, 1.0).astype(np.float32))
    lengths = np.array([len(c) for c in clips], dtype=np.int64)
    audio = np.concatenate(clips) if clips else np.zeros(0, np.float32)
    np.savez(out_path, lengths=lengths, audio=audio)


def _request(text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int,
             warp: float = 1.0) -> list:
    if not 0.5 <= float(warp) <= 2.0:
        raise ValueError(f"warp: expected a factor in [0.5, 2], got {warp!r}")
    return [str(text), str(voice), int(rate), int(pitch), int(pitch_range),
            int(seed) & 0x7FFFFFFF, float(warp)]


class SynthesisJob:
    """Utterances being synthesised in background processes; ``result()`` waits for them."""

    def __init__(self, requests: list[tuple], root: str | Path | None = None) -> None:
        import json
        import os
        import subprocess
        import sys
        import tempfile

        reqs = [_request(*r) for r in requests]
        self.n = len(reqs)
        self._tmp = tempfile.TemporaryDirectory(prefix="mobiprox_espeak_")
        self._procs = []
        if not reqs:
            return
        for i in range(N_WORKERS):
            req_path = os.path.join(self._tmp.name, f"req{i}.json")
            with open(req_path, "w") as fh:
                json.dump(reqs[i::N_WORKERS], fh)
            out_path = os.path.join(self._tmp.name, f"out{i}.npz")
            args = [sys.executable, os.path.abspath(__file__), req_path, out_path]
            if root is not None:
                args.append(str(root))
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self._procs.append((proc, out_path))

    def result(self) -> list[np.ndarray]:
        """One float32 (n_i,) 16 kHz waveform per request, in request order."""
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * self.n
        try:
            for i, (proc, out_path) in enumerate(self._procs):
                _, err = proc.communicate()
                if proc.returncode != 0:
                    tail = err.decode(errors="replace")[-2000:]
                    raise RuntimeError(f"eSpeak NG worker failed (exit {proc.returncode}):\n"
                                       f"{tail}")
                with np.load(out_path) as data:
                    bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
                    audio = data["audio"]
                out[i::N_WORKERS] = [audio[a:b].copy()
                                     for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        finally:
            self.close()
        return out

    def close(self) -> None:
        """Stop any worker still running and delete the temporary files."""
        for proc, _ in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self._tmp.cleanup()


def synthesize(requests: list[tuple], root: str | Path | None = None) -> list[np.ndarray]:
    """Synthesise many utterances reproducibly, in ``N_WORKERS`` fresh processes.

    requests : (text, voice, rate [wpm], pitch [0..100], pitch_range [0..100], seed[, warp])
        tuples. ``warp`` (default 1) stretches the utterance in time and scales its pitch and
        formants by 1 / warp (resampling eSpeak's 22050 Hz to 16000 * warp and playing it at
        16 kHz, i.e. "speed perturbation"): > 1 sounds like a longer vocal tract.
    Returns one float32 (n_i,) waveform per request at 16 kHz, resampled with soxr
    (librosa's resampler) and trimmed of leading / trailing silence (``TRIM_TOP_DB`` below
    the peak). Same requests -> bit-identical output.
    root : folder containing the ``espeak-ng-data`` to use (``build_data_dir``; default the
        bundled data).
    ``SynthesisJob(requests, root)`` does the same in the background (``.result()``).
    """
    return SynthesisJob(requests, root).result()


if __name__ == "__main__":  # worker entry point: python _espeak.py requests.json out.npz
    import json
    import sys

    with open(sys.argv[1]) as _fh:
        _worker(json.load(_fh), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
