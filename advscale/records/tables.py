"""Tables in: results tables → records (``records import``); the way out is :mod:`.rows`.

**In.** :func:`import_table` reads a CSV, TSV, Parquet or JSON-lines table through pandas
(imported here, lazily: ``records`` is a torch-free layer) and turns each row into records of
the existing kinds, validated against their schemas: ``train.eval`` (the run's evaluation),
``attack`` (AutoAttack accuracy) and ``energy`` (cost, energy, CO2). A *map* (TOML; the format is
in docs/formats.md, "Table maps") says which column gives which field, in which unit, and what
is derived or inferred; :data:`BUILTIN_MAPS` are the two released tables (Debenedetti et al.'s
``results.csv``, Bartoldson et al.'s ``AT_scaling_law_data.csv``). Unit checks refuse ambiguous
columns (percent vs fraction, FLOPs units) with one line naming the column and the fix. Every
record carries its row (``provenance.config``) and an ``imported`` block: the fields derived
(with how) and those the table does not have (null, listed in ``imported.unknown``).

Maps are discovered from their folder (``advscale/records/maps/*.toml``): a new built-in map is
one file. The other direction, records → one row per run, is :mod:`advscale.records.rows`.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any

from advscale.core.fileio import file_sha256
from advscale.errors import AdvscaleError
from advscale.records import make_record, provenance
from advscale.records.schemas import SCHEMAS, field_of

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the tomli backport (a dependency there)
    import tomli as tomllib  # type: ignore[no-redef]


def builtin_maps() -> tuple[str, ...]:
    """The maps shipped with advscale: every ``advscale/records/maps/<name>.toml``, sorted."""
    folder = resources.files("advscale.records") / "maps"
    return tuple(sorted(p.name.removesuffix(".toml") for p in folder.iterdir()
                        if p.name.endswith(".toml")))


BUILTIN_MAPS = builtin_maps()
"""Maps shipped with advscale, discovered from ``advscale/records/maps/`` at import."""

SECTIONS = {"train_eval": "train.eval", "attack": "attack", "energy": "energy"}
"""Map sections and the record kind each emits."""

UNITS: dict[str, float] = {
    "count": 1.0, "thousands": 1e3, "millions": 1e6, "billions": 1e9,
    "FLOPs": 1.0, "kFLOPs": 1e3, "MFLOPs": 1e6, "GFLOPs": 1e9, "TFLOPs": 1e12,
    "PFLOPs": 1e15, "EFLOPs": 1e18,
    "fraction": 1.0, "percent": 0.01,
    "USD": 1.0, "kg": 1.0, "g": 1e-3, "t": 1e3,
    "kWh": 1.0, "Wh": 1e-3, "MWh": 1e3, "J": 1 / 3.6e6,
    "s": 1.0, "min": 60.0, "h": 3600.0,
}
"""Source units a map may declare, as factors to the record's unit (FLOPs, fraction, kWh...)."""

SPEC_KEYS = {"column", "value", "template", "unit", "times", "scale", "map", "match",
             "default", "note"}
MAP_KEYS = {"name", "description", "source", "run_id", *SECTIONS}
MIN_PLAIN_FLOPS = 1e9
"""Training FLOPs whose median is below this are refused as a unit mistake (TFLOPs? per epoch?)."""

Row = dict[str, Any]


@dataclass
class TableMap:
    """A parsed map: how the columns of one table layout become record fields."""

    name: str
    origin: str
    run_id: str
    sections: dict[str, dict[str, Any]]
    description: str = ""
    source: str = ""
    sha256: str = ""
    data: list[dict[str, Any]] = field(default_factory=list)

    def columns(self) -> set[str]:
        """Every column the map reads."""
        specs = [s for sec in self.sections.values() for s in sec.values()]
        specs += [s for entry in self.data for s in entry.values()]
        cols = {s["column"] for s in specs if isinstance(s, dict) and "column" in s}
        cols |= {c for s in specs if isinstance(s, dict) for c in _listed(s.get("times"))}
        cols |= {c for sec in self.sections.values() if isinstance(sec.get("when"), str)
                 for c in [sec["when"]]}
        cols |= set(re.findall(r"{(\w+)}", self.run_id)) - {"_row"}
        return cols


