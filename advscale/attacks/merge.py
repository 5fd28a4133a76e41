"""``advscale attack --merge``: final ``attack`` records from the chunk records of shard runs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from advscale.attacks.inputs import Log, info_log
from advscale.attacks.records import attack_record, combine_chunks
from advscale.attacks.statefile import find_result
from advscale.errors import AdvscaleError
from advscale.records import append_record, read_log, read_records

_KINDS = ("attack.chunk", "attack")


def _read_sources(sources: Sequence[str | os.PathLike[str]], log: Log
                  ) -> Iterator[dict[str, Any]]:
    """Chunk and final records of ``sources``: files under the torn-last-line policy of
    :mod:`advscale.core.jsonl` (state files of killed runs merge too), ``-`` from stdin."""
    for src in sources:
        if os.fspath(src) == "-":
            yield from read_records("-", kinds=_KINDS)
            continue
        if not os.path.isfile(src):
            raise AdvscaleError(f"{os.fspath(src)}: no such records file")
        yield from (r for r in read_log(src, lambda m: log(f"advscale attack: {m}"))
                    if r.get("kind") in _KINDS)


def merge_chunk_records(
    sources: Sequence[str | os.PathLike[str]],
    *,
    results: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
    log: Log = info_log,
) -> list[dict[str, Any]]:
    """Final ``attack`` records from the ``attack.chunk`` records of shard runs or state files.

    Groups chunk records by settings key (one evaluation each); every group must cover all its
    chunks. Records are appended to ``results`` unless already there. ``-`` reads stdin.
    """
    return merge_records(_read_sources(sources, log), results=results, config=config, log=log)


def merge_records(
    records: Iterable[Mapping[str, Any]],
    *,
    results: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
    force: bool = False,
    log: Log = info_log,
) -> list[dict[str, Any]]:
    """Final ``attack`` records from ``attack.chunk`` (and already final ``attack``) records.

    One final record per settings key, in the order the keys first appear; appended to
    ``results`` unless already there (or always, with ``force``).
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    finals: dict[str, dict[str, Any]] = {}
    order: dict[str, None] = {}
    for r in records:
        if "settings_key" not in r:
            raise AdvscaleError(f"an {r['kind']} record has no settings_key")
        order.setdefault(r["settings_key"])
        if r["kind"] == "attack":  # already final (e.g. a shard skipped via --results)
            finals.setdefault(r["settings_key"], dict(r))
        else:
            groups.setdefault(r["settings_key"], []).append(r)
    if not groups and not finals:
        raise AdvscaleError("no attack.chunk records found to merge")
    out: dict[str, dict[str, Any]] = {}
    for key in order:
        if key not in groups:
            out[key] = finals[key]
            continue
        payload = combine_chunks(groups[key])
        rec = attack_record(payload, config)
        if results is not None and (force or find_result(results, key) is None):
            append_record(results, rec)
        log(f"advscale attack: merged {payload['chunks']} chunks of {payload['checkpoint']}: "
            f"clean {payload['clean_acc']:.4f}, robust {payload['robust_acc']:.4f}")
        out[key] = rec
    return list(out.values())
