"""Configuration files: HPVM's text format (with Mobiprox's confidence fields), JSON and CSV.

Text format (``.txt``), after HPVM / ApproxTuner's configuration files::

    0.8123                                   <- exact latency per inference, ms ("nan": unknown)
    +++++
    conf0 1.0 1.0 91.25 0.0 conf_mean=0.93 ... conf_wrong_class=0.6,nan   <- header (below)
    1 cpu conv fp32 11 features.0.conv
    2 cpu batchnorm fp16 12 features.0.bn
    ...
    -----
    +++++
    conf1 1.31 0.78 90.9 0.35 ...
    1 cpu conv perf_fp32 121 features.0.conv
    ...
    -----

- Header: ``confK speedup energy accuracy qos_loss`` (HPVM's five fields: speedup, relative
  energy (exact = 1.0, lower is better), accuracy in %, QoS loss in pp), then the
  authors' confidence fields as ``key=value`` tokens: ``conf_mean``, ``conf_correct``,
  ``conf_wrong`` (mean softmax at the predicted class overall / on correct / on wrong
  predictions) and per predicted class ``conf_correct_class`` / ``conf_wrong_class``
  (comma-separated, class order). A reader of plain HPVM files can stop after field 5.
- One line per operator, in execution order: ``<index from 1> cpu <op kind> <knob name>
  <knob id> <op name>``; knob names are HPVM's: ``fp32`` / ``fp16`` (11 / 12), ``perf_fp32`` /
  ``perf_fp16`` (perforation), ``samp_fp32`` / ``samp_fp16`` (filter sampling).
- Floats are written with ``repr`` so that a round trip is exact.

JSON (``.json``) holds everything: the ops (name, kind), the exact latency and every
column of the table. CSV (``.csv``) holds the table only (``config`` as JSON text).

In memory a configuration list is a :class:`ConfigFile`: ``table`` (one row per
configuration: ``name``, ``config`` = dict of its non-exact knobs, the header columns and
``conf_correct_c{k}`` / ``conf_wrong_c{k}`` per class, any other columns) and ``ops``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cache, knobs

__all__ = ["ConfigFile", "check_against_model", "knob_name", "read_configs",
           "write_configs"]

HEADER = ("speedup", "energy", "accuracy", "qos_loss")
CONF = ("conf_mean", "conf_correct", "conf_wrong")
CLASS_LISTS = ("conf_correct", "conf_wrong")  # per class: columns conf_correct_c{k}
FORMAT = "mobiprox_lab/configs-v1"


def knob_name(knob_id: int) -> str:
    """HPVM's name of a knob: fp32, fp16, perf_fp32, perf_fp16, samp_fp32 or samp_fp16."""
    k = knobs.get(knob_id)
    if k.technique == "exact":
        return k.precision
    return ("perf_" if k.technique == "perforation" else "samp_") + k.precision


@dataclass
class ConfigFile:
    """A configuration list: ``table`` (see module doc), ``ops`` [(name, kind), ...] in
    execution order, ``baseline_latency_ms`` (exact latency per inference, NaN if unknown)."""

    table: pd.DataFrame
    ops: list[tuple[str, str]]
    baseline_latency_ms: float = math.nan
    meta: dict = field(default_factory=dict)

    @property
    def configs(self) -> list[dict[str, int]]:
        """The configurations (non-exact knobs only), in table order."""
        return [dict(c) for c in self.table["config"]]

    def n_classes(self) -> int:
        k = 0
        while f"conf_correct_c{k}" in self.table:
            k += 1
        return k


def _fmt(v) -> str:
    v = float(v)
    return "nan" if math.isnan(v) else repr(v)


