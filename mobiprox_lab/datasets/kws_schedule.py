"""The voice-assistant stream of ``kws.context_trace``, without audio: who says what at each
step (``speech_schedule``), which background context the user is in (``context_schedule``)
and the SNR it gives (``snr_track``).

``mean_run_lengths`` measures how long labels persist in such a stream.
"""

from __future__ import annotations

import math

import numpy as np

from .. import checks
from .kws_audio import KEYWORDS, LABELS, SILENCE, UNKNOWN, UNKNOWN_WORDS

#: Background contexts of ``context_trace``: SNR centre (dB) and the noise types heard.
CONTEXTS = {
    "quiet": {"snr_db": 25.0, "noise": ("pink", "brown")},
    "office": {"snr_db": 12.0, "noise": ("babble",)},
    "street": {"snr_db": 0.0, "noise": ("street",)},
}

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


def _stream_params(stream: dict) -> dict:
    """``STREAM_DEFAULTS`` overridden by ``stream``, checked."""
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
    return p


# The three segment writers below fill the schedule ``out`` from step ``i`` and return
# (the step after the segment, the next segment's index into SEGMENTS).


def _background(rng: np.random.Generator, p: dict, dt: float, out: dict,
                i: int) -> tuple[int, int]:
    steps = _geometric(rng, p["background_mean_s"] / dt)
    out["segment"][i:i + steps] = 0
    return i + steps, 1 if rng.random() < p["p_chatter_after_background"] else 2


def _chatter(rng: np.random.Generator, p: dict, dt: float, n_voices: int, out: dict, i: int,
             level: float) -> tuple[int, int]:
    steps = min(_geometric(rng, p["chatter_mean_s"] / dt), len(out["y"]) - i)
    pair = rng.integers(0, n_voices, 2)
    sl = slice(i, i + steps)
    out["segment"][sl], out["y"][sl] = 1, UNKNOWN
    out["voice"][sl] = pair[rng.integers(0, 2, steps)]
    out["word_id"][sl] = rng.integers(0, len(UNKNOWN_WORDS), steps)
    out["level_db"][sl] = level
    return i + steps, 2 if rng.random() < p["p_command_after_chatter"] else 0


def _commands(rng: np.random.Generator, p: dict, n_voices: int, out: dict, i: int,
              level: float) -> tuple[int, int]:
    n = len(out["y"])
    who = int(rng.integers(n_voices))
    for c in range(_geometric(rng, p["commands_mean"])):
        if c and rng.random() < p["pause_p"]:
            pause = int(rng.integers(1, 3))
            out["segment"][i:i + pause] = 2
            i += pause
        steps = _geometric(rng, p["repeat_mean"])
        sl = slice(i, min(n, i + steps))
        out["segment"][sl], out["y"][sl], out["voice"][sl] = (
            2, 2 + int(rng.integers(len(KEYWORDS))), who)
        out["level_db"][sl] = level
        i += steps
        if i >= n:
            break
    return i, 1 if rng.random() < p["p_chatter_after_command"] else 0


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
    p = _stream_params(stream)
    checks.integer("n", n, 1)
    if not dt > 0:
        raise ValueError(f"dt: expected > 0 s, got {dt!r}")
    checks.integer("n_voices", n_voices, 1)
    lv_lo, lv_hi = (float(v) for v in p["level_db"])
    rng = np.random.default_rng([int(seed), 8])
    out = {"y": np.full(n, SILENCE, dtype=np.int64), "segment": np.zeros(n, dtype=np.int64),
           "voice": np.full(n, -1, dtype=np.int64), "word_id": np.full(n, -1, dtype=np.int64),
           "level_db": np.zeros(n, dtype=np.float64)}
    i, state = 0, 0
    while i < n:
        seg_level = rng.uniform(lv_lo, lv_hi)
        if state == 0:
            i, state = _background(rng, p, dt, out, i)
        elif state == 1:
            i, state = _chatter(rng, p, dt, n_voices, out, i, seg_level)
        else:
            i, state = _commands(rng, p, n_voices, out, i, seg_level)
    level = out["level_db"]
    spoken = out["y"] != SILENCE
    level[spoken] += rng.normal(0.0, float(p["level_jitter_db"]), int(spoken.sum()))
    level[~spoken] = 0.0
    out["level_db"] = np.minimum(level, 0.0)
    return out


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


def context_schedule(n: int, dt: float, contexts: tuple[str, ...], dwell_s: tuple[float, float],
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


def snr_track(codes: np.ndarray, centres: np.ndarray, dt: float, transition_s: float,
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
