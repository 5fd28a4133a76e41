"""``advscale.fit`` and its request: fitting a scaling law to records (torch-free)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from advscale.core.options import option, parse_fields, seed_option
from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE
from advscale.errors import AdvscaleError

__all__ = ["PAPER_FLOPS_PER_PARAM_SAMPLE", "FitRequest", "approach_choices",
           "approach_option_classes", "fit", "predict"]

PathLike = str | os.PathLike[str]
Records = Iterable[Mapping[str, Any]] | PathLike | Sequence[PathLike]

PROTOCOL_CHOICES = ("min_train_fraction", "filter_order", "exclusion_size", "anchor",
                    "joint_polish", "base_dataset", "stage2_datasets", "flops_floor", "envelope",
                    "accuracy_runs", "grids", "optimizer")
"""Fields of :class:`FitRequest` that change one choice of the fitting protocol."""


@dataclass
class FitRequest:
    """The settings of one fit (``advscale fit``); docs/laws.md explains each choice."""

    target: str | None = option(None, help="adv_loss, robust_acc, clean_acc, or aa_acc (needs "
                                "attack records).", default_text="adv_loss for approaches 1-3, "
                                "aa_acc for power-law and gbr")
    filters: list[str] = option(default_factory=list, flag="--filter", help="Keep points where "
                                "EXPR holds, e.g. \"params >= 1e6 and fid < 10\" (repeatable; "
                                "fields of the train.eval record, plus N, D, FID).")
    n_boot: int = option(1000, flag="--bootstrap", short="-B",
                         help="Bootstrap replicates over whole runs (0: none).")
    seed: int = seed_option("the bootstrap (and the gbr split)", panel=None)
    points: str | None = option(None, help="Evaluation points per run: final, best or all.",
                                default_text="final; all for approach 1")
    exclusion: bool | None = option(None, flag="--paper-exclusion", help="Drop runs with "
                                    "N < 100M, D > 10M and FID < 10 (appendix F.2).",
                                    default_text="on for approaches 2 and 3")
    attack: str = option("aa-standard", help="Attack whose records give aa_acc.")
    delta: float = option(1e-3, flag="--huber-delta",
                          help="Huber threshold on log residuals (approaches 2, 3).")
    coarse_grid: bool = option(False, negatable=False, help="Screen a subsample of the "
                               "initialisation grid (faster).")
    protocol: str = option("advscale", help="advscale or bartoldson2024: every choice of the "
                           "authors' notebook at once (best past-half checkpoint, filters first, "
                           "nominal-size exclusion, stage 2 anchored at the base FID on named "
                           "datasets, no joint polish, FLOPs floor, the code's grids; "
                           "docs/laws.md). The options below change one choice each.")
    min_train_fraction: float | None = option(None, help="Only evaluations at least this far "
                                              "into training (bartoldson2024: 0.5).")
    filter_order: str | None = option(None, help="after (filters drop chosen points) or before "
                                      "(they drop evaluations before each run's point is "
                                      "chosen; bartoldson2024).")
    exclusion_size: str | None = option(None, help="What the exclusion rule's D is: samples "
                                        "(seen) or nominal (samples_target; bartoldson2024).")
    anchor: str | None = option(None, help="Approach 2 stage 2: fid0 (stage-1 B, E as FID-0 "
                                "values) or base (anchored at the base dataset's FID, then "
                                "rescaled; bartoldson2024).")
    joint_polish: bool | None = option(None, help="Approach 2: polish all 7 parameters jointly "
                                       "after the two stages (advscale).")
    base_dataset: str | None = option(None, help="Approach 2's stage-1 dataset by name "
                                      "(data_source, dataset, or data[].path stems; "
                                      "bartoldson2024: dg20).")
    stage2_datasets: list[str] = option(default_factory=list, flag="--stage2-dataset",
                                        help="Approach 2's stage-2 datasets by name (repeatable;"
                                        " bartoldson2024: vanilla7, vanilla10, vanilla20).")
    flops_floor: float | None = option(None, help="Approach 1: only evaluations above this "
                                       "many FLOPs (bartoldson2024: 1.9e17; 0: none).")
    envelope: str | None = option(None, help="Approach 1's envelope: advscale or bartoldson2024 "
                                  "(the authors' code: linear in FLOPs, finished runs compete).")
    accuracy_runs: str | None = option(None, help="Loss->accuracy map over the fitted runs "
                                       "(fitted) or the base dataset's runs (base; "
                                       "bartoldson2024).")
    grids: str | None = option(None, help="Starting grids: appendix (appendix F's text) or code"
                               " (the authors' code; bartoldson2024).")
    optimizer: str | None = option(None, help="Approaches 2 and 3: advscale (screened grid, "
                                   "tight polish: the objective's minimum; default) or notebook "
                                   "(the authors' L-BFGS-B with SciPy's defaults, finite "
                                   "differences, their parameterisation and grids: their "
                                   "constants; docs/fidelity.md).")
    holdout: str | None = option(None, help="Backtest: fit on the runs where EXPR is false, "
                                 "predict those where it is true (e.g. 'train_flops > 1e19'); "
                                 "per-run errors and band coverage go in the record's backtest.",
                                 metavar="EXPR")

    def fit_law_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`advscale.laws.fit.fit_law` for this request."""
        d = dataclasses.asdict(self)
        d.pop("holdout")
        choices = {k: d.pop(k) for k in PROTOCOL_CHOICES}
        choices["stage2_datasets"] = choices["stage2_datasets"] or None
        d["full_grid"] = not d.pop("coarse_grid")
        return {**d, "protocol_options": choices}