def _check(cf: ConfigFile, *, ops: bool = True) -> None:
    if not isinstance(cf.table, pd.DataFrame) or "config" not in cf.table or \
            "name" not in cf.table:
        raise ValueError("table: expected a DataFrame with 'name' and 'config' columns")
    names = [n for n, _ in cf.ops]
    known = set(names)
    for i, cfg in enumerate(cf.table["config"]):
        if not isinstance(cfg, Mapping):
            raise ValueError(f"table.config[{i}]: expected a mapping op name -> knob id")
        for op, k in cfg.items():
            if ops and op not in known:
                raise ValueError(f"table.config[{i}]: operator {op!r} is not in ops")
            knobs.get(k)
    for n in cf.table["name"]:
        if not re.fullmatch(r"\S+", str(n)):
            raise ValueError(f"table.name: expected names without spaces, got {n!r}")
    for n, kind in cf.ops:
        if not re.fullmatch(r"\S+", n) or not re.fullmatch(r"\S+", kind):
            raise ValueError(f"ops: expected names and kinds without spaces, got ({n!r}, {kind!r})")


def _write_text(path: Path, cf: ConfigFile) -> None:
    n_classes = cf.n_classes()
    lines = [_fmt(cf.baseline_latency_ms)]
    for _, row in cf.table.iterrows():
        head = [str(row["name"])] + [_fmt(row.get(c, math.nan)) for c in HEADER]
        head += [f"{c}={_fmt(row.get(c, math.nan))}" for c in CONF]
        for c in CLASS_LISTS:
            vals = [_fmt(row[f"{c}_c{k}"]) for k in range(n_classes)]
            head.append(f"{c}_class=" + ",".join(vals))
        lines += ["+++++", " ".join(head)]
        cfg = row["config"]
        for i, (op, kind) in enumerate(cf.ops, 1):
            k = int(cfg.get(op, knobs.EXACT))
            lines.append(f"{i} cpu {kind} {knob_name(k)} {k} {op}")
        lines.append("-----")
    with cache.atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _read_text(path: Path) -> ConfigFile:
    try:
        text = path.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"path: {path} is not a text file ({exc})") from None
    if not text:
        raise ValueError(f"path: {path} is empty; expected an HPVM configuration file")
    try:
        baseline = float(text[0])
    except ValueError:
        raise ValueError(f"path: {path} line 1: expected the exact latency (ms), "
                         f"got {text[0]!r}") from None
    rows: list[dict] = []
    ops: list[tuple[str, str]] | None = None
    i = 1
    while i < len(text):
        line = text[i].strip()
        if not line:
            i += 1
            continue
        if line != "+++++":
            raise ValueError(f"path: {path} line {i + 1}: expected '+++++', got {line!r}")
        end = i + 1
        while end < len(text) and text[end].strip() != "-----":
            end += 1
        if end >= len(text):
            raise ValueError(f"path: {path} line {i + 1}: block without its closing '-----'")
        row, block_ops = _parse_block(path, text, i + 1, end)
        if ops is None:
            ops = block_ops
        elif block_ops != ops:
            raise ValueError(f"path: {path} line {i + 2}: the operators differ from the first "
                             "configuration's")
        rows.append(row)
        i = end + 1
    return ConfigFile(pd.DataFrame(rows), ops or [], baseline)


