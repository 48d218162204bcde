"""Keyword-spotting data: Speech Commands loader, eSpeak synthesis, MFCC, context traces."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobiprox_lab.datasets import Splits, kws
from mobiprox_lab.datasets.traces import Trace

SR = kws.SAMPLE_RATE


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep this module's generated artefacts out of the repository's data/cache."""
    old = os.environ.get("MOBIPROX_DATA")
    os.environ["MOBIPROX_DATA"] = str(tmp_path_factory.mktemp("mobiprox_data"))
    yield
    if old is None:
        os.environ.pop("MOBIPROX_DATA", None)
    else:
        os.environ["MOBIPROX_DATA"] = old


# ------------------------------------------------------------------ Speech Commands tree


def _tone(seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _wav(path: Path, data: np.ndarray, sr: int = SR) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, subtype="PCM_16")


@pytest.fixture()
def sc_root(tmp_path: Path) -> Path:
    """A tiny Speech Commands tree: 2 keyword folders, 1 non-keyword folder, lists, noise."""
    root = tmp_path / "speech_commands"
    _wav(root / "yes" / "aaa_nohash_0.wav", _tone(1.0, 300))
    _wav(root / "yes" / "bbb_nohash_0.wav", _tone(0.5, 300))  # short -> padded
    _wav(root / "yes" / "ccc_nohash_0.wav", _tone(1.25, 300))  # long -> trimmed
    _wav(root / "no" / "aaa_nohash_1.wav", _tone(1.0, 500))
    _wav(root / "no" / "ddd_nohash_0.wav", _tone(0.8, 500))
    _wav(root / "bed" / "eee_nohash_0.wav", _tone(1.0, 700))
    _wav(root / "bed" / "ggg_nohash_1.wav", _tone(1.0, 700))
    rng = np.random.default_rng(0)
    _wav(root / kws.BACKGROUND / "white_noise.wav",
         (0.3 * rng.uniform(-1, 1, 5 * SR)).astype(np.float32))
    _wav(root / kws.BACKGROUND / "hum.wav", _tone(3.0, 60, amp=0.4))
    (root / "validation_list.txt").write_text("yes/bbb_nohash_0.wav\nbed/eee_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/ddd_nohash_0.wav\n")
    return root


def test_loader_split_membership_and_labels(sc_root: Path) -> None:
    tr = kws.load_speech_commands(sc_root, "train", silence_fraction=1.0,
                                  unknown_fraction=None, progress=False)
    words = tr.extra["path"][tr.y != kws.SILENCE]
    assert sorted(words) == ["bed/ggg_nohash_1.wav", "no/aaa_nohash_1.wav",
                             "yes/aaa_nohash_0.wav", "yes/ccc_nohash_0.wav"]
    label = dict(zip(tr.extra["path"], tr.y, strict=True))
    assert label["yes/aaa_nohash_0.wav"] == kws.LABELS.index("yes")
    assert label["no/aaa_nohash_1.wav"] == kws.LABELS.index("no")
    assert label["bed/ggg_nohash_1.wav"] == kws.UNKNOWN
    speakers = dict(zip(tr.extra["path"], tr.speaker, strict=True))
    assert speakers["bed/ggg_nohash_1.wav"] == "ggg"
    # silence: ceil(1.0 * 3 keyword clips), cut from the background-noise files
    sil = tr.y == kws.SILENCE
    assert sil.sum() == 3
    assert set(tr.noise[sil]) <= {"white_noise", "hum"}
    assert set(tr.speaker[sil]) == {"_silence_train_"}
    assert np.isnan(tr.snr_db).all()

    val = kws.load_speech_commands(sc_root, "validation", silence_fraction=0.0,
                                   unknown_fraction=None, progress=False)
    assert sorted(val.extra["path"]) == ["bed/eee_nohash_0.wav", "yes/bbb_nohash_0.wav"]
    te = kws.load_speech_commands(sc_root, "test", silence_fraction=0.0, progress=False)
    assert list(te.extra["path"]) == ["no/ddd_nohash_0.wav"]
    assert set(tr.speaker) & set(te.speaker) == set()


