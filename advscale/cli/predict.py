"""``advscale predict``: use a fitted or published law; one ``prediction`` record per query."""

from __future__ import annotations

import sys

import typer

from advscale import api
from advscale.cli.common import handle_errors
from advscale.cli.logs import warn
from advscale.errors import AdvscaleError
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
        f"{api.PAPER_FLOPS_PER_PARAM_SAMPLE:g}"),
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
    source = queries or "-"
    option_query = any(v is not None for v in (n, d, flops, target_accuracy, target_loss, x))
    placing = published or runs is not None
    if not option_query and not placing and source == "-" and law != "-" \
            and sys.stdin.isatty():
        raise AdvscaleError(NO_QUERY)
    warned: set[str] = set()
    api.predict(law, accuracy=accuracy, acc_map=acc_map, flops_per_param_sample=k,
                queries=None if option_query else source, n=n, d=d, fid=fid, flops=flops,
                omega_n=omega_n, x=x, target_accuracy=target_accuracy, target_loss=target_loss,
                published=published, runs=runs, emit=lambda rec: _emit(rec, warned))


SAME_COST_CO2 = ("note: cost_usd and co2_kg are equal: Debenedetti et al. "
                 "(2024, section 3.2) give one power law (C, alpha) for both electricity cost "
                 "(USD) and CO2 (kg)")

NO_QUERY = ("no query: give --n/--d (--fid), --flops, --target-accuracy or --target-loss, "
            "--queries FILE, or pipe JSONL queries on stdin")


def _emit(rec: dict, warned: set[str]) -> None:
    """Write the record to stdout, and each distinct warning once to stderr."""
    same = "cost_usd" in rec and rec.get("cost_usd") == rec.get("co2_kg")
    for w in (rec.get("fid_warning"), rec.get("extrapolation_warning"), rec.get("degenerate"),
              SAME_COST_CO2 if same else None):
        if w and w not in warned:
            warned.add(w)
            warn(w)
    write_record(rec)
