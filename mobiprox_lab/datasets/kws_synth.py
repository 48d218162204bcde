"""Synthetic keyword data from eSpeak NG: the voices, the utterances, the 12-class set.

- ``synth_voices(seed)``: the speakers, eSpeak voice variants generated at random (male /
  female / child vocal tracts: pitch, formant scaling, voice quality) plus eSpeak's
  standard variants, each with an accent (English dialects or foreign-accented English),
  a speaking rate, pitch, pitch range and vocal-tract warp; shuffled into train / tune /
  test so the test set holds unseen voices.
- ``utterance_requests``: one eSpeak request per utterance, the voice jittered.
- ``babble_speech(talkers, seed)``: sentences read by every voice of one split, the source
  of that split's "babble" noise.
- ``synth_keywords()``: the 12-class task (silence, unknown = ``UNKNOWN_WORDS``, ten
  keywords), each utterance shifted at random in its 1-s clip and mixed with background
  noise (``kws_noise``) over a range of SNRs; cached.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import cache, checks
from .kws_audio import (
    CACHE_FORMAT,
    CLIP,
    LABELS,
    SAMPLE_RATE,
    SILENCE,
    SPLIT_NAMES,
    UNKNOWN,
    UNKNOWN_WORDS,
    AudioSet,
)
from .kws_noise import NOISE_TYPES, noise_matrix, render, unit_rms

#: eSpeak NG language voices: native English dialects, then foreign-accented English
#: (languages whose letter-to-sound rules read the ten keywords recognisably).
ACCENTS_EN = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
              "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
ACCENTS_FOREIGN = ("de", "es", "it", "pl", "ro", "cs")
#: Sentences read by the babble talkers: none holds a keyword or an "unknown" word
#: (``UNKNOWN_WORDS``), so babble carries nothing any class stands for.
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
    "The coffee in this place is much better than the coffee near the station.",
    "Have you seen the new film about the sailors lost at sea?",
    "The children were building a castle of sand near the water.",
    "I usually take the bus, but today my sister gave me a lift.",
    "Please send me the report by Friday so that I can read it first.",
    "The farmer grows potatoes, carrots and beans in the field behind the barn.",
    "We waited for almost an hour before the waiter brought the soup.",
    "His grandmother tells wonderful stories about the village of her youth.",
    "The shop at the corner sells fresh fish every Tuesday and Saturday.",
    "It was so cold last winter that the lake froze for weeks.",
    "They are planning a trip to the mountains at the end of the month.",
    "The teacher asked the class to write a short essay about their summer.",
    "I cannot find my keys anywhere; maybe they are still in the car.",
    "The orchestra played a beautiful piece by a composer from Vienna.",
    "Fresh bread smells wonderful when it comes straight from the oven.",
    "The doctor said I should drink more water and walk every afternoon.",
    "Most of the guests arrived early, but the band was late.",
    "The company announced that it will open a new branch in Madrid.",
    "We watched the sunset from the bridge and then walked back slowly.",
    "My friend from college is visiting us with her husband this weekend.",
    "The garden looks lovely now that the roses have started to bloom.",
)
#: Sentences each babble talker reads (drawn at random from ``BABBLE_TEXT``).
BABBLE_SENTENCES = 2


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
                          f=CACHE_FORMAT)
    return build_data_dir(cache.cache_dir("espeak") / key, defs, languages=languages,
                          keep_variants=presets)


def utterance_requests(voices: list[Voice], words: list[str],
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


def babble_speech(talkers: list[Voice], seed: int, *, n_talkers: int | None = None
                  ) -> np.ndarray:
    """float32 (m,): ``BABBLE_SENTENCES`` sentences of ``BABBLE_TEXT`` read by each of
    ``n_talkers`` of ``talkers`` (default: all of them), each utterance unit RMS; cached.
    A split's default is ~10 s of speech per talker, ~37 min for the train split's 222.

    ``talkers`` must be the voices of one split: a split's babble noise comes from that
    split's own speakers, so no voice is heard in two splits (a test voice babbling behind
    training clips would be a leak). All of them by default: babble from 12 training
    voices (~1.5 min of speech, data format 7) was learnt by heart (train babble clips
    0.97 right, tune 0.65; babble-only tune clips 2 of 16)."""
    from ._espeak import synthesize

    splits = sorted({v.split for v in talkers})
    if len(splits) != 1:
        raise ValueError(f"talkers: expected the voices of one split, got splits {splits}")
    n_talkers = len(talkers) if n_talkers is None else checks.integer(
        "n_talkers", n_talkers, lo=1)
    key = cache.cache_key(seed=seed, talkers=sorted(v.name for v in talkers),
                          n_talkers=n_talkers, f=CACHE_FORMAT)
    path = cache.cache_dir("datasets") / f"kws_babble_{key}.npz"
    if path.exists():
        return cache.load_npz(path)["stream"]
    rng = np.random.default_rng([seed, 2])
    pick = rng.choice(len(talkers), min(n_talkers, len(talkers)), replace=False)
    reqs = []
    for i in pick:
        v = talkers[i]
        for k in rng.choice(len(BABBLE_TEXT), BABBLE_SENTENCES, replace=False):
            reqs.append((BABBLE_TEXT[k], v.name, v.rate, v.pitch, v.pitch_range,
                         int(rng.integers(0, 2**31 - 1)), v.warp))
    clips = [unit_rms(c) for c in synthesize(reqs, voice_data_root(talkers)) if len(c)]
    stream = np.concatenate(clips).astype(np.float32)
    cache.save_npz(path, stream=stream)
    return stream


def split_voices(voices: list[Voice], split: str) -> list[Voice]:
    """The voices of ``voices`` in ``split`` ("train", "tune" or "test")."""
    checks.choice("split", split, SPLIT_NAMES)
    return [v for v in voices if v.split == split]


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


def _synth_params(n_per_word, seed, snr_db, eval_snr_db, noise_types, split_fractions,
                  level_db) -> tuple[list[int], dict]:
    """(examples per class in each split, the checked parameters of ``synth_keywords``: its
    cache key and meta)."""
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
        checks.choice("noise_types", kind, NOISE_TYPES)
    params = {"n_per_word": (int(n_per_word) if isinstance(n_per_word, (int, np.integer))
                             else tuple(per_split)), "seed": int(seed), "snr_db": (lo, hi),
              **({} if eval_snr_db is None else {"eval_snr_db": (ev_lo, ev_hi)}),
              "noise_types": noise_types, "split_fractions": tuple(split_fractions),
              "level_db": (lv_lo, lv_hi), "format": CACHE_FORMAT}
    return per_split, params


def _example_rows(voices: list[Voice], per_split: list[int], split_fractions,
                  rng: np.random.Generator) -> list[tuple]:
    """(split, class, voice or None, word) of every example: ``per_split`` examples of each
    class per split, said by that split's voices in turn (silence: no voice)."""
    rows = []
    for split, count in zip(SPLIT_NAMES, per_split, strict=True):
        pool = split_voices(voices, split)
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
    return rows


