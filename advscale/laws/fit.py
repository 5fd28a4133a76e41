"""``advscale fit`` as a library call: records in, one ``fit`` record out.

:func:`fit_law` reads ``train.eval``/``attack`` records, joins runs, applies ``--filter``
expressions and (for Approaches 2 and 3, by default) the paper's exclusion rule, fits the chosen
approach (looked up in the registry, :mod:`advscale.laws.approach`), bootstraps whole runs, and
returns the payload documented in docs/formats.md (``fit``); :func:`fit_record` returns it as
a whole record, with provenance. Human-readable progress goes to the ``log`` callback (stderr
in the CLI).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any

from advscale.errors import AdvscaleError
from advscale.laws import summary
from advscale.laws.approach import Approach, FitData, Log, Progress, get_approach
from advscale.laws.data import (
    Point,
    apply_filters,
    collect_points,
    fid_inputs,
    paper_exclusion,
    read_runs,
)
from advscale.laws.filters import RecordFilter
from advscale.laws.finite import check_finite_fit, check_finite_points
from advscale.laws.objective import HUBER_DELTA
from advscale.laws.protocol import Protocol, resolve_protocol
from advscale.records import make_record

DEFAULT_BOOTSTRAP = 1000

EXCLUSION_RULE = ("drop runs with params < 1e8, samples_seen > 1e7 and fid < 10 "
                  "(Bartoldson et al. 2024, appendix F.2)")


def _nolog(msg: str) -> None:
    pass


def default_target(approach: str) -> str:
    """``adv_loss`` for Bartoldson et al.'s approaches, ``aa_acc`` for Debenedetti et al.'s."""
    return get_approach(approach).default_target


def fit_law(
    sources: str | os.PathLike | Iterable[str | os.PathLike] = "-",
    *,
    approach: str,
    target: str | None = None,
    points: str | None = None,
    filters: Iterable[str] = (),
    exclusion: bool | None = None,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    attack: str = "aa-standard",
    full_grid: bool = True,
    delta: float = HUBER_DELTA,
    protocol: str | Protocol = "advscale",
    protocol_options: Mapping[str, Any] | None = None,
    records: Iterable[dict[str, Any]] | None = None,
    stdin: IO[str] | None = None,
    log: Log | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Fit ``approach`` (``1``, ``2``, ``3``, ``power-law``, ``gbr``, or a registry name such
    as ``approach2``) to records; the payload of a ``fit`` record.

    ``target``: ``adv_loss`` (default for 1–3), ``robust_acc``, ``clean_acc`` or ``aa_acc``
    (default for power-law and gbr). ``points``: ``final``/``best``/``all`` evaluation points
    per run (Approach 1 always uses all; default: the protocol's). ``exclusion``: the paper's
    rule (default on for Approaches 2 and 3 only). ``n_boot``: bootstrap replicates over runs
    (0 to skip). ``delta``: the Huber threshold on log residuals (the papers' 1e-3).
    ``protocol``: ``advscale`` or ``bartoldson2024`` (the authors' notebook), with any of its
    choices replaced by ``protocol_options`` (:mod:`advscale.laws.protocol`). ``options``
    are the approach's own (its :attr:`~advscale.laws.approach.Approach.Options`, e.g. the
    power law's ``bins``, ``x``, ``also``); one it does not take is refused.
    """
    log = log or _nolog
    appr = get_approach(approach)
    proto = resolve_protocol(protocol, protocol_options)
    if n_boot < 0:
        raise AdvscaleError("n_boot must be >= 0", field="n_boot")
    own = appr.make_options(options)
    needs = appr.needs_for(own)
    target = target or appr.default_target
    filters = list(filters)
    for expr in filters:  # refuse a malformed --filter before reading anything
        RecordFilter(expr)
    points = _points_mode(appr, points or proto.points, log)
    rs = read_runs(sources, stdin=stdin, records=records)
    log(f"read {rs.n_records} records: {len(rs.runs)} runs")
    before = filters if proto.filter_order == "before" else []
    pts = collect_points(rs, target, points, attack, needs, log=log,
                         min_train_fraction=proto.min_train_fraction, pre_filters=before)
    if proto.filter_order == "after":
        pts = apply_filters(pts, filters, log)
    applied = appr.default_exclusion if exclusion is None else exclusion
    dropped: list[str] = []
    if applied:
        pts, dropped = paper_exclusion(pts, log, size=proto.exclusion_size)
    if not pts:
        raise AdvscaleError("no points left after filtering")
    appr.check_values(pts, target)
    check_finite_points(pts, target)
    common: dict[str, Any] = {
        "approach": appr.option, "target": target, "points": points, "filters": filters,
        "exclusion": {"rule": EXCLUSION_RULE, "applied": bool(applied), "dropped_runs": dropped,
                      "size": proto.exclusion_size},
        "data": summary.data_summary(pts), "fid_inputs": fid_inputs(pts), "seed": seed,
        "protocol": proto.record(),
    }
    common["fid_metric"] = appr.quality_metric(common["fid_inputs"], log)
    body = appr.fit(FitData(pts, rs, target, n_boot=n_boot, seed=seed, full_grid=full_grid,
                            delta=delta, log=log, progress=progress, protocol=proto,
                            options=own))
    check_finite_fit({**_headline(pts, body), **body})
    return {**common, **_headline(pts, body), **body}


