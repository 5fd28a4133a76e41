"""Append-only labels: one JSONL file per rater, ``DIR/<rater>.jsonl``.

Every answer is one ``validity.label`` record (docs/formats.md), appended, flushed and fsynced
before the answer is acknowledged, so a closed browser or a killed server loses nothing: a
restarted server reads the file back and the rater resumes at the first unanswered image.
A line torn by a crash mid-write was never acknowledged; it is cut off when the file is next
opened for writing (and skipped, with a warning, when it is only read).

Rater ids match :data:`advscale.validity.RATER_ID_PATTERN`, so a rater id can never name a path
outside the directory. A writer holds an advisory lock on each rater file it has open, so two
processes cannot interleave answers for the same rater. At most ``max_open`` rater files are
open at once (least recently used ones are closed, their locks released, and re-read from disk
when next needed), so no number of raters exhausts the process's file descriptors.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from advscale.core.jsonl import read_log, repair_open
from advscale.core.locks import hold_lock
from advscale.errors import AdvscaleError
from advscale.records import dumps, make_record, parse_line
from advscale.validity import CONFIDENCES, RATER_ID_PATTERN, RATER_KINDS, VERSIONS
from advscale.validity.advset import AdvSet

LABEL_KIND = "validity.label"
"""Record kind of one answer."""

_RATER_RE = re.compile(RATER_ID_PATTERN)
_MAX_REPLY = 2000
MAX_OPEN = 32
"""Rater files a store keeps open (and locked) at once."""


class LabelError(AdvscaleError):
    """An answer that cannot be stored; ``status`` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_rater_id(rater: Any) -> str:
    """Return ``rater`` if it is a valid rater id, else raise LabelError (400)."""
    if not isinstance(rater, str) or not _RATER_RE.fullmatch(rater):
        raise LabelError(
            "rater id must be 1-64 characters of letters, digits, '_' or '-'", status=400
        )
    return rater


def labels_path(directory: str | os.PathLike[str], rater: str) -> Path:
    """The labels file of ``rater`` inside ``directory`` (the id is validated first)."""
    return Path(directory) / f"{check_rater_id(rater)}.jsonl"


@dataclass(frozen=True)
class LabelLines:
    """The label records of one file, and what was wrong with it."""

    records: list[dict[str, Any]]
    torn_bytes: int = 0
    """Bytes of an unterminated last line (a write interrupted by a crash), 0 if none."""


def read_label_file(path: str | os.PathLike[str]) -> LabelLines:
    """Parse a labels JSONL file under the torn-last-line policy of :mod:`advscale.core.jsonl`.

    Records of other kinds are skipped. A malformed complete line raises RecordError.
    """
    lines = read_log(path, parse_line)
    return LabelLines([r for r in lines.items if r["kind"] == LABEL_KIND], lines.torn_bytes)