def _example_draws(rows: list[tuple], params: dict, rng: np.random.Generator) -> dict:
    """Random settings of each example: ``reqs`` (eSpeak requests of the ``word_rows``),
    ``snr_db`` (NaN for silence; the eval range for tune / test), ``level_db`` (speech
    level, or the noise level of a silence example), noise ``kinds`` and ``shift`` (the
    utterance's relative position in its clip, [0, 1))."""
    n = len(rows)
    is_word = np.array([r[2] is not None for r in rows])
    word_rows = np.flatnonzero(is_word)
    reqs = utterance_requests([rows[i][2] for i in word_rows],
                              [rows[i][3] for i in word_rows], rng)
    lo, hi = params["snr_db"]
    ev_lo, ev_hi = params.get("eval_snr_db", (lo, hi))
    u = rng.random(n)  # SNR = low + (high - low) * u, as rng.uniform draws it
    is_train = np.array([r[0] == "train" for r in rows])
    snr = np.where(is_train, lo + (hi - lo) * u, ev_lo + (ev_hi - ev_lo) * u).astype(np.float32)
    level = rng.uniform(*params["level_db"], n)
    noise_types = params["noise_types"]
    kinds = np.array(noise_types)[rng.integers(0, len(noise_types), n)]
    shift = rng.random(n)
    return {"is_word": is_word, "word_rows": word_rows, "reqs": reqs, "kinds": kinds,
            "shift": shift, "snr_db": np.where(is_word, snr, np.nan).astype(np.float32),
            "level_db": np.where(is_word, level, level - snr)}


