"""Records → runs: the one table of training runs that ``fit`` and ``report`` both read.

A *run* is one ``advscale train`` run, named by its ``run_id``. The joining rule (also in
docs/formats.md, "Records → runs"):

1. ``train.eval`` records open the runs: each must carry a ``run_id`` string.
2. ``attack`` records join the run named by their ``run_id`` (copied from the checkpoint's
   metadata), wherever in the input that run's ``train.eval`` records are.
3. ``energy`` records join the run named by their ``run_id``, else by their provenance
   ``config.run_id``, else the ``run_id`` in ``DIR/config.json`` of the ``advscale train ...
   --out DIR`` command it wrapped; a record with none belongs to the run of the last
   ``train.eval`` record before it in the same file (``advscale energy -- advscale train
   ...`` writes it after the run's own records).
4. An ``attack`` or ``energy`` record that names no run, or a run without ``train.eval``
   records, is an *orphan*: kept in :attr:`RunTable.orphans` and by kind in
   :attr:`RunTable.unjoined`, with every record of another kind (``fit``, ``flops``...).

5. **One threat model.** A run's threat model is its ``train.eval`` records' ``norm`` (absent:
   ``linf``) and ``eps``. Runs of different threat models are never mixed silently: building
   the table raises AdvscaleError naming each threat model and its runs (``fit``, ``report`` and
   ``records table`` all read runs through here), and :meth:`Run.attack_acc` reads only attack
   records of the run's norm. An unknown ``eps`` (null, imported tables) matches any radius.

Runs keep their ``train.eval`` records sorted by ``samples_seen``. Everything here is plain
Python (no torch, no pandas). Field values are read through :class:`Tagged`'s accessors, which
name the ``file:line`` of a record in every error.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from advscale.errors import AdvscaleError
from advscale.records import decode_line, open_records_file, parse_line
from advscale.records.schemas import field_of

JOINED_KINDS = ("train.eval", "attack", "energy")
"""Kinds that are joined into runs; records of other kinds are kept by kind, unjoined."""

Sources = str | os.PathLike | Iterable[str | os.PathLike]

log = logging.getLogger(__name__)


@dataclass
class Tagged:
    """A record and where it came from (``file:line``)."""

    where: str
    rec: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.rec.get("kind", "record"))

    @property
    def source(self) -> str:
        """The file (or ``<stdin>``, ``<records>``) the record came from."""
        return self.where.rsplit(":", 1)[0]

    def number(self, key: str, required: bool = True, positive: bool = False,
               allow_null: bool | None = None, why: str = "") -> float | None:
        """A numeric field, checked; AdvscaleError naming the line when it is wrong.

        Missing: an error when ``required``, else None. Null: None when ``allow_null`` (by
        default: when the kind's schema marks the field nullable) or not ``required``.
        """
        kind = self.kind
        if key not in self.rec:
            if required:
                raise AdvscaleError(f"{self.where}: {kind} record lacks '{key}'{why}")
            return None
        v = self.rec[key]
        if v is None:
            if allow_null is None:
                f = field_of(kind, key)
                allow_null = f is not None and f.nullable
            if allow_null or not required:
                return None
            raise AdvscaleError(f"{self.where}: {kind} record has '{key}': null{why}")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise AdvscaleError(f"{self.where}: {kind} record has '{key}': {v!r}, not a number")
        if positive and v <= 0:
            raise AdvscaleError(f"{self.where}: {kind} record has '{key}': {v!r}; it must be > 0")
        return float(v)

    def train_flops(self, samples: float, required: bool) -> float | None:
        """``train_flops``, else ``samples × train_flops_per_sample`` (the contract's rule)."""
        f = self.number("train_flops", required=False)
        if f is None:
            per = self.number("train_flops_per_sample", required=False)
            if per is not None:
                f = per * samples
        if f is None and required:
            raise AdvscaleError(
                f"{self.where}: {self.kind} record lacks 'train_flops' (and "
                f"'train_flops_per_sample'); run count-flops with annotate on it first",
                field="annotate")
        if f is not None and f <= 0:
            raise AdvscaleError(f"{self.where}: 'train_flops' must be > 0, got {f!r}")
        return f

    def fid(self, required: bool) -> float:
        """``fid`` with null (real data only) as 0; missing is an error when ``required``."""
        if "fid" not in self.rec:
            if required:
                raise AdvscaleError(
                    f"{self.where}: {self.kind} record lacks 'fid' (null for real data only)"
                )
            return 0.0
        v = self.number("fid", required=False, allow_null=True)
        if v is not None and v < 0:
            raise AdvscaleError(f"{self.where}: 'fid' must be >= 0, got {v!r}")
        return 0.0 if v is None else v


@dataclass
class Run:
    """One training run: its evaluations, attack results and other joined records."""

    run_id: str
    evals: list[Tagged] = field(default_factory=list)
    """``train.eval`` records, sorted by ``samples_seen``."""
    attacks: list[Tagged] = field(default_factory=list)
    """``attack`` records, in input order."""
    others: list[Tagged] = field(default_factory=list)
    """Other joined records (``energy``), in input order."""

    @property
    def points(self) -> list[dict[str, Any]]:
        """The ``train.eval`` records (the learning curve), by samples seen."""
        return [t.rec for t in self.evals]

    @property
    def final(self) -> dict[str, Any]:
        """The evaluation with the most samples seen (``{}`` without evaluations)."""
        return self.evals[-1].rec if self.evals else {}

    @property
    def model(self) -> str:
        return str(self.evals[0].rec.get("model")) if self.evals else "None"

    @property
    def params(self) -> int:
        return int(self.evals[0].rec.get("params") or 0) if self.evals else 0

    @property
    def fid(self) -> float | None:
        return self.evals[0].rec.get("fid") if self.evals else None

    @property
    def energy(self) -> list[dict[str, Any]]:
        """The joined ``energy`` records, in input order."""
        return [t.rec for t in self.others if t.kind == "energy"]

    @property
    def threat_model(self) -> tuple[str, float | None]:
        """``(norm, eps)`` of the run's evaluations (:func:`threat_model_of`)."""
        return threat_model_of(self.evals[0].rec) if self.evals else ("linf", None)

    def attack_acc(self, attack: str) -> float | None:
        """``robust_acc`` of the last ``attack`` record of that attack under the run's norm, or
        None."""
        norm = self.threat_model[0]
        accs = [t.rec.get("robust_acc") for t in self.attacks
                if t.rec.get("attack") == attack and threat_model_of(t.rec)[0] == norm]
        return accs[-1] if accs else None

    def final_eval(self) -> Tagged | None:
        """The record marked ``final``, else the one with the most samples seen."""
        if not self.evals:
            return None
        finals = [t for t in self.evals if t.rec.get("final") is True]
        return max(finals or self.evals, key=lambda t: _samples(t.rec))

    def eval_at(self, samples_seen: float | None) -> Tagged | None:
        """The evaluation at exactly ``samples_seen``, else :meth:`final_eval`."""
        if samples_seen is not None:
            for t in self.evals:
                if t.rec.get("samples_seen") == samples_seen:
                    return t
        return self.final_eval()


@dataclass
class RunTable:
    """Records grouped into runs (in order of first appearance), and what was not joined."""

    runs: dict[str, Run]
    orphans: list[Tagged]
    """``attack``/``energy`` records that name no run, or a run without evaluations."""
    unjoined: dict[str, list[dict[str, Any]]]
    """Every record not joined to a run, by kind (``fit``, ``flops``, orphans...)."""
    n_records: int

    def sorted_runs(self) -> list[Run]:
        """The runs by model size, then run id (the report's order)."""
        return sorted(self.runs.values(), key=lambda r: (r.params, r.run_id))

    def describe(self) -> str:
        """What was read: ``N records from M runs`` and the records joined to none, by kind."""
        words = f"{self.n_records} records from {len(self.runs)} runs"
        left = ", ".join(f"{len(v)} {k}" for k, v in sorted(self.unjoined.items()))
        return words + (f" (not joined to a run: {left})" if left else "")

    def empty_reason(self) -> str | None:
        """Why a runs table of these records has no rows, or None when it has some."""
        if self.runs:
            return None
        if not self.n_records:
            return "no records were read"
        orphans = sorted({t.kind for t in self.orphans})
        why = ("no train.eval records: a row is one training run, opened by its train.eval "
               "records")
        if orphans:
            why += (f"; the {' and '.join(orphans)} records here join a run by its run_id "
                    "(an attack record's comes from its checkpoint) and find no train.eval "
                    "record of it (give the run's records.jsonl too)")
        return why


def expand_sources(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
                   ) -> list[str]:
    """Paths with shell globs expanded, in order (``-`` kept; a glob matching nothing is an
    error, as a missing file would be)."""
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    out: list[str] = []
    for item in items:
        s = os.fspath(item)
        if s != "-" and glob.has_magic(s):
            hits = sorted(glob.glob(s))
            if not hits:
                raise AdvscaleError(f"{s}: no files match")
            out += hits
        else:
            out.append(s)
    return out


def is_sources(records: Any) -> bool:
    """True for a path or a non-empty list of paths (as opposed to record dicts)."""
    if isinstance(records, str | os.PathLike):
        return True
    return (isinstance(records, list | tuple) and bool(records)
            and all(isinstance(r, str | os.PathLike) for r in records))


def iter_tagged(sources: Sources = "-", stdin: IO[str] | None = None) -> Iterator[Tagged]:
    """Every record of the JSONL sources (``-`` is stdin), tagged with ``file:line``."""
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    for src in sources:
        src = str(src)
        if src == "-":
            yield from _tag_stream(stdin if stdin is not None else sys.stdin, "<stdin>")
            continue
        with open_records_file(src) as f:
            yield from _tag_stream(f, src)


def _tag_stream(stream: IO[str] | IO[bytes], name: str) -> Iterator[Tagged]:
    buffer = getattr(stream, "buffer", None)
    if buffer is not None and getattr(stream, "encoding", None):
        stream = buffer  # decode line by line: invalid UTF-8 names its line
    for lineno, line in enumerate(stream, start=1):
        if line.strip():
            where = f"{name}:{lineno}"
            text = decode_line(line, where) if isinstance(line, bytes) else line
            yield Tagged(where, parse_line(text, where))


def tag_records(records: Iterable[dict[str, Any] | Tagged], name: str = "<records>"
                ) -> Iterator[Tagged]:
    """Already-parsed records as :class:`Tagged` (``<records>:i``); Tagged ones pass through."""
    for i, r in enumerate(records, start=1):
        yield r if isinstance(r, Tagged) else Tagged(f"{name}:{i}", r)


def build_runs(records: Iterable[dict[str, Any] | Tagged]) -> RunTable:
    """Group records into runs by the module's joining rule."""
    runs: dict[str, Run] = {}
    unjoined: dict[str, list[dict[str, Any]]] = {}
    pending: list[tuple[Tagged, str | None]] = []
    last_run: dict[str, str] = {}  # source -> run_id of its latest train.eval record
    count = 0
    for t in tag_records(records):
        count += 1
        kind = t.kind
        if kind == "train.eval":
            rid = t.rec.get("run_id")
            if not isinstance(rid, str) or not rid:
                raise AdvscaleError(f"{t.where}: train.eval record has no 'run_id' string")
            runs.setdefault(rid, Run(rid)).evals.append(t)
            last_run[t.source] = rid
        elif kind in JOINED_KINDS:
            pending.append((t, last_run.get(t.source) if kind == "energy" else None))
        else:
            unjoined.setdefault(kind, []).append(t.rec)
    orphans: list[Tagged] = []
    for t, after in pending:
        rid = _named_run(t) or after
        run = runs.get(rid) if rid else None
        if run is None:
            orphans.append(t)
            unjoined.setdefault(t.kind, []).append(t.rec)
        elif t.kind == "attack":
            run.attacks.append(t)
        else:
            run.others.append(t)
    for run in runs.values():
        run.evals.sort(key=lambda t: _samples(t.rec))
    check_one_threat_model(runs.values())
    table = RunTable(runs, orphans, unjoined, count)
    log.debug("%s", table.describe())
    return table


def threat_model_of(rec: dict[str, Any]) -> tuple[str, float | None]:
    """``(norm, eps)`` of a record: ``norm`` absent (schema ≤ 3) is ``linf``; ``eps`` rounded to
    1e-9 (None when unknown)."""
    norm = rec.get("norm") or "linf"
    eps = rec.get("eps")
    ok = isinstance(eps, int | float) and not isinstance(eps, bool) and math.isfinite(eps)
    return str(norm), round(float(eps), 9) if ok else None


def _eps_text(eps: float | None) -> str:
    if eps is None:
        return "eps unknown"
    k = eps * 255
    return f"eps={round(k)}/255" if abs(k - round(k)) < 1e-6 and k >= 1 else f"eps={eps:g}"


def check_one_threat_model(runs: Iterable[Run]) -> None:
    """AdvscaleError naming the mix when ``runs`` span more than one threat model (a norm, and
    one radius per norm; an unknown radius matches any)."""
    groups: dict[tuple[str, float | None], list[str]] = {}
    for run in runs:
        groups.setdefault(run.threat_model, []).append(run.run_id)
    norms = {n for n, _ in groups}
    radii = {e for _, e in groups if e is not None}
    if len(norms) <= 1 and len(radii) <= 1:
        return
    parts = []
    for (norm, eps), ids in groups.items():
        shown = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
        parts.append(f"{norm} {_eps_text(eps)} ({len(ids)} run{'s' * (len(ids) != 1)}: "
                     f"{shown})")
    raise AdvscaleError("records mix threat models: " + "; ".join(parts) + ". Scaling laws, "
                        "reports and tables compare one threat model: give the records of one "
                        "norm and eps at a time")


def read_runs(sources: Sources = "-", stdin: IO[str] | None = None,
              records: Iterable[dict[str, Any] | Tagged] | None = None) -> RunTable:
    """Read JSONL sources (or take ``records``, already parsed) and group them into runs."""
    return build_runs(records if records is not None else iter_tagged(sources, stdin))


def run_dir_of(command: Sequence[str] | None) -> Path | None:
    """The run directory of a wrapped ``advscale train ... --out DIR`` command, or None."""
    args = [str(a) for a in command or []]
    if "train" not in args:
        return None
    for i, a in enumerate(args):
        if a in ("--out", "-o") and i + 1 < len(args):
            return Path(args[i + 1])
        if a.startswith("--out="):
            return Path(a.split("=", 1)[1])
    return None


def run_id_of_dir(run_dir: str | os.PathLike[str] | None) -> str | None:
    """The ``run_id`` in ``DIR/config.json`` of an ``advscale train`` run directory, or None."""
    if run_dir is None:
        return None
    try:
        config = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rid = config.get("run_id") if isinstance(config, dict) else None
    return rid if isinstance(rid, str) and rid else None


def _named_run(t: Tagged) -> str | None:
    """The run an attack/energy record names: ``run_id``, else (energy) provenance config's,
    else the run directory of the ``advscale train`` command it wrapped (``--out DIR``)."""
    rid = t.rec.get("run_id")
    if rid is None and t.kind == "energy":
        config = (t.rec.get("provenance") or {}).get("config") or {}
        rid = config.get("run_id") if isinstance(config, dict) else None
        if rid is None:
            command = t.rec.get("command") or (config.get("command") if isinstance(
                config, dict) else None)
            rid = run_id_of_dir(run_dir_of(command if isinstance(command, list) else None))
    if rid is None or rid == "":
        return None
    if not isinstance(rid, str):
        raise AdvscaleError(f"{t.where}: 'run_id' must be a string or null, got {rid!r}")
    return rid


def _samples(rec: dict[str, Any]) -> float:
    v = rec.get("samples_seen")
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0