def _lock(f: IO[Any], path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise AdvscaleError(f"{path}: being written by another advscale process") from None


def _open_locked(path: Path) -> IO[bytes]:
    try:
        f = open(path, "ab+")  # noqa: SIM115 - held until evicted or closed
    except OSError as e:
        raise AdvscaleError(f"{path}: cannot open the labels file ({e.strerror or e})") from None
    _lock(f, path)
    return f


class LabelStore:
    """The labels of every rater of one adversarial-image file, in ``directory``.

    ``rows`` are the rows raters may label (the study set); ``kind`` is the rater kind this
    writer records (``human`` for the web server, ``machine`` for ``validity rate``).
    Thread-safe: answers for one rater are serialised by a per-rater lock.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        adv: AdvSet,
        rows: Iterable[int] | None = None,
        kind: str = "human",
        prov: Mapping[str, Any] | None = None,
        log: Callable[[str], None] | None = None,
        max_open: int = MAX_OPEN,
    ) -> None:
        if kind not in RATER_KINDS:
            raise AdvscaleError(f"rater kind {kind!r} must be one of {', '.join(RATER_KINDS)}")
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise AdvscaleError(f"{self.directory}: labels output must be a directory")
        self._held = contextlib.ExitStack()  # one writing process per kind of rater
        self._held.enter_context(hold_lock(
            self.directory, f"labels directory {self.directory} ({kind} raters)",
            lock=self.directory / f".lock-{kind}"))
        self.adv = adv
        self.rows = set(int(r) for r in (adv.study_rows() if rows is None else rows))
        self.kind = kind
        self.prov = dict(prov) if prov is not None else None
        self._log = log or (lambda msg: None)
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._answers: dict[str, dict[tuple[int, str], dict[str, Any]]] = {}
        self._files: OrderedDict[str, IO[bytes]] = OrderedDict()
        self.max_open = max(1, int(max_open))

    # -- reading ------------------------------------------------------------------------------

    def exists(self, rater: str) -> bool:
        """Whether ``rater`` already has a labels file here."""
        return labels_path(self.directory, rater).is_file()

    def raters(self) -> list[str]:
        """Rater ids with a labels file in the directory, sorted."""
        return sorted(
            p.stem for p in self.directory.glob("*.jsonl") if _RATER_RE.fullmatch(p.stem)
        )

    def _lock_for(self, rater: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(rater, threading.Lock())

    def _open(self, rater: str) -> dict[tuple[int, str], dict[str, Any]]:
        """Load and lock the rater's file (kept open, LRU); caller holds the rater's lock."""
        with self._guard:
            if rater in self._files:
                self._files.move_to_end(rater)
                return self._answers[rater]
        path = labels_path(self.directory, rater)
        f = _open_locked(path)
        try:
            repair_open(f, path, parse_line, self._log)
            answers = self._load(path, rater)
        except BaseException:
            f.close()
            raise
        with self._guard:
            self._files[rater] = f
            self._answers[rater] = answers
        self._evict(keep=rater)
        return answers

    def _load(self, path: Path, rater: str) -> dict[tuple[int, str], dict[str, Any]]:
        answers: dict[tuple[int, str], dict[str, Any]] = {}
        for rec in read_label_file(path).records:
            if rec.get("adv_fingerprint") != self.adv.fingerprint:
                raise AdvscaleError(
                    f"{path}: labels were made for a different adversarial-image file than "
                    f"{self.adv.path}; use another out directory", field="out")
            if rec.get("rater") != rater:
                raise AdvscaleError(f"{path}: holds labels of rater {rec.get('rater')!r}")
            if rec.get("rater_kind") != self.kind:
                raise AdvscaleError(
                    f"{path}: rater {rater!r} is a {rec.get('rater_kind')} rater here, not "
                    f"{self.kind}; choose another rater id"
                )
            try:
                key = (int(rec["row"]), str(rec["version"]))
            except (KeyError, TypeError, ValueError):
                raise AdvscaleError(f"{path}: a label record lacks a valid row/version") from None
            answers.setdefault(key, rec)  # the first answer counts
        return answers

    def _evict(self, keep: str) -> None:
        """Close least recently used rater files over ``max_open`` (not one in use)."""
        with self._guard:
            victims = [r for r in self._files if r != keep][: max(0, len(self._files)
                                                                   - self.max_open)]
            for rater in victims:
                lock = self._locks.get(rater)
                if lock is None or not lock.acquire(blocking=False):
                    continue  # being written right now: keep it this time
                try:
                    with contextlib.suppress(OSError):
                        self._files.pop(rater).close()
                    self._answers.pop(rater, None)
                finally:
                    lock.release()

    def open_files(self) -> int:
        """Rater files open right now (at most ``max_open``, plus ones in use)."""
        with self._guard:
            return len(self._files)

    def answers(self, rater: str) -> dict[tuple[int, str], dict[str, Any]]:
        """The rater's answers keyed by (row, version); a copy, loaded from disk once."""
        check_rater_id(rater)
        with self._lock_for(rater):
            return dict(self._open(rater))

    # -- writing ------------------------------------------------------------------------------

    def create(self, rater: str) -> None:
        """Create the rater's (empty) labels file, registering the id."""
        check_rater_id(rater)
        with self._lock_for(rater):
            self._open(rater)

    def class_id(self, choice: Any) -> Any:
        """A class name (case-insensitive, as in the file's ``class_names``) → its id; ids and
        anything else unchanged (validated by :meth:`add`)."""
        if not isinstance(choice, str):
            return choice
        names = [n.lower() for n in self.adv.class_names]
        key = choice.strip().lower()
        if key not in names:
            raise LabelError(f"class {choice!r} is not a class of this study; choose from "
                             f"{', '.join(self.adv.class_names)} or their ids 0-{len(names) - 1}")
        return names.index(key)

    def add(
        self,
        rater: str,
        row: Any,
        version: Any,
        choice: Any,
        confidence: Any,
        *,
        response_s: Any = None,
        reply: str | None = None,
        require_adv_first: bool = True,
        allow_abstain: bool = False,
    ) -> dict[str, Any]:
        """Validate one answer, append it to the rater's file (fsynced) and return the record.

        ``choice`` is a class id or a class name (or None, an abstention, when
        ``allow_abstain``); ``confidence`` is ``low`` or ``high``; ``response_s`` is the seconds
        the rater took (optional, 0-1 day).
        Raises LabelError: 400 malformed, 404 row not in the study, 409 already answered or the
        clean image answered before the adversarial one.
        """
        check_rater_id(rater)
        if isinstance(row, bool) or not isinstance(row, int):
            raise LabelError("row must be an integer")
        if row not in self.rows:
            raise LabelError(f"row {row} is not an image of this study", status=404)
        if version not in VERSIONS:
            raise LabelError(f"version must be one of {', '.join(VERSIONS)}")
        k = self.adv.num_classes
        choice = self.class_id(choice)
        if choice is None and allow_abstain:
            if confidence is not None and confidence not in CONFIDENCES:
                raise LabelError(f"confidence must be one of {', '.join(CONFIDENCES)}")
        else:
            if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < k:
                raise LabelError(f"class must be an integer class id in [0, {k})")
            if confidence not in CONFIDENCES:
                raise LabelError(f"confidence must be one of {', '.join(CONFIDENCES)}")
        if response_s is not None:
            if isinstance(response_s, bool) or not isinstance(response_s, int | float):
                raise LabelError("response_s must be a number of seconds")
            if not 0 <= float(response_s) <= 86400:
                raise LabelError("response_s must lie between 0 and 86400 seconds")
            response_s = round(float(response_s), 3)
        with self._lock_for(rater):
            answers = self._open(rater)
            if (row, version) in answers:
                raise LabelError(f"row {row} ({version}) is already answered", status=409)
            if require_adv_first and version == "clean" and (row, "adv") not in answers:
                raise LabelError(
                    f"row {row}: answer the adversarial image before the clean one", status=409
                )
            label = int(self.adv.label[row])
            pred = int((self.adv.pred_adv if version == "adv" else self.adv.pred_clean)[row])
            payload: dict[str, Any] = {
                "rater": rater,
                "rater_kind": self.kind,
                "adv_fingerprint": self.adv.fingerprint,
                "row": row,
                "index": int(self.adv.index[row]),
                "version": version,
                "choice": choice,
                "choice_name": None if choice is None else self.adv.class_names[choice],
                "confidence": confidence,
                "label": label,
                "correct": choice == label,
                "model_pred": pred,
                "agrees_with_model": choice == pred,
                "response_s": response_s,
            }
            if reply is not None:
                payload["reply"] = reply[-_MAX_REPLY:]
            rec = make_record(LABEL_KIND, payload, prov=self.prov)
            with self._guard:
                f = self._files[rater]
            self._append(f, rater, (dumps(rec) + "\n").encode("utf-8"))
            answers[(row, version)] = rec
            return rec

    def _append(self, f: IO[bytes], rater: str, data: bytes) -> None:
        """Append one line, fsynced; on failure cut back so nothing half-written remains."""
        size = f.seek(0, os.SEEK_END)
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        except OSError as e:
            with contextlib.suppress(OSError):
                f.truncate(size)
            path = labels_path(self.directory, rater)
            raise LabelError(f"{path}: could not store the answer ({e.strerror or e})",
                             status=507) from None

    def close(self) -> None:
        """Release every rater file lock."""
        with self._guard:
            for f in self._files.values():
                with contextlib.suppress(OSError):
                    f.close()
            self._files.clear()
            self._answers.clear()
            self._held.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