# -- maps ---------------------------------------------------------------------------------------
def load_map(spec: str | os.PathLike[str] | Mapping[str, Any]) -> TableMap:
    """A map by built-in name, TOML path, or as an already-parsed mapping."""
    if isinstance(spec, Mapping):
        return parse_map(dict(spec), "<mapping>")
    text = str(spec)
    if text in BUILTIN_MAPS:
        with resources.as_file(resources.files("advscale.records") / "maps"
                               / f"{text}.toml") as path:
            return _load_map_file(path, f"builtin:{text}")
    if Path(text).is_file():
        return _load_map_file(Path(text), text)
    raise AdvscaleError(f"map {text!r}: not a built-in map ({', '.join(BUILTIN_MAPS)}) "
                        "nor a MAP.toml file", field="map")


def _load_map_file(path: Path, origin: str) -> TableMap:
    """Parse the map file at ``path``; its SHA-256 (:func:`file_sha256`) goes in provenance."""
    raw = path.read_bytes()
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AdvscaleError(f"map {origin}: not valid TOML ({e})") from None
    m = parse_map(doc, origin)
    m.sha256 = file_sha256(path)
    return m


def parse_map(doc: dict[str, Any], origin: str) -> TableMap:
    """Check a map document (keys, spec keys, units) and return it as a :class:`TableMap`."""
    bad = set(doc) - MAP_KEYS
    if bad:
        raise AdvscaleError(f"map {origin}: unknown top-level key(s) {sorted(bad)} (known: "
                            f"{', '.join(sorted(MAP_KEYS))})")
    if not isinstance(doc.get("run_id"), str) or not doc["run_id"]:
        raise AdvscaleError(f"map {origin}: needs run_id = \"{{column}}...\" (a column name in "
                            "braces, or a template of several)")
    if "train_eval" not in doc:
        raise AdvscaleError(f"map {origin}: needs a [train_eval] section (the runs)")
    sections: dict[str, dict[str, Any]] = {}
    data: list[dict[str, Any]] = []
    for sec in SECTIONS:
        if sec not in doc:
            continue
        body = dict(doc[sec])
        if sec == "train_eval":
            data = [dict(e) for e in body.pop("data", [])]
        for name, spec in [*body.items(), *((k, v) for e in data for k, v in e.items())]:
            _check_spec(origin, sec, name, spec)
        sections[sec] = body
    return TableMap(str(doc.get("name") or Path(origin).stem), origin, doc["run_id"], sections,
                    str(doc.get("description", "")), str(doc.get("source", "")), data=data)


