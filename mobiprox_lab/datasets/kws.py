"""Keyword spotting (KWS): the public entry points, ``prepare`` and ``context_trace``.

The task follows the Mobiprox KWS setup (Speech Commands v0.01, 12 labels: silence,
unknown and ten keywords; 1-s clips at 16 kHz; MFCC 101 x 40). Its pieces, in reading
order (each imports only those before it; every public name is re-exported here):

- ``kws_audio``: the labels, the clip format and ``AudioSet`` (1-s clips + who said what).
- ``speech_commands``: ``load_speech_commands(root, split)`` reads the real dataset.
- ``kws_noise``: generated background noise (``NOISE_TYPES``) and mixing speech into it.
- ``kws_synth``: ``synth_keywords()`` (the offline default) synthesises the same 12-class
  task with eSpeak NG (``espeakng-loader``) from random voices (``synth_voices``) split
  into train / tune / test, so the test set holds unseen voices.
- ``kws_features``: ``mfcc(audio)`` -> float32 (N, 101, 40) with librosa, and the
  standardisation.
- ``kws_schedule``: the voice-assistant stream without audio (``speech_schedule``, the
  background contexts and their SNR); ``mean_run_lengths`` measures label persistence.
- here: ``prepare()`` -> model-ready ``Splits`` with x float32 (N, 1, 101, 40);
  ``context_trace()`` -> a voice-assistant ``Trace`` from held-out voices, one input a
  second: long stretches of background and of people talking nearby (unknown words),
  commands in bursts, while the background drifts between quiet, office and street noise.

SNR convention: 10 log10 of the speech power over the utterance itself (the trimmed
word, not the whole clip) over the noise power over the 1-s clip. NaN where it is
undefined (silence examples, real recordings).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import cache, checks
from .containers import Split, Splits, Trace
from .kws_audio import (
    CACHE_FORMAT,
    CLIP,
    KEYWORDS,
    LABELS,
    SAMPLE_RATE,
    SILENCE,
    SPLIT_NAMES,
    UNKNOWN,
    UNKNOWN_WORDS,
    AudioSet,
)
from .kws_features import MFCC_PARAMS, N_FRAMES, fit_standardisation, mfcc, model_inputs
from .kws_noise import (
    BABBLE_CROWD,
    BABBLE_SPREAD_DB,
    NOISE_TYPES,
    STREAM_MAX,
    make_noise,
    noise_matrix,
    noise_stream,
    render,
)
from .kws_schedule import (
    CONTEXTS,
    SEGMENTS,
    STREAM_DEFAULTS,
    context_schedule,
    mean_run_lengths,
    snr_track,
    speech_schedule,
)
from .kws_synth import (
    ACCENTS_EN,
    ACCENTS_FOREIGN,
    BABBLE_SENTENCES,
    BABBLE_TEXT,
    N_SPEAKERS,
    PRESET_VARIANTS,
    Voice,
    babble_speech,
    split_voices,
    synth_keywords,
    synth_voices,
    utterance_requests,
    voice_data_root,
)
from .speech_commands import BACKGROUND, check_layout, clip_files, load_speech_commands

__all__ = [
    "ACCENTS_EN", "ACCENTS_FOREIGN", "BABBLE_CROWD", "BABBLE_SENTENCES",
    "BABBLE_SPREAD_DB", "BABBLE_TEXT",
    "BACKGROUND", "CLIP", "CONTEXTS",
    "KEYWORDS", "LABELS", "MFCC_PARAMS", "NOISE_TYPES", "N_FRAMES", "N_SPEAKERS",
    "PRESET_VARIANTS", "QUICK_PER_WORD", "SAMPLE_RATE", "SEGMENTS", "SILENCE", "SPLIT_NAMES",
    "STREAM_DEFAULTS", "STREAM_MAX", "SYNTH_PER_WORD", "UNKNOWN", "UNKNOWN_WORDS", "AudioSet",
    "Voice", "babble_speech", "context_trace", "fit_standardisation", "load_speech_commands",
    "make_noise", "mean_run_lengths", "mfcc", "model_inputs", "noise_stream", "prepare",
    "speech_schedule", "split_voices", "synth_keywords", "synth_voices", "voice_data_root",
]

#: examples per class of the synthetic default, (train, tune, test), and of its quick
#: version (all splits together). Tune / test: 960 examples each (80 per class), so an
#: accuracy near 0.8-0.9 has a binomial standard error of about 1.0-1.3 pp; the tuner runs
#: the 96 MFLOP CNN on the tune set many times, so it stays modest. Train: 43,200 (each
#: noisy clip is seen 8 times in training; with 14,400 seen 24 times, the model learnt the
#: training babble clips by heart: 0.975 right against 0.55 on tune).
SYNTH_PER_WORD = (3600, 80, 80)
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
    key = cache.cache_key(kind="prepare", n_per_word=n_per_word, seed=seed, f=CACHE_FORMAT,
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
                        # without build_s: the KWS trace's cache key holds "synth", and
                        # the seconds a fresh build took made it miss after every rebuild
                        "synth": {k: v for k, v in ds_meta.items()
                                  if k not in ("source", "build_s")},
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
    root = check_layout(root)
    listing = clip_files(root)
    lists = [(root / n).read_text() if (root / n).is_file() else ""
             for n in ("validation_list.txt", "testing_list.txt")]
    key = cache.cache_key(kind="prepare_real", root=str(root.resolve()), files=listing,
                          lists=lists, quick=quick, seed=seed, f=CACHE_FORMAT)
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



def _check_trace_args(contexts, minutes, utterance_every_s, dwell_minutes, stream,
                      seed) -> tuple[float, float, dict]:
    """Validate ``context_trace``'s arguments: (dwell low, dwell high in minutes, stream)."""
    for c in contexts:
        checks.choice("contexts", c, tuple(CONTEXTS))
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
    return d_lo, d_hi, stream


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
    d_lo, d_hi, stream = _check_trace_args(contexts, minutes, utterance_every_s,
                                           dwell_minutes, stream, seed)
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
              "std": std["std"], "format": CACHE_FORMAT}
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


