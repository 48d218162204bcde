"""Bad input fails early with an error that names the argument: the CLI's options, the
configuration-file reader, the controllers, ``control.simulate`` and the dataset loaders'
``root``. Property tests feed random malformed inputs and accept only ValueError /
FileNotFoundError (TypeError for a value of the wrong type) naming the argument, or, where
the input happens to be valid, a result that is consistent."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mobiprox_lab import cli, control, knobs, tuner

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("argv, option", [
    (["figures", "--seed", "-1"], "--seed"),
    (["figures", "--seed", "abc"], "--seed"),
    (["figures", "--out", __file__], "--out"),
    (["train", "--model", "mnist"], "--model"),
    (["train"], "--model"),
    (["tune", "--model", "har", "--trials", "0"], "--trials"),
    (["tune", "--model", "har", "--trials", "2.5"], "--trials"),
    (["tune", "--model", "har", "--tuner-threshold", "-3"], "--tuner-threshold"),
    (["tune", "--model", "har", "--keep-threshold", "nan"], "--keep-threshold"),
    (["profile", "--model", "kws", "--scheduler", "localhost"], "--scheduler"),
    (["profile", "--model", "kws", "--qos-model", "p3"], "--qos-model"),
    (["simulate", "--trace", "nope"], "--trace"),
    (["bogus"], "command"),
])
def test_cli_rejects_bad_options_by_name(argv, option, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert option in capsys.readouterr().err


def test_cli_ctrl_c_exits_130_with_a_resume_hint(monkeypatch, capsys):
    import mobiprox_lab.orchestration.figures as figures

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "make_figures", interrupted)
    assert cli.main(["figures", "--quick"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_cli_help_runs_as_a_console_script():
    out = subprocess.run([sys.executable, "-m", "mobiprox_lab.cli", "tune", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--scheduler" in out.stdout


# ------------------------------------------------------------------ configuration files
OPS = [("c1", "conv"), ("bn", "batchnorm"), ("fc", "linear")]
MODEL_OPS = pd.DataFrame({"name": ["c1", "bn", "fc"], "kind": ["conv", "batchnorm", "linear"],
                          "knobs": [[11, 12, 121, 122, 231], [11, 12], [11, 12]]})


def valid_list() -> tuner.ConfigFile:
    table = pd.DataFrame([
        {"name": "conf0", "config": {}, "speedup": 1.0, "energy": 1.0, "accuracy": 90.0,
         "qos_loss": 0.0, "conf_mean": 0.9, "conf_correct": 0.95, "conf_wrong": 0.6,
         "conf_correct_c0": 0.9, "conf_wrong_c0": 0.5},
        {"name": "conf1", "config": {"c1": 121, "bn": 12}, "speedup": 1.4, "energy": 0.8,
         "accuracy": 89.0, "qos_loss": 1.0, "conf_mean": 0.88, "conf_correct": 0.93,
         "conf_wrong": 0.55, "conf_correct_c0": 0.91, "conf_wrong_c0": float("nan")},
    ])
    return tuner.ConfigFile(table, OPS, 1.25)


def _expect_named_error(path: Path, call):
    """``call()`` must succeed or raise ValueError / FileNotFoundError naming ``path``."""
    try:
        return call()
    except (ValueError, FileNotFoundError) as exc:
        msg = str(exc)
        assert msg.startswith("path: ") and str(path) in msg, msg
        return None


_MUTATIONS = st.sampled_from(["drop", "duplicate", "token", "truncate", "insert", "knob",
                              "index", "separator"])


@SETTINGS
@given(mutations=st.lists(st.tuples(_MUTATIONS, st.integers(0, 10_000),
                                    st.text(min_size=0, max_size=12)), min_size=1, max_size=3))
def test_malformed_hpvm_text_is_rejected_by_name(tmp_path, mutations):
    path = tuner.write_configs(tmp_path / "c.txt", valid_list())
    lines = path.read_text().splitlines()
    for kind, pos, text in mutations:
        i = pos % len(lines) if lines else 0
        if not lines:
            break
        if kind == "drop":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "token":
            toks = lines[i].split(" ")
            toks[pos % len(toks)] = text
            lines[i] = " ".join(toks)
        elif kind == "truncate":
            lines[i] = lines[i][: pos % (len(lines[i]) + 1)]
        elif kind == "insert":
            lines.insert(i, text)
        elif kind == "knob":
            lines[i] = re.sub(r"^(\d+ cpu \S+ \S+) \d+", rf"\g<1> {pos}", lines[i])
        elif kind == "index":
            lines[i] = re.sub(r"^\d+ cpu", f"{pos} cpu", lines[i])
        elif kind == "separator":
            lines[i] = "+++++" if lines[i] == "-----" else "-----"
    path.write_text("\n".join(lines) + "\n")
    cf = _expect_named_error(path, lambda: tuner.read_configs(path))
    if cf is None:
        return
    # read without complaint: it must be a consistent list, and survive a round trip
    names = [n for n, _ in cf.ops]
    assert len(set(names)) == len(names)
    for cfg in cf.configs:
        assert set(cfg) <= set(names)
        assert all(k in knobs.KNOBS and k != knobs.EXACT for k in cfg.values())
    again = tuner.read_configs(tuner.write_configs(tmp_path / "again.txt", cf))
    assert again.configs == cf.configs and again.ops == cf.ops


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@SETTINGS
@given(doc=st.dictionaries(st.sampled_from(["format", "configs", "columns", "ops",
                                            "baseline_latency_ms", "meta"]), _JSON),
       raw=st.binary(max_size=64))
def test_malformed_json_csv_and_binary_files_are_rejected_by_name(tmp_path, doc, raw):
    if doc.get("format") is not None:
        doc["format"] = "mobiprox_lab/configs-v1"  # get past the format check sometimes
    j = tmp_path / "c.json"
    j.write_text(json.dumps(doc))
    _expect_named_error(j, lambda: tuner.read_configs(j))
    for suffix in (".txt", ".json", ".csv"):
        p = tmp_path / f"raw{suffix}"
        p.write_bytes(raw)
        cf = _expect_named_error(p, lambda p=p: tuner.read_configs(p))
        if cf is not None:  # e.g. an empty CSV is a list with no configurations
            assert all(isinstance(c, dict) for c in cf.configs)


@pytest.mark.parametrize("mutate, expected", [
    (lambda t: t.replace("121 c1", "999 c1").replace("perf_fp32 999", "fp32 999"),
     r"unknown knob id '999'"),
    (lambda t: t.replace("fc\n", "fc\n4 cpu relu fp32 11 fc\n", 1), "appears twice"),
    (lambda t: t.replace("2 cpu batchnorm", "3 cpu batchnorm", 1), "expected index 2"),
    (lambda t: t.replace("conf1 1.4", "conf1 fast", 1), "could not convert"),
    (lambda t: t.replace("-----\n", "", 1), "line 2: .*closing '-----'|expected"),
    (lambda t: "abc\n" + t.split("\n", 1)[1], "line 1: expected the exact latency"),
    (lambda t: t.replace("conf_mean=", "conf_avg=", 1), "unknown field 'conf_avg'"),
])
def test_hpvm_text_errors_say_what_and_where(tmp_path, mutate, expected):
    path = tuner.write_configs(tmp_path / "c.txt", valid_list())
    path.write_text(mutate(path.read_text()))
    with pytest.raises(ValueError, match=rf"^path: {re.escape(str(path))}.*({expected})"):
        tuner.read_configs(path)


def test_config_file_against_the_model(tmp_path):
    path = tuner.write_configs(tmp_path / "c.txt", valid_list())
    assert tuner.read_configs(path, model=MODEL_OPS).configs == valid_list().configs
    with pytest.raises(ValueError, match=r"knob 121 is not applicable to operator 'c1'"):
        tuner.read_configs(path, model=MODEL_OPS.assign(knobs=[[11, 12]] * 3))
    with pytest.raises(ValueError, match=r"operator 'bn' is not an operator of the model"):
        tuner.read_configs(path, model=MODEL_OPS[MODEL_OPS["name"] != "bn"])
    with pytest.raises(ValueError, match=r"operator 'fc' is a conv in the model, not a linear"):
        tuner.read_configs(path, model=MODEL_OPS.assign(kind=["conv", "batchnorm", "conv"]))
    with pytest.raises(ValueError, match="^model: expected an ApproxModel"):
        tuner.read_configs(path, model="resnet")
    with pytest.raises(FileNotFoundError, match="^path: no configuration file"):
        tuner.read_configs(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match=r"^path: expected a \.txt, \.json or \.csv"):
        tuner.read_configs(shutil.copy(path, tmp_path / "c.yaml"))


# ------------------------------------------------------------------------ controllers
_NUMBERS = st.one_of(st.integers(-5, 20), st.floats(allow_nan=True, allow_infinity=True),
                     st.none(), st.text(max_size=3), st.booleans())

_CONTROLLERS = {
    "StateController": (control.StateController, ("n_configs", "factor", "window",
                                                  "vote_limit")),
    "KalmanController": (control.KalmanController, ("n_configs", "factor", "x0", "p0", "r",
                                                    "q", "lower", "upper")),
    "StaticController": (control.StaticController, ("n_configs", "index", "factor")),
    "NaiveController": (control.NaiveController, ("n_configs", "factor")),
}


@SETTINGS
@given(which=st.sampled_from(sorted(_CONTROLLERS)), data=st.data())
def test_controller_parameters_are_checked_by_name(which, data):
    cls, names = _CONTROLLERS[which]
    kwargs = {n: data.draw(_NUMBERS, label=n) for n in names
              if n in ("n_configs", "index") or data.draw(st.booleans())}
    try:
        ctrl = cls(**kwargs)
    except (ValueError, TypeError) as exc:
        named = re.match(r"^(\w+):", str(exc))
        assert named and named.group(1) in names, str(exc)
        return
    assert 0 <= ctrl.index < ctrl.n_configs
    probs, _ = control.make_synthetic_probs(50, ctrl.n_configs, 3, seed=1)
    res = control.simulate(probs, ctrl, np.linspace(1.0, 0.5, ctrl.n_configs),
                           inference_share=0.5)
    assert res.index.min() >= 0 and res.index.max() < ctrl.n_configs


def test_confidence_controller_tables_and_fractions():
    good = np.full((3, 2), 0.8)
    with pytest.raises(ValueError, match="^conf_correct: expected 3 rows"):
        control.ConfidenceController(3, good[:2], good)
    with pytest.raises(ValueError, match="^conf_wrong: expected shape"):
        control.ConfidenceController(3, good, good[:, :1])
    with pytest.raises(ValueError, match="^conf_correct: expected confidences in"):
        control.ConfidenceController(3, good * 2, good)
    with pytest.raises(ValueError, match="^conf_wrong: expected a numeric array"):
        control.ConfidenceController(3, good, [["a", "b"]] * 3)
    with pytest.raises(ValueError, match="^lower_frac: expected <= upper_frac"):
        control.ConfidenceController(3, good, good * 0.5, lower_frac=0.9, upper_frac=0.2)
    with pytest.raises(ValueError, match="^lower: expected <= upper"):
        control.KalmanController(3, lower=0.9, upper=0.1)
    with pytest.raises(ValueError, match="^target_relative_energy: expected >="):
        control.BudgetController(control.StateController(3), [1.0, 0.8, 0.6], 0.1)
    with pytest.raises(ValueError, match="^name: expected one of"):
        control.make_controller("pid", 3)


# --------------------------------------------------------------------- control.simulate
DEFECTS = {
    "ndim": "probs_by_config", "nan": "probs_by_config", "sum": "probs_by_config",
    "negative": "probs_by_config", "int": "probs_by_config", "ragged": "probs_by_config",
    "empty": "probs_by_config", "energy_len": "energy_by_config",
    "energy_nan": "energy_by_config", "energy_zero": "energy_by_config",
    "energy_text": "energy_by_config", "labels_len": "labels", "labels_range": "labels",
    "labels_float": "labels", "controller": "controller", "baseline": "baseline",
    "share": "inference_share", "none": None,
}


@SETTINGS
@given(defect=st.sampled_from(sorted(DEFECTS)), n_configs=st.integers(1, 5),
       steps=st.integers(1, 40), n_classes=st.integers(2, 6), pos=st.integers(0, 10_000),
       value=st.floats(allow_nan=True, allow_infinity=True),
       ctrl=st.sampled_from(["state", "kalman", "naive", "none", "static"]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_simulate_names_the_bad_argument(defect, n_configs, steps, n_classes, pos, value,
                                         ctrl, dtype):
    probs, labels = control.make_synthetic_probs(steps, n_configs, n_classes, seed=pos,
                                                 dtype=dtype)
    energy = np.linspace(1.0, 0.4, n_configs)
    kwargs = {"inference_share": 0.5}
    c, t, k = pos % n_configs, pos % steps, pos % n_classes
    if defect == "ndim":
        probs = probs[0] if pos % 2 else probs[..., None]
    elif defect == "nan":
        probs[c, t, k] = np.nan if pos % 2 else np.inf
    elif defect == "sum":
        assume(math.isfinite(value) and abs(value) > 0.01)
        probs[c, t] = probs[c, t] * (1 + abs(value))
    elif defect == "negative":
        probs[c, t, k] = -abs(value) - 1e-3 if math.isfinite(value) else -0.5
    elif defect == "int":
        probs = (probs > 0.5).astype(np.int64)
    elif defect == "ragged":
        probs = [[list(r) for r in probs[0]], [[0.5, 0.25, 0.25]] * (steps + 1)]
    elif defect == "empty":
        probs = probs[:, :0]
    elif defect == "energy_len":
        energy = np.append(energy, 0.3) if pos % 2 else energy[:-1]
    elif defect == "energy_nan":
        energy[c] = np.nan
    elif defect == "energy_zero":
        energy[c] = 0.0 if pos % 2 else -1.0
    elif defect == "energy_text":
        energy = ["cheap"] * n_configs
    elif defect == "labels_len":
        labels = labels[:-1] if pos % 2 else np.append(labels, 0)
    elif defect == "labels_range":
        labels[t] = n_classes if pos % 2 else -1
    elif defect == "labels_float":
        labels = labels.astype(float)
    elif defect == "baseline":
        kwargs["baseline"] = n_configs if pos % 2 else -1
    elif defect == "share":
        assume(not 0 <= value <= 1)
        kwargs["inference_share"] = value
    n = n_configs + 1 if defect == "controller" else n_configs
    controller = control.make_controller(ctrl, n, **({"index": n - 1} if ctrl == "static"
                                                     else {}))
    expected = DEFECTS[defect]
    if expected is None:
        res = control.simulate(probs, controller, energy, labels, **kwargs)
        assert len(res.index) == steps and res.index.max() < n_configs
        assert np.array_equal(res.pred, probs[res.index, np.arange(steps)].argmax(axis=1))
        return
    with pytest.raises(ValueError) as exc:
        control.simulate(probs, controller, energy, labels, **kwargs)
    assert str(exc.value).startswith(f"{expected}:"), str(exc.value)


# ------------------------------------------------------------------- dataset loaders
def _har_layout(root: Path, split: str, n: int = 3) -> None:
    from mobiprox_lab.datasets import har

    sig = root / split / "Inertial Signals"
    sig.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in har.CHANNELS:
        np.savetxt(sig / f"{name}_{split}.txt", rng.normal(size=(n, har.WINDOW)))
    np.savetxt(root / split / f"y_{split}.txt", np.arange(1, n + 1), fmt="%d")
    np.savetxt(root / split / f"subject_{split}.txt", np.ones(n), fmt="%d")


_FILE_DAMAGE = st.sampled_from(["delete", "empty", "truncate", "garbage", "extra_column",
                                "binary"])


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(damage=st.lists(st.tuples(st.integers(0, 100), _FILE_DAMAGE), min_size=1, max_size=3),
       blob=st.binary(min_size=1, max_size=40))
def test_har_loader_root_damage_is_named(tmp_path_factory, damage, blob):
    from mobiprox_lab.datasets import har

    root = tmp_path_factory.mktemp("uci")
    _har_layout(root, "train")
    files = sorted(p for p in root.rglob("*.txt"))
    for pos, how in damage:
        f = files[pos % len(files)]
        if not f.exists():
            continue
        if how == "delete":
            f.unlink()
        elif how == "empty":
            f.write_text("")
        elif how == "truncate":
            f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
        elif how == "garbage":
            f.write_text("x y z\n")
        elif how == "extra_column":  # bytes: an earlier damage may have left binary
            f.write_bytes(f.read_bytes().replace(b"\n", b" 1\n", 1))
        else:
            f.write_bytes(blob)
    try:
        ds = har.load_uci_har(root, "train")
    except (ValueError, FileNotFoundError) as exc:
        msg = str(exc)
        # names the argument, then the file under it that is wrong
        assert msg.startswith("root: "), msg
        return
    assert ds.x.shape[1:] == (9, 128) and len(ds.y) == len(ds.x)  # damage was harmless


def test_loaders_name_a_missing_or_empty_root(tmp_path):
    from mobiprox_lab.datasets import har, kws

    with pytest.raises(FileNotFoundError, match="^root: .*no such folder"):
        har.load_uci_har(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="^root: .*is empty"):
        kws.load_speech_commands(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="^root: .*does not exist"):
        kws.load_speech_commands(tmp_path / "nope")
    with pytest.raises(ValueError, match="^root: expected the path"):
        kws.load_speech_commands("")
    with pytest.raises(ValueError, match="^split: "):
        har.load_uci_har(tmp_path, split="dev")


_KWS_DAMAGE = st.sampled_from(["no_lists", "no_val_list", "nested", "flat", "bad_wav",
                               "truncated_wav", "stereo", "rate", "list_elsewhere", "none"])


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(damage=_KWS_DAMAGE, blob=st.binary(max_size=50), split=st.sampled_from(
    ["train", "validation", "test"]))
def test_kws_loader_root_damage_is_named(tmp_path_factory, damage, blob, split):
    from scipy.io import wavfile

    from mobiprox_lab.datasets import kws

    base = tmp_path_factory.mktemp("sc")
    root = base / "speech_commands" if damage == "nested" else base
    for word in ("yes", "no"):
        (root / word).mkdir(parents=True)
        for i in range(2):
            wavfile.write(root / word / f"s{i}_nohash_0.wav", 16000,
                          np.zeros(16000, np.int16))
    (root / "_background_noise_").mkdir()
    wavfile.write(root / "_background_noise_" / "white.wav", 16000,
                  (np.random.default_rng(0).normal(size=48000) * 1000).astype(np.int16))
    (root / "validation_list.txt").write_text("yes/s0_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/s0_nohash_0.wav\n")
    target = root / "yes" / "s1_nohash_0.wav"
    if damage == "no_lists":
        (root / "testing_list.txt").unlink()
    elif damage == "no_val_list":
        (root / "validation_list.txt").unlink()
    elif damage == "flat":
        for word in ("yes", "no"):
            for f in (root / word).iterdir():
                f.rename(root / f"{word}_{f.name}")
            (root / word).rmdir()
    elif damage == "bad_wav":
        target.write_bytes(blob)
    elif damage == "truncated_wav":
        target.write_bytes(target.read_bytes()[:30])
    elif damage == "stereo":
        wavfile.write(target, 16000, np.zeros((16000, 2), np.int16))
    elif damage == "rate":
        wavfile.write(target, 8000, np.zeros(8000, np.int16))
    elif damage == "list_elsewhere":
        (root / "testing_list.txt").write_text("cat/x_nohash_0.wav\n")
    must_fail = {"no_lists", "no_val_list", "nested", "flat"}
    if split == "test":
        must_fail.add("list_elsewhere")
    if split == "train":  # the damaged clip is a training clip
        must_fail |= {"bad_wav", "truncated_wav", "stereo", "rate"}
    try:
        ds = kws.load_speech_commands(base, split, progress=False)
    except (ValueError, FileNotFoundError) as exc:
        assert str(exc).startswith("root:"), str(exc)
        return
    assert damage not in must_fail, f"{damage} on {split} loaded without an error"
    assert ds.audio.shape[1:] == (16000,) and len(ds.y) == len(ds.audio)