def fit_record(sources: str | os.PathLike | Iterable[str | os.PathLike] = "-", *,
               command: str | None = None, **options: Any) -> dict[str, Any]:
    """:func:`fit_law` as a whole ``fit`` record, its options recorded in the provenance.

    ``options`` are :func:`fit_law`'s keyword arguments; ``command`` is the command line to
    record (default: this process's). The approach's own options are recorded as the
    approach resolved them (every field of its ``Options``), under their field names.
    """
    files = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    bound = inspect.signature(fit_law).bind(files, **options)
    bound.apply_defaults()
    opt = dict(bound.arguments)
    own = opt.pop("options")
    opt["filters"] = list(opt["filters"])
    appr = get_approach(opt["approach"])
    config = {"files": [os.fspath(f) for f in files], "approach": opt["approach"],
              "target": opt["target"], "filter": opt["filters"], "bootstrap": opt["n_boot"],
              "seed": opt["seed"], "points": opt["points"], "paper_exclusion": opt["exclusion"],
              "attack": opt["attack"], "coarse_grid": not opt["full_grid"],
              "huber_delta": opt["delta"], "protocol": _protocol_name(opt["protocol"]),
              "protocol_options": {k: (list(v) if isinstance(v, tuple) else v)
                                   for k, v in (opt["protocol_options"] or {}).items()
                                   if v is not None},
              **_as_config(appr.make_options(own))}
    payload = fit_law(**opt, **own)
    return make_record("fit", payload, command=command, config=config, seed=opt["seed"])


def _as_config(options: Any) -> dict[str, Any]:
    """An approach's resolved options as provenance fields (lists, not tuples)."""
    if options is None:
        return {}
    return {k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(options).items()}


def _protocol_name(protocol: str | Protocol) -> str:
    return protocol.name if isinstance(protocol, Protocol) else str(protocol)


def _points_mode(appr: Approach, points: str | None, log: Log) -> str:
    """The evaluation points per run: the approach's own (Approach 1: all), else ``points``."""
    if appr.points is None:
        return points or "final"
    if points not in (None, appr.points):
        log(f"approach {appr.option} uses every evaluation point of each run "
            "(the training curves)")
    return appr.points


def _headline(pts: list[Point], body: dict[str, Any]) -> dict[str, Any]:
    """Flat headline numbers for tables and jq; the details stay in ``stats`` and ``data``."""
    st = body.get("stats", {})
    if "data" in body:  # the approach fitted a subset (e.g. Approach 2's named datasets)
        return {"n_points": body["data"]["n_points"], "n_runs": body["data"]["n_runs"],
                "r2": st.get("r2"), "rmse": st.get("rmse")}
    return {"n_points": len(pts), "n_runs": len({p.run_id for p in pts}),
            "r2": st.get("r2", st.get("r2_L", st.get("r2_test"))),
            "rmse": st.get("rmse", st.get("rmse_test"))}