def _trace_speakers(splits: Splits, params: dict, progress: bool
                    ) -> tuple[AudioSet | None, list[Voice] | None, list[Voice] | None]:
    """Who speaks in a context trace: (the real test clips, None, None) for Speech Commands
    splits, else (None, the synthetic test voices, every voice of their set)."""
    if params["source"] == "speech_commands":
        real = load_speech_commands(splits.meta["root"], "test", silence_fraction=0.0,
                                    unknown_fraction=None, seed=int(splits.meta.get("seed", 0)),
                                    progress=progress)
        if len(real) == 0:
            raise ValueError("splits: expected word clips in the real test split, found none")
        return real, None, None
    synth = params["synth"]
    names = set(params["voices"])
    every = synth_voices(synth["seed"], split_fractions=tuple(synth["split_fractions"]))
    voices = [v for v in every if v.name in names]
    if not voices:
        raise ValueError("splits: expected synthetic test voices in meta['voices']['test']")
    return None, voices, every


def _babble_talkers(voices: list[Voice] | None, params: dict) -> list[Voice]:
    """Who babbles behind a context trace: held-out (test) voices only, the synthetic test
    voices of the trace's own set, or of the default voice set behind real clips."""
    if voices is not None:
        return voices
    return split_voices(synth_voices(int(params["seed"])), "test")


def _trace_background(n: int, contexts: tuple[str, ...], params: dict,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(context code int64 (n,), SNR track float64 (n,) dB, noise type str (n,)) of each
    step: the contexts' schedule, their SNR and one of each context's noise types."""
    dt = params["utterance_every_s"]
    codes = context_schedule(n, dt, contexts, (params["dwell_minutes"][0] * 60.0,
                                               params["dwell_minutes"][1] * 60.0), rng)
    centres = np.array([CONTEXTS[c]["snr_db"] for c in contexts])
    track = snr_track(codes, centres, dt, params["transition_s"], params["wander_db"], rng)
    kinds = np.array([CONTEXTS[contexts[c]]["noise"][rng.integers(
        len(CONTEXTS[contexts[c]]["noise"]))] for c in codes])
    return codes, track, kinds


def _trace_utterances(real: AudioSet | None, voices: list[Voice] | None, every, y: np.ndarray,
                      sched: dict, words_idx: np.ndarray, rng: np.random.Generator,
                      speaker: np.ndarray, word: np.ndarray) -> tuple[list | None, object]:
    """(clips, None) with a trimmed real test clip of each spoken step's class, or (None,
    the eSpeak job synthesising them); fills ``speaker`` and ``word`` at ``words_idx``."""
    if real is not None:
        from ._espeak import trim

        clips = []
        for j in words_idx:
            pool = np.flatnonzero(real.y == y[j])
            k = pool[rng.integers(len(pool))]
            clips.append(trim(real.audio[k]))
            speaker[j], word[j] = real.speaker[k], real.word[k]
        return clips, None
    chosen = [voices[k] for k in sched["voice"][words_idx]]
    texts = [LABELS[c] if c != UNKNOWN else str(UNKNOWN_WORDS[w])
             for c, w in zip(y[words_idx], sched["word_id"][words_idx], strict=True)]
    from ._espeak import SynthesisJob

    job = SynthesisJob(utterance_requests(chosen, texts, rng), voice_data_root(every))
    speaker[words_idx] = [v.name for v in chosen]
    word[words_idx] = texts
    return None, job


def _build_trace(splits: Splits, n: int, contexts: tuple[str, ...], params: dict,
                 progress: bool) -> dict:
    """The arrays ``context_trace`` caches: pool_x, y, context and the per-step meta."""
    t0 = time.perf_counter()
    seed, dt = params["seed"], params["utterance_every_s"]
    rng = np.random.default_rng([seed, 6])
    real, voices, every = _trace_speakers(splits, params, progress)
    sched = speech_schedule(n, dt, 1 if real is not None else len(voices), seed, **{
        k: v for k, v in params["stream"].items()})
    y = sched["y"]
    if real is not None:  # classes without a test clip become silence
        missing = ~np.isin(y, np.unique(real.y)) & (y != SILENCE)
        y = np.where(missing, SILENCE, y)
    codes, track, kinds = _trace_background(n, contexts, params, rng)
    silent = y == SILENCE
    # silence steps: the noise at the level it has under speech of a typical segment
    lv_lo, lv_hi = params["stream"]["level_db"]
    level = np.where(silent, 0.5 * (lv_lo + lv_hi), sched["level_db"])
    shift = rng.random(n)
    words_idx = np.flatnonzero(~silent)
    speaker = np.array(["_silence_test_"] * n, dtype=object)
    word = np.array(["_silence_"] * n, dtype=object)
    clips, job = _trace_utterances(real, voices, every, y, sched, words_idx, rng, speaker, word)
    try:
        stream = (babble_speech(_babble_talkers(voices, params), seed)
                  if "babble" in kinds else None)
        noise = noise_matrix(kinds, np.random.default_rng([seed, 7]), stream)
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
    audio = render(all_clips, shift, noise, np.where(silent, level - track, level), snr)
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