def _parse_block(path: Path, text: list[str], start: int, end: int):
    head = text[start].split()
    where = f"path: {path} line {start + 1}"
    if len(head) < 5:
        raise ValueError(f"{where}: expected 'confK speedup energy accuracy qos_loss ...', "
                         f"got {text[start]!r}")
    row: dict = {"name": head[0]}
    try:
        row.update({c: float(v) for c, v in zip(HEADER, head[1:5], strict=True)})
        for tok in head[5:]:
            key, _, value = tok.partition("=")
            if key in CONF:
                row[key] = float(value)
            elif key.endswith("_class") and key[:-6] in CLASS_LISTS:
                for k, v in enumerate(value.split(",") if value else []):
                    row[f"{key[:-6]}_c{k}"] = float(v)
            else:
                raise ValueError(f"unknown field {key!r}")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    ops, cfg = [], {}
    for n in range(start + 1, end):
        parts = text[n].split()
        if len(parts) != 6 or parts[1] != "cpu":
            raise ValueError(f"path: {path} line {n + 1}: expected '<index> cpu <kind> "
                             f"<knob name> <knob id> <op name>', got {text[n]!r}")
        idx, _, kind, kname, kid, op = parts
        if idx != str(len(ops) + 1):
            raise ValueError(f"path: {path} line {n + 1}: expected index {len(ops) + 1}, "
                             f"got {idx!r}")
        if not re.fullmatch(r"\d+", kid) or int(kid) not in knobs.KNOBS:
            raise ValueError(f"path: {path} line {n + 1}: unknown knob id {kid!r}; valid ids "
                             f"are {knobs.VALID_RANGES}")
        k = int(kid)
        if knob_name(k) != kname:
            raise ValueError(f"path: {path} line {n + 1}: knob {k} is named "
                             f"{knob_name(k)!r}, not {kname!r}")
        if op in cfg or any(op == name for name, _ in ops):
            raise ValueError(f"path: {path} line {n + 1}: operator {op!r} appears twice")
        ops.append((op, kind))
        if k != knobs.EXACT:
            cfg[op] = k
    row["config"] = cfg
    return row, ops


def _jsonable(v):
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, Path):
        return str(v)
    return v


def write_configs(path: str | Path, table: pd.DataFrame | ConfigFile,
                  ops: Sequence[tuple[str, str]] | pd.DataFrame | None = None, *,
                  baseline_latency_ms: float = math.nan) -> Path:
    """Write a configuration list to ``path``: ``.txt`` (HPVM text), ``.json`` or ``.csv``.

    table : a :class:`ConfigFile`, or a table (``name``, ``config``, header columns...) with
        ``ops`` = [(op name, op kind), ...] or an ``ApproxModel.ops`` frame (name, kind).
    """
    path = Path(path)
    if isinstance(table, ConfigFile):
        cf = table
    else:
        if ops is None:
            raise ValueError("ops: required with a table (the model's operators, name and kind)")
        if isinstance(ops, pd.DataFrame):
            ops = list(zip(ops["name"], ops["kind"], strict=True))
        cf = ConfigFile(table, [(str(n), str(k)) for n, k in ops], float(baseline_latency_ms))
    _check(cf)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        _write_text(path, cf)
    elif suffix == ".json":
        doc = {"format": FORMAT, "baseline_latency_ms": cf.baseline_latency_ms,
               "ops": [list(o) for o in cf.ops], "meta": _jsonable(cf.meta),
               "columns": list(cf.table.columns),
               "configs": [_jsonable(r) for r in cf.table.to_dict(orient="records")]}
        with cache.atomic_path(path) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))
    elif suffix == ".csv":
        flat = cf.table.copy()
        for col in flat.columns:
            if flat[col].map(lambda v: isinstance(v, (Mapping, list, tuple))).any():
                flat[col] = [json.dumps(_jsonable(v)) for v in flat[col]]
        cache.save_frame(path, flat)
    else:
        raise ValueError(f"path: expected a .txt, .json or .csv file name, got {path.name!r}")
    return path


