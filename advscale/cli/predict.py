"""``advscale predict``: use a fitted or published law; one ``prediction`` record per query."""

from __future__ import annotations

import sys
from collections.abc import Iterable

import typer

from advscale.cli.common import err, handle_errors
from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE
from advscale.errors import AdvscaleError
from advscale.laws.law import Law
from advscale.laws.predict import iter_predictions, prediction_record
from advscale.laws.published import builtin_runs, load_runs, placement_record
from advscale.records import write_record


@handle_errors
def predict_cmd(
    law: str = typer.Option(
        ..., "--law", "-l",
        help="A fit record file, '-' (stdin), or a preset: bartoldson2024-approach2, "
        "bartoldson2024-approach3 (the authors' notebook's constants), "
        "bartoldson2024-approach2-rounded, bartoldson2024-approach3-rounded (the paper's), "
        "bartoldson2024-approach2-all, debenedetti2024."),
    n: float = typer.Option(None, "--n", help="Model parameters N."),
    d: float = typer.Option(None, "--d", help="Training samples seen D."),
    fid: float = typer.Option(None, "--fid", help="FID of the synthetic data (0: ideal data)."),
    flops: float = typer.Option(None, "--flops",
                                help="Training budget in FLOPs: compute-optimal N*, D*, L*."),
    omega_n: float = typer.Option(None, "--omega-n",
                                  help="Model size as a multiple of N* (Eq. 6 trade-off)."),
    target_accuracy: float = typer.Option(
        None, "--target-accuracy",
        help="Inverse: the least FLOPs reaching this accuracy (a fraction), with N*, D* there; "
        "or 'unreachable' with the asymptote."),
    target_loss: float = typer.Option(
        None, "--target-loss", help="Inverse: the least FLOPs reaching this (fitted) loss."),
    x: float = typer.Option(
        None, "--x", help="For a power law fitted with `fit --x FIELD`: the FIELD value (e.g. "
        "cost_usd) instead of --flops."),
    k: float = typer.Option(
        None, "--flops-per-param-sample",
        help="FLOPs = K*N*D constant (e.g. count-flops' flops_per_param_sample).",
        show_default=f"the law's own (from its records), else the paper's "
        f"{PAPER_FLOPS_PER_PARAM_SAMPLE:g}"),
    accuracy: bool = typer.Option(False, "--accuracy",
                                  help="Also give accuracies (loss->accuracy regression)."),
    acc_map: str = typer.Option("auto", "--acc-map",
                                help="auto (the law's own regression if any), paper or law."),
    queries: str = typer.Option(
        None, "--queries",
        help="JSONL queries (n, d, fid, flops, omega_n per line; '-': stdin).",
        show_default="stdin when no --n/--d/--flops is given"),
    published: bool = typer.Option(
        False, "--published",
        help="Place the published runs (Bartoldson, Wang, ...) on the law: loss, accuracy, "
        "N/N*, Eq. 6 overhead, FLOPs an optimal run needs (--fid overrides their FIDs)."),
    runs: str = typer.Option(
        None, "--runs",
        help="Place your own runs too: a JSONL or CSV file with name, params, samples_seen "
        "[, fid, aa_acc, model, source]."),
) -> None:
    """Predict loss/accuracy, compute-optimal N*, D* (with Table 3's a, b), the asymptote and
    the Eq. 6 trade-off.

    One query from --n/--d (--fid) and/or --flops, or JSONL queries on stdin, one record each.

    Queries have n, d, fid, flops, omega_n, target_accuracy, target_loss fields (train.eval
    records work: params, samples_seen).

    --fid and --omega-n are defaults for stdin queries. Warnings (FID metric, extrapolation
    past 10x the fitted ranges, degenerate N*/D*) go to stderr. See docs/laws.md.
    """
    if acc_map not in ("auto", "paper", "law"):
        raise AdvscaleError(f"--acc-map {acc_map!r}: choose auto, paper or law")
    option_query = any(v is not None for v in (n, d, flops, target_accuracy, target_loss, x))
    if law == "-" and not option_query and queries in (None, "-"):
        raise AdvscaleError("--law - reads the law from stdin: give the query as options "
                            "(--n/--d/--fid, --flops) or --queries FILE")
    the_law = Law.load(law)
    if k is not None:
        the_law.set_flops_per_param_sample(k)
    if (published or runs) and not _place(the_law, published, runs, fid, acc_map, option_query):
        return
    if option_query:
        q = {"n": n, "d": d, "fid": fid, "flops": flops, "omega_n": omega_n, "x": x,
             "target_accuracy": target_accuracy, "target_loss": target_loss}
        _emit([prediction_record(the_law, q, accuracy, acc_map, where="options")])
    else:
        source = queries or "-"
        if source == "-" and sys.stdin.isatty():
            raise AdvscaleError(NO_QUERY)
        done = _emit(iter_predictions(the_law, source, sys.stdin, fid=fid, omega_n=omega_n,
                                      accuracy=accuracy, acc_map=acc_map))
        if not done:
            where = "stdin" if source == "-" else source
            raise AdvscaleError(f"no queries in {where}; {NO_QUERY.split(': ', 1)[1]}")


def _place(law: Law, published: bool, runs: str | None, fid: float | None, acc_map: str,
           more: bool) -> bool:
    """Emit one placement per published (and own) run; whether queries follow (``more``)."""
    table = (builtin_runs() if published else []) + (load_runs(runs) if runs else [])
    _emit([placement_record(law, r, fid, acc_map) for r in table])
    return more


SAME_COST_CO2 = ("advscale predict: note: cost_usd and co2_kg are equal: Debenedetti et al. "
                 "(2024, section 3.2) give one power law (C, alpha) for both electricity cost "
                 "(USD) and CO2 (kg)")

NO_QUERY = ("no query: give --n/--d (--fid), --flops, --target-accuracy or --target-loss, "
            "--queries FILE, or pipe JSONL queries on stdin")


def _emit(records: Iterable[dict]) -> int:
    """Write each record to stdout, and each distinct warning once to stderr; returns the
    number written."""
    warned: set[str] = set()
    count = 0
    for rec in records:
        count += 1
        same = "cost_usd" in rec and rec.get("cost_usd") == rec.get("co2_kg")
        notes = {"also": SAME_COST_CO2 if same else None}
        for key in ("fid_warning", "extrapolation_warning", "degenerate", "also"):
            w = rec.get(key) if key != "also" else notes[key]
            if w and w not in warned:
                warned.add(w)
                err(w)
        write_record(rec)
    return count