def test_loader_padding_trimming_dtype_range(sc_root: Path) -> None:
    tr = kws.load_speech_commands(sc_root, "train", silence_fraction=1.0,
                                  unknown_fraction=None, progress=False)
    val = kws.load_speech_commands(sc_root, "validation", silence_fraction=0.0,
                                   unknown_fraction=None, progress=False)
    for ds in (tr, val):
        assert ds.audio.dtype == np.float32 and ds.audio.shape == (len(ds), kws.CLIP)
        assert ds.y.dtype == np.int64
        assert np.abs(ds.audio).max() <= 1.0
    short = val.audio[list(val.extra["path"]).index("yes/bbb_nohash_0.wav")]
    assert np.abs(short[: SR // 2 - 10]).max() > 0.4  # the 0.5-s tone...
    assert not short[SR // 2:].any()  # ...then zeros
    long = tr.audio[list(tr.extra["path"]).index("yes/ccc_nohash_0.wav")]
    np.testing.assert_allclose(long, _tone(1.25, 300)[:SR], atol=1e-4)  # first second kept
    sil = tr.audio[tr.y == kws.SILENCE]
    assert (np.abs(sil) <= 0.4 + 1e-4).all()  # background scaled by a gain in [0, 1]


def test_loader_unknown_subsample(sc_root: Path) -> None:
    tr = kws.load_speech_commands(sc_root, "train", silence_fraction=0.0,
                                  unknown_fraction=0.1, progress=False)
    assert (tr.y == kws.UNKNOWN).sum() == 1  # ceil(0.1 * 3 keyword clips)


def test_loader_errors(sc_root: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="^root: .*nowhere"):
        kws.load_speech_commands(missing)
    with pytest.raises(ValueError, match="split"):
        kws.load_speech_commands(sc_root, "dev")
    _wav(sc_root / "yes" / "fff_nohash_0.wav", _tone(1.0), sr=8000)
    with pytest.raises(ValueError, match=r"^root: .*fff_nohash_0\.wav.*16000"):
        kws.load_speech_commands(sc_root, "train", progress=False)
    (sc_root / "yes" / "fff_nohash_0.wav").unlink()
    (sc_root / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="^root: .*testing_list.txt"):
        kws.load_speech_commands(sc_root, "train", progress=False)


def test_loader_bad_root(sc_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^root: "):
        kws.load_speech_commands(None)  # type: ignore[arg-type]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(FileNotFoundError, match=r"root.*not a folder"):
        kws.load_speech_commands(a_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"root.*is empty"):
        kws.load_speech_commands(empty)
    # the dataset one level down (e.g. the folder the archive was unpacked into)
    with pytest.raises(ValueError, match=r"root=.*speech_commands"):
        kws.load_speech_commands(sc_root.parent)
    # WAVs straight in root, no word folders
    flat = tmp_path / "flat"
    _wav(flat / "yes_0.wav", _tone(1.0))
    for name in ("validation_list.txt", "testing_list.txt"):
        (flat / name).write_text("")
    with pytest.raises(ValueError, match=r"root.*no sub-folder of WAVs \(1 WAVs lie"):
        kws.load_speech_commands(flat)
    # word folders, but none of the keywords
    other = tmp_path / "other"
    _wav(other / "bed" / "a_nohash_0.wav", _tone(1.0))
    for name in ("validation_list.txt", "testing_list.txt"):
        (other / name).write_text("")
    with pytest.raises(ValueError, match=r"root: expected keyword folders.*bed"):
        kws.load_speech_commands(other)
    # a split list from another version: none of its entries exists
    (sc_root / "testing_list.txt").write_text("cat/zzz_nohash_0.wav\n")
    with pytest.raises(ValueError, match=r"root.*testing_list.txt.*none of its 1 entries"):
        kws.load_speech_commands(sc_root, "test", progress=False)


@pytest.mark.parametrize("damage", ["truncated", "header_only", "garbage", "empty_file",
                                    "no_samples", "stereo"])
def test_loader_bad_wav(sc_root: Path, damage: str) -> None:
    import soundfile as sf

    path = sc_root / "yes" / "aaa_nohash_0.wav"
    raw = path.read_bytes()
    if damage == "truncated":  # cut inside the data chunk: libsndfile alone reads it silently
        path.write_bytes(raw[: len(raw) // 2])
        assert 0 < len(sf.read(str(path))[0]) < SR
    elif damage == "header_only":
        path.write_bytes(raw[:30])
    elif damage == "garbage":
        path.write_bytes(b"not a wav file at all " * 20)
    elif damage == "empty_file":
        path.write_bytes(b"")
    elif damage == "no_samples":
        _wav(path, np.zeros(0, np.float32))
    else:
        _wav(path, np.stack([_tone(1.0), _tone(1.0)], axis=1))
    expect = {"truncated": "truncated", "no_samples": "holds none", "stereo": "mono"}.get(
        damage, "readable WAV")
    with pytest.raises(ValueError, match=rf"root: .*aaa_nohash_0\.wav: expected.*{expect}"):
        kws.load_speech_commands(sc_root, "train", progress=False)


def test_loader_empty_and_missing_background(tmp_path: Path) -> None:
    root = tmp_path / "sc"
    _wav(root / "yes" / "aaa_nohash_0.wav", _tone(1.0))
    (root / "validation_list.txt").write_text("")
    (root / "testing_list.txt").write_text("")
    with pytest.raises(ValueError, match="'test' split"):
        kws.load_speech_commands(root, "test", silence_fraction=0.0, progress=False)
    with pytest.raises(FileNotFoundError, match=kws.BACKGROUND):
        kws.load_speech_commands(root, "train", silence_fraction=0.5, progress=False)


def test_prepare_real(sc_root: Path) -> None:
    sp = kws.prepare(root=sc_root, progress=False)
    assert isinstance(sp, Splits) and sp.task == "kws" and sp.labels == kws.LABELS
    assert sp.input_shape == (1, 101, 40)
    assert sp.meta["source"] == "speech_commands"
    groups = [set(s.group.tolist()) for s in (sp.train, sp.tune, sp.test)]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2])
    assert not (groups[1] & groups[2])
    for s in (sp.train, sp.tune, sp.test):
        assert s.x.dtype == np.float32 and np.isfinite(s.x).all()
    tr = kws.context_trace(sp, minutes=1.0, dwell_minutes=(0.2, 0.3), progress=False)
    assert len(tr) == 60 and set(tr.y.tolist()) <= {kws.SILENCE, kws.LABELS.index("no")}
    assert set(tr.meta["speaker"][tr.y != kws.SILENCE]) <= {"ddd"}  # the real test speaker
    with pytest.raises(ValueError, match="synthesis options"):
        kws.prepare(root=sc_root, snr_db=(0.0, 10.0))
    with pytest.raises(ValueError, match="synth_options"):
        kws.prepare(quick=True, loudness=3)


# -------------------------------------------------------------------------- synthesis

N_SMALL = 12  # examples per class in the synthesis tests


@pytest.fixture(scope="module")
def small_synth() -> tuple[kws.AudioSet, float]:
    t0 = time.perf_counter()
    ds = kws.synth_keywords(N_SMALL, seed=0, use_cache=False, progress=False)
    return ds, time.perf_counter() - t0


def test_synth_deterministic_and_seeded(small_synth) -> None:
    ds, _ = small_synth
    again = kws.synth_keywords(N_SMALL, seed=0, use_cache=False, progress=False)
    np.testing.assert_array_equal(ds.audio, again.audio)
    np.testing.assert_array_equal(ds.y, again.y)
    np.testing.assert_array_equal(ds.speaker, again.speaker)
    np.testing.assert_array_equal(ds.snr_db, again.snr_db)
    other = kws.synth_keywords(N_SMALL, seed=1, use_cache=False, progress=False)
    assert not np.array_equal(ds.audio, other.audio)
    cached = kws.synth_keywords(N_SMALL, seed=0, progress=False)  # writes, then reads back
    np.testing.assert_array_equal(kws.synth_keywords(N_SMALL, seed=0, progress=False).audio,
                                  cached.audio)
    np.testing.assert_array_equal(cached.audio, ds.audio)


def test_babble_behind_each_split_is_that_splits_voices(monkeypatch) -> None:
    from mobiprox_lab.datasets import kws_synth

    used = []
    real = kws_synth.babble_speech

    def spy(talkers, seed, **kw):
        used.append({v.split for v in talkers})
        return real(talkers, seed, **kw)

    monkeypatch.setattr(kws_synth, "babble_speech", spy)
    ds = kws.synth_keywords(N_SMALL, seed=0, noise_types=("babble",), use_cache=False,
                            progress=False)
    assert used == [{"train"}, {"tune"}, {"test"}]
    assert set(ds.noise) == {"babble"}


def test_synth_balance_format_and_snr(small_synth) -> None:
    ds, seconds = small_synth
    print(f"synth_keywords({N_SMALL}) cold: {seconds:.1f} s")
    assert ds.audio.dtype == np.float32 and ds.audio.shape == (12 * N_SMALL, kws.CLIP)
    assert np.abs(ds.audio).max() <= 1.0
    np.testing.assert_array_equal(ds.class_counts(), np.full(12, N_SMALL))
    for split in kws.SPLIT_NAMES:
        counts = np.bincount(ds.y[ds.split == split], minlength=12)
        assert counts.min() == counts.max() > 0
    words = ds.y != kws.SILENCE
    assert np.isnan(ds.snr_db[~words]).all()
    snr = ds.snr_db[words]
    assert snr.min() >= -5.0 and snr.max() <= 30.0
    assert snr.min() < 5.0 and snr.max() > 20.0  # the range is actually covered
    assert set(ds.word[ds.y == kws.UNKNOWN]) <= set(kws.UNKNOWN_WORDS)
    kw = (ds.y >= 2)
    assert (ds.word[kw] == np.asarray(kws.LABELS)[ds.y[kw]]).all()
    assert len(set(ds.noise)) >= 3 and set(ds.noise) <= set(kws.NOISE_TYPES)
    assert len(ds.info()) == len(ds)


def test_synth_eval_snr_and_per_split_counts(small_synth) -> None:
    ds, _ = small_synth
    ev = kws.synth_keywords(N_SMALL, seed=0, eval_snr_db=(20.0, 25.0), use_cache=False,
                            progress=False)
    tr = ds.split == "train"
    np.testing.assert_array_equal(ev.audio[tr], ds.audio[tr])  # train unchanged
    held = (ev.split != "train") & (ev.y != kws.SILENCE)
    assert held.any() and (ev.snr_db[held] >= 20.0).all() and (ev.snr_db[held] <= 25.0).all()
    assert ev.meta["eval_snr_db"] == (20.0, 25.0)
    per = kws.synth_keywords((5, 2, 3), seed=0, use_cache=False, progress=False)
    for split, count in zip(kws.SPLIT_NAMES, (5, 2, 3), strict=True):
        np.testing.assert_array_equal(np.bincount(per.y[per.split == split], minlength=12),
                                      np.full(12, count))
    for bad in ((5, 0, 3), (5, 2), 2.5, True):
        with pytest.raises(ValueError, match="n_per_word"):
            kws.synth_keywords(bad, use_cache=False, progress=False)
    with pytest.raises(ValueError, match="eval_snr_db"):
        kws.synth_keywords(2, eval_snr_db=(10.0, 0.0))


def test_synth_voices_disjoint(small_synth) -> None:
    ds, _ = small_synth
    voices = {s: set(ds.speaker[(ds.split == s) & (ds.y != kws.SILENCE)])
              for s in kws.SPLIT_NAMES}
    assert voices["train"] and voices["tune"] and voices["test"]
    assert not voices["train"] & voices["test"]
    assert not voices["train"] & voices["tune"] and not voices["tune"] & voices["test"]
    catalogue = kws.synth_voices(0)
    variants = {s: {v.variant for v in catalogue if v.split == s} for s in kws.SPLIT_NAMES}
    assert not variants["train"] & variants["test"]  # unseen timbres, not just accents
    assert len({v.accent for v in catalogue}) > 8
    assert {v.kind for v in catalogue} == {"male", "female", "child", "preset"}
    assert catalogue == kws.synth_voices(0) and catalogue != kws.synth_voices(1)


def test_synth_words_audible_at_high_snr() -> None:
    ds = kws.synth_keywords(4, seed=3, snr_db=(30.0, 30.0), noise_types=("pink",),
                            use_cache=False, progress=False)
    for i in np.flatnonzero(ds.y != kws.SILENCE):
        a = int(ds.extra["shift_s"][i] * SR)
        b = a + int(ds.extra["duration_s"][i] * SR)
        assert b - a > 0.05 * SR
        speech = np.sqrt(np.mean(ds.audio[i, a:b] ** 2))
        rest = np.concatenate([ds.audio[i, :a], ds.audio[i, b:]])
        if len(rest) > 400:
            assert 20 * np.log10(speech / np.sqrt(np.mean(rest ** 2))) > 20.0


def test_synth_validation() -> None:
    with pytest.raises(ValueError, match="n_per_word"):
        kws.synth_keywords(0)
    with pytest.raises(ValueError, match="noise_types"):
        kws.synth_keywords(2, noise_types=("jet",))
    with pytest.raises(ValueError, match="snr_db"):
        kws.synth_keywords(2, snr_db=(10.0, 0.0))


def test_noise_types_unit_rms_and_coloured() -> None:
    rng = np.random.default_rng(0)
    speech = kws.babble_speech(kws.split_voices(kws.synth_voices(0), "train"), 0)
    spectra = {}
    for kind in kws.NOISE_TYPES:
        x = kws.make_noise(kind, 6, rng, speech)
        assert x.shape == (6, kws.CLIP) and x.dtype == np.float32
        np.testing.assert_allclose(np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1)), 1.0,
                                   rtol=1e-4)
        power = np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=0)
        spectra[kind] = power[100:1000].sum() / power[4000:8000].sum()  # 100-1000 vs 4-8 kHz
    assert spectra["white"] < spectra["pink"] < spectra["brown"]
    with pytest.raises(ValueError, match="babble_speech"):
        kws.make_noise("babble", 2, rng)


def test_babble_is_a_crowd_with_no_dominant_talker() -> None:
    """An impulse as "speech" shows each talker: BABBLE_CROWD copies, none more than
    BABBLE_SPREAD_DB above another, so any one lies >= 10 dB below the rest together."""
    speech = np.zeros(200_000, dtype=np.float32)
    speech[0] = 1.0
    x = kws.noise_stream("babble", len(speech), np.random.default_rng(3), speech)
    talkers = np.abs(x[np.flatnonzero(x)])
    assert len(talkers) == kws.BABBLE_CROWD
    assert 20 * np.log10(talkers.max() / talkers.min()) <= kws.BABBLE_SPREAD_DB + 1e-3
    power = talkers.astype(np.float64) ** 2
    assert 10 * np.log10(power.max() / (power.sum() - power.max())) <= -10.0


def test_babble_text_says_no_class_word() -> None:
    import re

    spoken = set(kws.KEYWORDS) | set(kws.UNKNOWN_WORDS)
    for sentence in kws.BABBLE_TEXT:
        said = spoken & set(re.findall(r"[a-z]+", sentence.lower()))
        assert not said, f"{sentence!r} says {sorted(said)}"
    assert len(set(kws.BABBLE_TEXT)) == len(kws.BABBLE_TEXT)


def test_babble_speech_is_read_by_every_talker_by_default(monkeypatch, tmp_path: Path) -> None:
    from mobiprox_lab.datasets import _espeak

    calls = []

    def fake_synthesize(reqs, root):
        calls.append(list(reqs))
        return [np.ones(800, dtype=np.float32) for _ in reqs]

    monkeypatch.setattr(_espeak, "synthesize", fake_synthesize)
    monkeypatch.setenv("MOBIPROX_DATA", str(tmp_path))
    talkers = kws.split_voices(kws.synth_voices(0), "tune")
    stream = kws.babble_speech(talkers, 0)
    reqs = calls[-1]
    assert {r[1] for r in reqs} == {v.name for v in talkers}
    assert len(reqs) == kws.BABBLE_SENTENCES * len(talkers)
    assert all(r[0] in kws.BABBLE_TEXT for r in reqs)
    assert len(stream) == 800 * len(reqs)
    kws.babble_speech(talkers, 0, n_talkers=5)
    assert len({r[1] for r in calls[-1]}) == 5


def test_babble_talkers_come_from_one_split() -> None:
    voices = kws.synth_voices(0)
    mixed = kws.split_voices(voices, "train")[:6] + kws.split_voices(voices, "test")[:6]
    with pytest.raises(ValueError, match=r"talkers: expected the voices of one split"):
        kws.babble_speech(mixed, 0)
    with pytest.raises(ValueError, match="split"):
        kws.split_voices(voices, "validation")
    assert {v.split for v in kws.split_voices(voices, "tune")} == {"tune"}


def test_espeak_generated_variant_and_unknown_variant(tmp_path: Path) -> None:
    from mobiprox_lab.datasets import _espeak

    high = ("language variant\nname hi\ngender female\npitch 240 300\n"
            "formant 1 120 100 100\nformant 2 120 100 100\n")
    root = _espeak.build_data_dir(tmp_path / "esp", {"hi": high}, languages=("en-us",),
                                  keep_variants=("m1",))
    low, hi_wav = _espeak.synthesize([("go", "en-us+m1", 150, 50, 50, 1),
                                      ("go", "en-us+hi", 150, 50, 50, 1, 1.1)], root)
    assert len(low) > 0.1 * SR and np.abs(hi_wav).max() > 0.05

    def f0(wav: np.ndarray) -> float:
        import librosa

        return float(np.median(librosa.yin(wav, fmin=60, fmax=500, sr=SR, frame_length=1024)))

    assert f0(hi_wav) > 1.5 * f0(low)
    with pytest.raises(RuntimeError, match="nonexistent"):
        _espeak.synthesize([("go", "en-us+nonexistent", 150, 50, 50, 1)], root)
    with pytest.raises(ValueError, match="language"):
        _espeak.language_file("xx-nowhere")


# ------------------------------------------------------------------------------- MFCC


def test_mfcc_shape_and_librosa_consistency() -> None:
    import librosa

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((3, kws.CLIP))).astype(np.float32)
    x[1] *= 0.001  # a quiet clip: the 80 dB floor is per clip, not per batch
    feats = kws.mfcc(x, batch=2)
    assert feats.shape == (3, 101, 40) and feats.dtype == np.float32
    assert kws.mfcc(x[0]).shape == (101, 40)
    p = kws.MFCC_PARAMS
    for i in range(3):
        ref = librosa.feature.mfcc(y=x[i], sr=p["sr"], n_mfcc=40, n_fft=480, win_length=480,
                                   hop_length=160, n_mels=40, fmin=20.0, fmax=4000.0)
        np.testing.assert_allclose(feats[i], ref.T, rtol=1e-4, atol=1e-3)
    # batching must not change a clip's features; bit-equality is not promised: the mel
    # projection is one GEMM whose blocking (so its rounding) depends on the batch shape
    # on some CPUs (CI saw 1-ulp differences, max 6e-5 absolute)
    np.testing.assert_allclose(kws.mfcc(x, batch=1, workers=1), feats, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="audio"):
        kws.mfcc(np.zeros((2, kws.CLIP), dtype=np.int16))
    with pytest.raises(ValueError, match="audio"):
        kws.mfcc(np.zeros((2, 3, kws.CLIP), dtype=np.float32))