def read_configs(path: str | Path, model=None) -> ConfigFile:
    """Read a configuration list written by :func:`write_configs` (by suffix). CSV files
    carry no ops (``ops`` is empty).

    model : optional ``ApproxModel`` (or its ``ops`` frame: name, kind, knobs) the list is
        meant for; then every operator must be one of the model's, of the same kind, and
        every knob applicable to its operator.
    Raises FileNotFoundError for a missing file and ValueError naming ``path`` (and the
    line, for text files) for anything malformed: unknown knob ids, unknown or repeated
    operators, bad numbers, a wrong layout.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no configuration file at {path}")
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".json", ".csv"):
        raise ValueError(f"path: expected a .txt, .json or .csv file name, got {path.name!r}")
    if suffix == ".txt":
        cf = _read_text(path)
    else:
        try:
            cf = _read_json(path) if suffix == ".json" else _read_csv(path)
        except (KeyError, TypeError, ValueError, AttributeError,
                pd.errors.InvalidIndexError) as exc:
            what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"path: {path} is not a valid {suffix[1:]} configuration list "
                             f"({what})") from None
    try:
        _check(cf, ops=suffix != ".csv")  # a CSV file carries no ops
    except ValueError as exc:
        raise ValueError(f"path: {path}: {exc}") from None
    if model is not None:
        check_against_model(cf, model, where=f"path: {path}")
    return cf


def _read_json(path: Path) -> ConfigFile:
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} file")
    columns, configs, ops = doc["columns"], doc["configs"], doc["ops"]
    if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)
            and {"name", "config"} <= set(columns)):
        raise ValueError(f"'columns': expected a list of names with 'name' and 'config', got "
                         f"{columns!r}")
    if not (isinstance(configs, list) and all(isinstance(c, dict) for c in configs)):
        raise ValueError("'configs': expected a list of objects, one per configuration")
    if not (isinstance(ops, list) and all(isinstance(o, list) and len(o) == 2
                                          and all(isinstance(v, str) for v in o) for o in ops)):
        raise ValueError("'ops': expected a list of [name, kind] pairs")
    table = pd.DataFrame(configs, columns=columns)
    table["config"] = [_int_config(c) for c in table["config"]]
    return ConfigFile(table, [(str(n), str(k)) for n, k in doc["ops"]],
                      float(doc["baseline_latency_ms"]), dict(doc.get("meta", {})))


def _read_csv(path: Path) -> ConfigFile:
    table = pd.read_csv(path)
    table["config"] = [_int_config(json.loads(c)) for c in table["config"]]
    return ConfigFile(table, [])


def _int_config(c) -> dict[str, int]:
    if not isinstance(c, Mapping):
        raise ValueError(f"expected each config as a mapping op name -> knob id, got {c!r}")
    out = {}
    for op, k in c.items():
        if isinstance(k, bool) or not isinstance(k, (int, str)) or \
                not re.fullmatch(r"\d+", str(k)):
            raise ValueError(f"config {c!r}: expected integer knob ids, got {k!r}")
        out[str(op)] = int(k)
    return out


def check_against_model(cf: ConfigFile, model, *, where: str = "configs") -> None:
    """Raise ValueError (prefixed by ``where``) unless every operator of ``cf`` is an
    operator of ``model`` (an ``ApproxModel`` or its ``ops`` frame) of the same kind and
    every knob of every configuration is applicable to its operator."""
    ops = getattr(model, "ops", model)
    if not isinstance(ops, pd.DataFrame) or not {"name", "kind", "knobs"} <= set(ops.columns):
        raise ValueError(f"model: expected an ApproxModel or its ops frame (name, kind, "
                         f"knobs), got {type(model).__name__}")
    kinds = dict(zip(ops["name"], ops["kind"], strict=True))
    allowed = {n: set(int(k) for k in ks) for n, ks in zip(ops["name"], ops["knobs"],
                                                            strict=True)}
    for name, kind in cf.ops:
        if name not in kinds:
            raise ValueError(f"{where}: operator {name!r} is not an operator of the model")
        if kind != kinds[name]:
            raise ValueError(f"{where}: operator {name!r} is a {kinds[name]} in the model, "
                             f"not a {kind}")
    for i, cfg in enumerate(cf.configs):
        for op, k in cfg.items():
            if op not in kinds:
                raise ValueError(f"{where}: configuration {i}: operator {op!r} is not an "
                                 f"operator of the model")
            if k not in allowed[op]:
                raise ValueError(f"{where}: configuration {i}: knob {k} is not applicable to "
                                 f"operator {op!r} ({kinds[op]}; applicable: "
                                 f"{sorted(allowed[op])})")