def _check_spec(origin: str, sec: str, name: str, spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    where = f"map {origin}: [{sec}] {name}"
    bad = set(spec) - SPEC_KEYS
    if bad:
        raise AdvscaleError(f"{where}: unknown key(s) {sorted(bad)} (known: "
                            f"{', '.join(sorted(SPEC_KEYS))})")
    if not {"column", "value", "template"} & set(spec):
        raise AdvscaleError(f"{where}: give column = ..., value = ... or template = ...")
    unit = spec.get("unit")
    if unit is not None and unit not in UNITS:
        raise AdvscaleError(f"{where}: unknown unit {unit!r} (known: {', '.join(UNITS)})")


def _listed(v: Any) -> list[str]:
    return [] if v is None else [v] if isinstance(v, str) else list(v)


# -- reading tables -----------------------------------------------------------------------------
def read_table(path: str | os.PathLike[str], stdin: IO[str] | None = None) -> list[Row]:
    """The rows of a CSV, TSV, Parquet or JSON-lines table (by extension; ``-`` = CSV on stdin).

    Values are plain Python (NaN and empty cells are None).
    """
    import pandas as pd

    text = str(path)
    ext = Path(text).suffix.lower()
    try:
        if text == "-":
            df = pd.read_csv(stdin if stdin is not None else sys.stdin)
        elif not Path(text).is_file():
            raise AdvscaleError(f"{text}: no such table file")
        elif ext in (".parquet", ".pq"):
            df = _read_parquet(pd, text)
        elif ext in (".jsonl", ".ndjson", ".json"):
            df = pd.read_json(text, lines=ext != ".json")
        else:
            df = pd.read_csv(text, sep="\t" if ext in (".tsv", ".tab") else ",")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise AdvscaleError(f"{text}: not a readable table ({' '.join(str(e).split())})") from None
    return [{str(k): _plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def _read_parquet(pd: Any, path: str) -> Any:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise AdvscaleError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or "
                            "convert the table to CSV") from None
    return pd.read_parquet(path)


def _plain(v: Any) -> Any:
    item = getattr(v, "item", None)
    if callable(item) and not isinstance(v, str):
        v = item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is not None and type(v).__name__ in ("NAType", "NaTType"):
        return None
    return v


# -- rows → records -----------------------------------------------------------------------------
def import_table(
    path: str | os.PathLike[str],
    table_map: str | os.PathLike[str] | Mapping[str, Any] | TableMap = "timm-adv-training",
    rows: Sequence[Row] | None = None,
    command: str | None = None,
) -> list[dict[str, Any]]:
    """The records of every row of the table at ``path`` under ``table_map``, in row order.

    Each row gives a ``train.eval`` record, an ``attack`` record where the map's ``[attack]``
    section applies (its ``when`` column is not null), and likewise an ``energy`` record. Every
    record is validated against its kind's schema. ``rows`` skips reading ``path`` (tests).
    """
    m = table_map if isinstance(table_map, TableMap) else load_map(table_map)
    table_rows = list(rows) if rows is not None else read_table(path)
    if not table_rows:
        raise AdvscaleError(f"{path}: the table has no rows")
    _check_columns(m, table_rows[0].keys(), path)
    sha = file_sha256(path) if rows is None and str(path) != "-" else None
    columns = {sec: {name: _column_values(m, SECTIONS[sec], name, spec, table_rows)
                     for name, spec in body.items() if name != "when"}
               for sec, body in m.sections.items()}
    data_cols = [{name: _column_values(m, "train.eval", f"data.{name}", spec, table_rows)
                  for name, spec in entry.items() if name != "when"} for entry in m.data]
    out: list[dict[str, Any]] = []
    for i, row in enumerate(table_rows):
        prov = provenance(command, {"table": str(path), "table_sha256": sha, "row": i,
                                    "map": m.name, "map_origin": m.origin,
                                    "map_sha256": m.sha256 or None})
        run_id = _template(m.run_id, row, i, m)
        ev = _payload(m, "train_eval", columns, i, {"run_id": run_id})
        ev["data"] = [{**_data_defaults(), **{k: v[i] for k, v in cols.items()}}
                      for entry, cols in zip(m.data, data_cols, strict=True)
                      if _applies(entry.get("when"), row)]
        out.append(_record("train.eval", ev, prov, i))
        link = {k: ev.get(k) for k in ("run_id", "model", "params", "samples_seen", "eps")}
        for sec in ("attack", "energy"):
            if sec in m.sections and _applies(m.sections[sec].get("when"), row):
                base = link if sec == "attack" else {"run_id": run_id}
                out.append(_record(SECTIONS[sec], _payload(m, sec, columns, i, base), prov, i))
    return out


def _data_defaults() -> dict[str, Any]:
    return {"path": None, "source": None, "weight": None, "n": None, "fid": None}


def _check_columns(m: TableMap, have: Iterable[str], path: Any) -> None:
    have = set(have)
    missing = sorted(m.columns() - have)
    if missing:
        raise AdvscaleError(f"{path}: column(s) {', '.join(map(repr, missing))} that map "
                            f"{m.name!r} reads are not in the table (it has: "
                            f"{', '.join(sorted(have))})")


def _applies(when: Any, row: Row) -> bool:
    """A section or data entry applies unless its ``when`` column is null or false."""
    if when is None:
        return True
    v = row.get(str(when))
    return v is not None and v is not False and str(v).lower() not in ("false", "")


def _template(text: str, row: Row, i: int, m: TableMap) -> str:
    values = {k: ("" if v is None else v) for k, v in row.items()}
    try:
        return text.format(**values, _row=i)
    except (KeyError, IndexError, ValueError) as e:
        raise AdvscaleError(f"map {m.name}: template {text!r} cannot be filled ({e})") from None


def _payload(m: TableMap, sec: str, columns: dict[str, dict[str, list[Any]]], i: int,
             base: dict[str, Any]) -> dict[str, Any]:
    """One record's fields: ``base``, the section's values at row ``i``, nulls for the rest."""
    kind = SECTIONS[sec]
    payload = dict(base)
    derived: dict[str, str] = {}
    for name, values in columns.get(sec, {}).items():
        payload[name] = values[i]
        spec = m.sections[sec][name]
        if isinstance(spec, dict) and spec.get("note"):
            derived[name] = str(spec["note"])
    unknown = [f.name for f in SCHEMAS[kind].fields if f.required and (
        f.name not in payload or (payload[f.name] is None and not f.nullable))]
    for name in unknown:
        payload.setdefault(name, None)
    payload["imported"] = {"map": m.name, "row": i, "derived": derived,
                           "unknown": sorted(set(unknown))}
    return payload


def _record(kind: str, payload: dict[str, Any], prov: dict[str, Any], i: int
            ) -> dict[str, Any]:
    try:
        return make_record(kind, payload, prov=prov, check=True)
    except AdvscaleError as e:
        raise AdvscaleError(f"table row {i}: {e}") from None


def _column_values(m: TableMap, kind: str, name: str, spec: Any, rows: Sequence[Row]
                   ) -> list[Any]:
    """The field's value for every row, unit-checked and typed for the schema."""
    values = [_value(m, name, spec, row, i) for i, row in enumerate(rows)]
    if isinstance(spec, dict) and "column" in spec:
        raw = [row.get(spec["column"]) for row in rows]
        check_units(kind, name, spec, raw, values)
    f = field_of(kind, name.removeprefix("data."))
    if f is not None and "int" in f.type.split("|") and "number" not in f.type:
        values = [round(v) if isinstance(v, float) and math.isfinite(v) else v for v in values]
    return values


def _value(m: TableMap, name: str, spec: Any, row: Row, i: int) -> Any:
    if not isinstance(spec, dict):
        return spec
    if "value" in spec:
        v = spec["value"]
    elif "template" in spec:
        v = _template(spec["template"], row, i, m)
    else:
        v = row.get(spec["column"])
    if v is None:
        return spec.get("default")
    if "map" in spec:
        key = str(v) if not isinstance(v, float) or not v.is_integer() else str(int(v))
        if key not in spec["map"] and "default" not in spec:
            raise AdvscaleError(f"map {m.name}: field {name!r}: column {spec['column']!r} has "
                                f"{v!r}, which its map does not list ({sorted(spec['map'])})")
        return spec["map"].get(key, spec.get("default"))
    if "match" in spec:
        return next((out for pat, out in spec["match"] if re.search(pat, str(v))),
                    spec.get("default"))
    return _scaled(m, name, spec, v, row)


def _scaled(m: TableMap, name: str, spec: dict[str, Any], v: Any, row: Row) -> Any:
    factor = UNITS.get(spec.get("unit") or "", 1.0) * float(spec.get("scale", 1.0))
    times = _listed(spec.get("times"))
    if factor == 1.0 and not times:
        return v
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise AdvscaleError(f"map {m.name}: field {name!r}: column {spec.get('column')!r} has "
                            f"{v!r}, not a number to convert")
    out = float(v) * factor
    for col in times:
        t = row.get(col)
        if t is None:
            return None
        out *= float(t)
    return out


def check_units(kind: str, name: str, spec: dict[str, Any], raw: Sequence[Any],
                values: Sequence[Any]) -> None:
    """Refuse an ambiguous column: accuracies in percent vs fraction, FLOPs in the wrong unit.

    One line names the column, what its values look like, and the map key that fixes it.
    """
    col, unit = spec["column"], spec.get("unit")
    f = field_of(kind, name)
    target = f.unit if f is not None else ""
    nums = [float(v) for v in raw if isinstance(v, int | float) and not isinstance(v, bool)]
    if not nums:
        return
    where = f"column {col!r} ({kind} {name})"
    hi = max(nums)
    if target == "fraction" or unit in ("percent", "fraction") or name.endswith("_acc"):
        if unit is None and hi > 1:
            raise AdvscaleError(f"{where}: values up to {hi:g} are not fractions in [0, 1]; "
                                f"declare unit = \"percent\" for it in the map (or fix the "
                                f"column)")
        if unit == "fraction" and hi > 1:
            raise AdvscaleError(f"{where}: declared unit = \"fraction\" but values reach "
                                f"{hi:g}; declare unit = \"percent\"")
        if unit == "percent" and hi <= 1 and hi > 0:
            raise AdvscaleError(f"{where}: declared unit = \"percent\" but every value is <= 1 "
                                f"(max {hi:g}), which reads as fractions; declare "
                                f"unit = \"fraction\" if they are")
    if target == "FLOPs" or (unit or "").endswith("FLOPs"):
        final = sorted(float(v) for v in values if isinstance(v, int | float))
        med = final[len(final) // 2] if final else 0.0
        if final and med < MIN_PLAIN_FLOPS:
            raise AdvscaleError(f"{where}: values around {med:.3g} are too few for training "
                                f"FLOPs; declare its unit (unit = \"TFLOPs\", \"GFLOPs\", ...) and"
                                f", for per-epoch figures, times = \"epochs\"")
    final_hi = max((float(v) for v in values if isinstance(v, int | float)), default=0.0)
    if name in ("params", "samples_seen") and unit is None and 0 < final_hi < 1e4:
        raise AdvscaleError(f"{where}: values up to {final_hi:g} are too small for a count; "
                            f"declare "
                            f"unit = \"millions\" (or \"thousands\") if they are")