@settings(max_examples=15, deadline=None)
@given(freq=st.floats(min_value=150.0, max_value=3700.0))
def test_mfcc_pure_tone_lands_in_its_mel_band(freq: float) -> None:
    import librosa
    from scipy.fft import idct

    feats = kws.mfcc(_tone(1.0, freq))
    log_mel = idct(feats[50], type=2, norm="ortho")  # undo the orthonormal DCT
    centres = librosa.mel_frequencies(42, fmin=20.0, fmax=4000.0)[1:-1]
    nearest = int(np.argmin(np.abs(centres - freq)))
    assert abs(int(np.argmax(log_mel)) - nearest) <= 1


# ---------------------------------------------------------------- prepare + context trace


@pytest.fixture(scope="module")
def quick_splits() -> Splits:
    return kws.prepare(quick=True, progress=False)


def test_prepare_quick(quick_splits: Splits) -> None:
    sp = quick_splits
    assert sp.task == "kws" and sp.n_classes == 12 and sp.input_shape == (1, 101, 40)
    for name in kws.SPLIT_NAMES:
        s = getattr(sp, name)
        assert s.x.dtype == np.float32 and s.y.dtype == np.int64 and s.group.dtype == np.int64
        assert len(sp.meta["examples"][name]["snr_db"]) == len(s)
        assert np.bincount(s.y, minlength=12).min() > 0
    mu = sp.train.x.mean(axis=(0, 2)), sp.train.x.std(axis=(0, 2))
    np.testing.assert_allclose(mu[0], 0.0, atol=1e-3)
    np.testing.assert_allclose(mu[1], 1.0, atol=1e-2)
    groups = [set(getattr(sp, n).group.tolist()) for n in kws.SPLIT_NAMES]
    assert not groups[0] & groups[2] and not groups[0] & groups[1]
    assert not set(sp.meta["voices"]["train"]) & set(sp.meta["voices"]["test"])
    # what the trace cache key reads of the data must not hold the build's duration
    assert "build_s" not in sp.meta["synth"] and sp.meta["synth"]


