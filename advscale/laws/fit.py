"""``advscale fit`` as a library call: records in, one ``fit`` record out.

:func:`fit_law` reads ``train.eval``/``attack`` records, joins runs, applies ``--filter``
expressions and (for Approaches 2 and 3, by default) the paper's exclusion rule, fits the chosen
approach (looked up in the registry, :mod:`advscale.laws.approach`), bootstraps whole runs, and
returns the payload documented in docs/formats.md (``fit``); :func:`fit_record` returns it as
a whole record, with provenance. Human-readable progress goes to the ``log`` callback (stderr
in the CLI).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any

from advscale.errors import AdvscaleError
from advscale.laws import summary
from advscale.laws.approach import (
    Approach,
    FitData,
    Log,
    Progress,
    get_approach,
    list_approaches,
)
from advscale.laws.data import (
    Point,
    apply_filters,
    check_target_values,
    collect_points,
    fid_inputs,
    fid_warning,
    paper_exclusion,
    read_runs,
    single_fid_metric,
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
    also: Iterable[str] = (),
    full_grid: bool = True,
    delta: float = HUBER_DELTA,
    protocol: str | Protocol = "advscale",
    protocol_options: Mapping[str, Any] | None = None,
    bins: int | None = None,
    x: str | None = None,
    records: Iterable[dict[str, Any]] | None = None,
    stdin: IO[str] | None = None,
    log: Log | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit ``approach`` (``1``, ``2``, ``3``, ``power-law``, ``gbr``, or a registry name such
    as ``approach2``) to records; the payload of a ``fit`` record.

    ``target``: ``adv_loss`` (default for 1–3), ``robust_acc``, ``clean_acc`` or ``aa_acc``
    (default for power-law and gbr). ``points``: ``final``/``best``/``all`` evaluation points
    per run (Approach 1 always uses all; default: the protocol's). ``exclusion``: the paper's
    rule (default on for Approaches 2 and 3 only). ``n_boot``: bootstrap replicates over runs
    (0 to skip). ``delta``: the Huber threshold on log residuals (the papers' 1e-3).
    ``protocol``: ``advscale`` or ``bartoldson2024`` (the authors' notebook), with any of its
    choices replaced by ``protocol_options`` (:mod:`advscale.laws.protocol`). ``bins``, ``x``
    (power law): the number of log-spaced bins (19) and the field the law is of
    (``train_flops``; e.g. ``cost_usd``).
    """
    log = log or _nolog
    appr = get_approach(approach)
    proto = resolve_protocol(protocol, protocol_options)
    if n_boot < 0:
        raise AdvscaleError("n_boot must be >= 0", field="n_boot")
    _check_options(appr, bins=bins, x=x)
    target = target or appr.default_target
    filters = list(filters)
    for expr in filters:  # refuse a malformed --filter before reading anything
        RecordFilter(expr)
    points = _points_mode(appr, points or proto.points, log)
    rs = read_runs(sources, stdin=stdin, records=records)
    log(f"read {rs.n_records} records: {len(rs.runs)} runs")
    before = filters if proto.filter_order == "before" else []
    pts = collect_points(rs, target, points, attack, need_fid=appr.needs_fid,
                         need_flops=appr.needs_flops and x in (None, "train_flops"), log=log,
                         min_train_fraction=proto.min_train_fraction, pre_filters=before,
                         need_nd=appr.needs_nd)
    if proto.filter_order == "after":
        pts = apply_filters(pts, filters, log)
    applied = appr.default_exclusion if exclusion is None else exclusion
    dropped: list[str] = []
    if applied:
        pts, dropped = paper_exclusion(pts, log, size=proto.exclusion_size)
    if not pts:
        raise AdvscaleError("no points left after filtering")
    check_target_values(pts, target, appr.log_space, appr.fitted_as_error)
    check_finite_points(pts, target)
    common: dict[str, Any] = {
        "approach": appr.option, "target": target, "points": points, "filters": filters,
        "exclusion": {"rule": EXCLUSION_RULE, "applied": bool(applied), "dropped_runs": dropped,
                      "size": proto.exclusion_size},
        "data": summary.data_summary(pts), "fid_inputs": fid_inputs(pts), "seed": seed,
        "protocol": proto.record(),
    }
    common["fid_metric"] = _fid_metric(appr, common["fid_inputs"], log)
    body = appr.fit(FitData(pts, rs, target, n_boot, seed, full_grid, delta, list(also), log,
                            progress, proto, bins, x))
    check_finite_fit({**_headline(pts, body), **body})
    return {**common, **_headline(pts, body), **body}


def fit_record(sources: str | os.PathLike | Iterable[str | os.PathLike] = "-", *,
               command: str | None = None, **options: Any) -> dict[str, Any]:
    """:func:`fit_law` as a whole ``fit`` record, its options recorded in the provenance.

    ``options`` are :func:`fit_law`'s keyword arguments; ``command`` is the command line to
    record (default: this process's).
    """
    files = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    bound = inspect.signature(fit_law).bind(files, **options)
    bound.apply_defaults()
    opt = dict(bound.arguments)
    opt["filters"], opt["also"] = list(opt["filters"]), list(opt["also"])
    config = {"files": [os.fspath(f) for f in files], "approach": opt["approach"],
              "target": opt["target"], "filter": opt["filters"], "bootstrap": opt["n_boot"],
              "seed": opt["seed"], "points": opt["points"], "paper_exclusion": opt["exclusion"],
              "attack": opt["attack"], "also": opt["also"], "coarse_grid": not opt["full_grid"],
              "huber_delta": opt["delta"], "protocol": _protocol_name(opt["protocol"]),
              "bins": opt["bins"], "x": opt["x"],
              "protocol_options": {k: (list(v) if isinstance(v, tuple) else v)
                                   for k, v in (opt["protocol_options"] or {}).items()
                                   if v is not None}}
    payload = fit_law(**opt)
    return make_record("fit", payload, command=command, config=config, seed=opt["seed"])


def _check_options(appr: Approach, **given: Any) -> None:
    """Refuse an approach-specific option (``--bins``, ``--x``) the approach does not take."""
    for name, value in given.items():
        if value is not None and name not in appr.options:
            takers = [get_approach(a).option for a in list_approaches()
                      if name in get_approach(a).options]
            raise AdvscaleError(f"{name} applies to approach {', '.join(takers)}, "
                                f"not {appr.option}", field=f"{name},approach")


def _fid_metric(appr: Approach, info: dict[str, Any], log: Log) -> str | None:
    """The one quality metric of the fit's FIDs (refusing a mix for laws of FID); warned."""
    if appr.needs_fid:
        metric = single_fid_metric(info, appr.option)
        if metric is not None:
            log(f"approach {appr.option}: the quality axis (FID) is {metric}")
    else:
        metric = info["metrics"][0] if len(info["metrics"]) == 1 else None
    if appr.warns_fid and (warning := fid_warning(info)):
        log(warning)
    return metric


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