def approach_option_classes() -> tuple[type, ...]:
    """The registered approaches' own option dataclasses (e.g. the power law's ``bins``,
    ``x``, ``also``): ``advscale fit`` declares one option per field, beside
    :class:`FitRequest`'s."""
    import advscale.laws  # noqa: F401  (importing the package registers the approaches)
    from advscale.laws.approach import option_classes

    return option_classes()


def approach_choices() -> tuple[str, ...]:
    """The ``approach`` values of :func:`fit`: the registered approaches' spellings (``1``,
    ``2``, ``3``, ``gbr``, ``power-law``, and any a module in ``$ADVSCALE_LAW_MODULES`` adds)."""
    from advscale.laws import approach_options

    return approach_options()


def fit_request(options: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`FitRequest` fields in ``options`` as fit_law keyword arguments; the rest (the
    approach's own options, ``full_grid``, ``protocol_options``, ``progress``) passes through
    (the approach checks and parses its own)."""
    names = {f.name for f in dataclasses.fields(FitRequest)}
    mine = parse_fields(FitRequest, {k: v for k, v in options.items() if k in names})
    rest = {k: v for k, v in options.items() if k not in names}
    out = FitRequest(**mine).fit_law_options()
    for key in ("full_grid",):
        if key in rest:
            out[key] = rest.pop(key)
    if "protocol_options" in rest:
        out["protocol_options"] = {**out["protocol_options"], **rest.pop("protocol_options")}
    return {**out, **rest}


def fit(records: Records, *, approach: str = "2",
        progress: Callable[[int, int], None] | None = None,
        **options: Any) -> dict[str, Any]:
    """Fit a scaling law; the ``fit`` record (the law: ``form``, ``params``, ``target``, ...).

    ``records``: record dicts, or JSONL paths/globs (``-`` is stdin). ``approach``: ``1``,
    ``2``, ``3``, ``power-law`` or ``gbr`` (or a registry name, e.g. ``approach3``). Options
    are :class:`FitRequest` fields (``target``, ``n_boot``, ``filters``, ``seed``, ``exclusion``,
    ``protocol`` and its choices, ``holdout`` (a backtest: fit outside, predict inside), ...)
    and the approach's own (:func:`approach_option_classes`; the power law's ``bins``, ``x``,
    ``also``).
    ``progress(done, total)`` follows the bootstrap.
    """
    from advscale.laws.backtest import backtest_record, summary_line
    from advscale.laws.fit import fit_record
    from advscale.records.runs import expand_sources, is_sources

    if not approach:
        raise AdvscaleError("approach is required: 1, 2, 3, power-law or gbr", field="approach")
    kwargs = fit_request(options)
    kwargs.setdefault("log", logging.getLogger("advscale.laws.fit").info)
    if progress is not None:
        kwargs["progress"] = progress
    holdout = options.get("holdout")
    fit_fn: Callable[..., dict[str, Any]] = fit_record
    if holdout is not None:
        def fit_fn(*a: Any, **kw: Any) -> dict[str, Any]:
            return backtest_record(*a, holdout=holdout, **kw)
    if is_sources(records):
        record = fit_fn(expand_sources(records), approach=approach, **kwargs)
    else:
        record = fit_fn(records=[dict(r) for r in records], approach=approach, **kwargs)
    if holdout is not None:
        log.info(summary_line(record["backtest"]))
    return record


log = logging.getLogger(__name__)

NO_QUERY = ("no query: give n/d (fid), flops, target_accuracy or target_loss, a queries "
            "file, or pipe JSONL queries on stdin")
NO_QUERY_FIELDS = "n,d,fid,flops,target_accuracy,target_loss"
QUERY_FIELDS = ("n", "d", "fid", "flops", "omega_n", "x", "target_accuracy", "target_loss")


def predict(law: Mapping[str, Any] | str, query: Mapping[str, Any] | None = None, *,
            accuracy: bool = False, acc_map: str = "auto",
            flops_per_param_sample: float | None = None, queries: str | None = None,
            published: bool = False, runs: str | None = None,
            emit: Callable[[dict[str, Any]], None] | None = None,
            **fields: Any) -> Any:
    """What ``law`` predicts for one query; the ``prediction`` record.

    ``law``: a ``fit`` record, a preset name (e.g. ``bartoldson2024-approach3``), a fit file
    or ``-`` (stdin). The query is ``query`` and/or keywords: ``flops=`` (a budget: N*, D*,
    loss), ``n=``/``d=`` (a model and data size), ``fid=``, ``omega_n=``, ``x=``, or an
    inverse ``target_accuracy=``/``target_loss=``. ``accuracy`` adds the law's loss → accuracy
    map (``acc_map``: ``auto``, ``paper`` or ``law``); ``flops_per_param_sample`` overrides the
    law's FLOPs = K·N·D constant. With ``queries`` (a JSONL file, ``-`` for stdin; ``fid`` and
    ``omega_n`` are then defaults) a list of records, one per query; ``emit`` gets each.
    ``published`` places the published runs (Bartoldson, Wang, ...) on the law, ``runs`` (a
    JSONL or CSV file) your own: one ``placement`` record each (before any query's record; a
    list of them when no query is given; ``fid`` overrides their FIDs).
    """
    from advscale.laws.law import Law
    from advscale.laws.predict import iter_predictions, prediction_record
    from advscale.laws.published import builtin_runs, load_runs, placement_record

    if acc_map not in ("auto", "paper", "law"):
        raise AdvscaleError(f"acc_map {acc_map!r}: choose auto, paper or law", field="acc_map")
    unknown = sorted(set(fields) - set(QUERY_FIELDS))
    if unknown:
        raise AdvscaleError(f"predict: unknown query field(s) {', '.join(unknown)}",
                            field=unknown[0])
    q = {**(query or {}), **{k: v for k, v in fields.items() if v is not None}}
    one = queries is None and any(k not in ("fid", "omega_n") for k in q)
    if law == "-" and not one and queries in (None, "-"):
        raise AdvscaleError("law - reads the law from stdin: give the query as options "
                            "(n/d/fid, flops) or queries FILE", field="law")
    the_law = Law.load(law) if isinstance(law, str) else Law(dict(law))
    if flops_per_param_sample is not None:
        the_law.set_flops_per_param_sample(flops_per_param_sample)
    if published or runs:
        table = (builtin_runs() if published else []) + (load_runs(runs) if runs else [])
        placed = [placement_record(the_law, r, q.get("fid"), acc_map) for r in table]
        for rec in placed:
            if emit is not None:
                emit(rec)
        if not one:
            return placed
    if one:
        rec = prediction_record(the_law, q, accuracy, acc_map,
                                where="options" if emit else "query")
        if emit is not None:
            emit(rec)
        return rec
    source = queries or "-"
    out = []
    for rec in iter_predictions(the_law, source, fid=q.get("fid"), omega_n=q.get("omega_n"),
                                accuracy=accuracy, acc_map=acc_map):
        out.append(rec)
        if emit is not None:
            emit(rec)
    if not out:
        where = "stdin" if source == "-" else source
        raise AdvscaleError(f"no queries in {where}; {NO_QUERY.split(': ', 1)[1]}",
                            field=NO_QUERY_FIELDS)
    return out