def test_speech_schedule_persistence_and_shares() -> None:
    n = 100_000
    s = kws.speech_schedule(n, 1.0, n_voices=7, seed=0)
    y, seg = s["y"], s["segment"]
    p = kws.STREAM_DEFAULTS
    runs = kws.mean_run_lengths(y)
    shuffled = kws.mean_run_lengths(np.random.default_rng(0).permutation(y))
    # segment lengths follow the parameters (geometric laws, 100k steps: within a few %)
    seg_runs = kws.mean_run_lengths(seg, len(kws.SEGMENTS))
    assert seg_runs[1] == pytest.approx(p["chatter_mean_s"], rel=0.1)
    assert runs[kws.UNKNOWN] == pytest.approx(p["chatter_mean_s"], rel=0.1)
    # background: a stretch of mean 20 s, plus the pauses inside bursts (shorter)
    assert 0.6 * p["background_mean_s"] < runs[kws.SILENCE] < p["background_mean_s"] * 1.1
    # a command is said ~repeat_mean times in a row (a little more: the next command of a
    # burst is the same keyword 1 time in 10)
    kw = runs[2:]
    assert np.all((kw > 0.95 * p["repeat_mean"]) & (kw < 1.25 * p["repeat_mean"]))
    # persistent, not i.i.d.: runs far longer than those of the same labels shuffled
    assert runs[kws.SILENCE] > 3 * shuffled[kws.SILENCE]
    assert runs[kws.UNKNOWN] > 4 * shuffled[kws.UNKNOWN]
    assert np.all(kw > 1.5 * shuffled[2:])
    share = np.bincount(np.minimum(y, 2), minlength=3) / n
    assert 0.6 < share[0] < 0.8 and 0.1 < share[1] < 0.25 and 0.08 < share[2] < 0.2
    # keywords only in command segments, unknown only in chatter, all keywords occur
    assert set(seg[y >= 2].tolist()) == {2} and set(seg[y == kws.UNKNOWN].tolist()) == {1}
    assert set(y[y >= 2].tolist()) == set(range(2, 12))
    # a burst is one voice; voices are valid indices; silence has none
    assert (s["voice"][y == kws.SILENCE] == -1).all()
    assert set(s["voice"][y != kws.SILENCE].tolist()) == set(range(7))
    lv = s["level_db"][y != kws.SILENCE]
    assert lv.max() <= 0 and -35 < lv.min() and (s["level_db"][y == kws.SILENCE] == 0).all()
    again = kws.speech_schedule(n, 1.0, n_voices=7, seed=0)
    for key in s:
        np.testing.assert_array_equal(s[key], again[key])
    assert not np.array_equal(kws.speech_schedule(n, 1.0, 7, seed=1)["y"], y)
    # the parameters act: longer background stretches, longer silence runs
    longer = kws.speech_schedule(n, 1.0, 7, seed=0, background_mean_s=60.0)
    assert kws.mean_run_lengths(longer["y"])[kws.SILENCE] > 2 * runs[kws.SILENCE]
    with pytest.raises(ValueError, match="stream"):
        kws.speech_schedule(10, 1.0, 1, seed=0, p_silence=0.3)
    with pytest.raises(ValueError, match="repeat_mean"):
        kws.speech_schedule(10, 1.0, 1, seed=0, repeat_mean=0.5)
    with pytest.raises(ValueError, match="pause_p"):
        kws.speech_schedule(10, 1.0, 1, seed=0, pause_p=1.5)