def _synth_audio(rows: list[tuple], draws: dict, voices: list[Voice], seed: int,
                 bar) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """(int16 (n, CLIP) mixtures, the utterances (None for silence)). eSpeak runs in the
    background while the noise is made, from separate noise streams per split."""
    from ._espeak import SynthesisJob

    n, kinds = len(rows), draws["kinds"]
    job = SynthesisJob(draws["reqs"], voice_data_root(voices))
    try:
        split_of = np.array([r[0] for r in rows])
        noise = np.empty((n, CLIP), dtype=np.float32)
        for k, split in enumerate(SPLIT_NAMES):
            idx = np.flatnonzero(split_of == split)
            stream = (babble_speech(split_voices(voices, split), seed)
                      if "babble" in kinds[idx] else None)
            noise[idx] = noise_matrix(kinds[idx], np.random.default_rng([seed, 4, k]), stream)
    except BaseException:
        job.close()
        raise
    bar.update()
    clips: list[np.ndarray | None] = [None] * n
    for i, c in zip(draws["word_rows"], job.result(), strict=True):
        clips[i] = c
    bar.update()
    audio16 = render(clips, draws["shift"], noise, draws["level_db"], draws["snr_db"])
    del noise
    bar.update()
    return audio16, clips


def _synth_arrays(rows: list[tuple], draws: dict, clips: list[np.ndarray | None],
                  audio16: np.ndarray, t0: float) -> dict[str, np.ndarray]:
    """What ``synth_keywords`` caches: the 16-bit audio, labels and per-example facts."""
    n, reqs, word_rows, shift = len(rows), draws["reqs"], draws["word_rows"], draws["shift"]
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
    return {
        "audio16": audio16,
        "y": np.array([r[1] for r in rows], dtype=np.int64),
        "speaker": np.array([r[2].name if r[2] is not None else f"_silence_{r[0]}_"
                             for r in rows]),
        "word": np.array([r[3] for r in rows]),
        "split": np.array([r[0] for r in rows]),
        "snr_db": draws["snr_db"],
        "noise": draws["kinds"],
        "rate": rate, "pitch": pitch, "pitch_range": prange, "warp": warp,
        "shift_s": np.where(draws["is_word"], start_s, 0.0).astype(np.float32),
        "duration_s": (lengths / SAMPLE_RATE).astype(np.float32),
        "level_db": draws["level_db"].astype(np.float32),
        "build_s": np.float64(time.perf_counter() - t0),
    }


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
    per_split, params = _synth_params(n_per_word, seed, snr_db, eval_snr_db, noise_types,
                                      split_fractions, level_db)
    path = cache.cache_dir("datasets") / f"kws_synth_{cache.cache_key(**params)}.npz"
    if use_cache and path.exists():
        return _audioset_from_npz(cache.load_npz(path), params)

    from tqdm.auto import tqdm

    bar = tqdm(total=4, desc="synth keywords", disable=not progress, leave=False)
    t0 = time.perf_counter()
    voices = synth_voices(seed, split_fractions=split_fractions)
    rng = np.random.default_rng([seed, 3])
    rows = _example_rows(voices, per_split, split_fractions, rng)
    draws = _example_draws(rows, params, rng)
    bar.update()
    audio16, clips = _synth_audio(rows, draws, voices, seed, bar)
    bar.close()
    arrays = _synth_arrays(rows, draws, clips, audio16, t0)
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