def test_mean_run_lengths() -> None:
    r = kws.mean_run_lengths(np.array([0, 0, 0, 1, 0, 2, 2, 0, 0]), 4)
    np.testing.assert_allclose(r[:3], [2.0, 1.0, 2.0])
    assert np.isnan(r[3])
    with pytest.raises(ValueError, match="y"):
        kws.mean_run_lengths(np.zeros((2, 2)))


def test_context_trace(quick_splits: Splits) -> None:
    kwargs = dict(minutes=4.0, dwell_minutes=(0.4, 0.8), seed=2, progress=False)
    tr = kws.context_trace(quick_splits, use_cache=False, **kwargs)
    assert isinstance(tr, Trace) and len(tr) == 240
    assert tr.pool_x.shape == (240, 1, 101, 40) and tr.pool_x.dtype == np.float32
    np.testing.assert_array_equal(tr.pool_index, np.arange(240))
    np.testing.assert_allclose(np.diff(tr.t), 1.0)
    assert tr.context_names == ("quiet", "office", "street")
    assert set(tr.context.tolist()) == {0, 1, 2}
    track = tr.meta["snr_track_db"]
    mean = [track[tr.context == c].mean() for c in range(3)]
    assert mean[0] > mean[1] > mean[2]
    assert (tr.y == kws.SILENCE).any() and (tr.y >= 2).any() and (tr.y == kws.UNKNOWN).any()
    # held-out voices only, words matching labels, a burst said by one voice
    test_voices = set(quick_splits.meta["voices"]["test"])
    spoken = tr.meta["speaker"][tr.y != kws.SILENCE]
    assert spoken.size and set(spoken) <= test_voices
    assert not set(spoken) & set(quick_splits.meta["voices"]["train"])
    kw = tr.y >= 2
    assert (tr.meta["word"][kw] == np.asarray(kws.LABELS)[tr.y[kw]]).all()
    assert set(tr.meta["word"][tr.y == kws.UNKNOWN]) <= set(kws.UNKNOWN_WORDS)
    assert np.isnan(tr.meta["snr_db"][~kw & (tr.y == kws.SILENCE)]).all()
    # labels persist: runs longer than those of the same labels in random order
    runs = kws.mean_run_lengths(tr.y)
    shuffled = kws.mean_run_lengths(np.random.default_rng(0).permutation(tr.y))
    assert runs[kws.SILENCE] > 2 * shuffled[kws.SILENCE] and runs[kws.SILENCE] > 5
    assert runs[kws.UNKNOWN] > 2 * shuffled[kws.UNKNOWN]
    assert tr.meta["stream"] == kws.STREAM_DEFAULTS and tr.meta["segments"] == kws.SEGMENTS
    assert tr.meta["segment"].shape == (240,)
    again = kws.context_trace(quick_splits, use_cache=False, **kwargs)
    np.testing.assert_array_equal(tr.pool_x, again.pool_x)
    np.testing.assert_array_equal(tr.context, again.context)
    np.testing.assert_array_equal(tr.y, again.y)
    np.testing.assert_array_equal(tr.meta["speaker"], again.meta["speaker"])
    other = kws.context_trace(quick_splits, use_cache=False, **{**kwargs, "seed": 3})
    assert not np.array_equal(other.y, tr.y)
    with pytest.raises(ValueError, match="stream"):
        kws.context_trace(quick_splits, stream={"p_silence": 0.3})
    with pytest.raises(ValueError, match="contexts"):
        kws.context_trace(quick_splits, contexts=("quiet", "jungle"))
    with pytest.raises(ValueError, match="minutes"):
        kws.context_trace(quick_splits, minutes=0)
