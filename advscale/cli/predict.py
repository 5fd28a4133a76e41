"""``advscale predict``: use a fitted or published law; one ``prediction`` record per query."""

from __future__ import annotations

import typer

from advscale.cli.common import err, handle_errors
from advscale.errors import AdvscaleError


@handle_errors
def predict_cmd(
    law: str = typer.Option(
        ..., "--law", "-l",
        help="A fit record file, '-' (stdin), or a preset: bartoldson2024-approach2, "
        "bartoldson2024-approach2-all, bartoldson2024-approach3, debenedetti2024."),
    n: float = typer.Option(None, "--n", help="Model parameters N."),
    d: float = typer.Option(None, "--d", help="Training samples seen D."),
    fid: float = typer.Option(None, "--fid", help="FID of the synthetic data (0: ideal data)."),
    flops: float = typer.Option(None, "--flops",
                                help="Training budget in FLOPs: compute-optimal N*, D*, L*."),
    omega_n: float = typer.Option(None, "--omega-n",
                                  help="Model size as a multiple of N* (Eq. 6 trade-off)."),
    k: float = typer.Option(
        None, "--flops-per-param-sample",
        help="FLOPs = K*N*D constant (e.g. count-flops' flops_per_param_sample); default: the "
        "law's own (from its records), else the paper's 7822."),
    accuracy: bool = typer.Option(False, "--accuracy",
                                  help="Also give accuracies (loss->accuracy regression)."),
    acc_map: str = typer.Option("auto", "--acc-map",
                                help="auto (the law's own regression if any), paper or law."),
    queries: str = typer.Option(
        None, "--queries",
        help="JSONL queries (n, d, fid, flops, omega_n per line); default stdin when no "
        "--n/--d/--flops is given."),
) -> None:
    """Predict loss/accuracy, compute-optimal N*, D*, the asymptote and the Eq. 6 trade-off.

    One query from --n/--d (--fid) and/or --flops, or JSONL queries on stdin, one record each.

    Queries have n, d, fid, flops, omega_n fields (train.eval records work: params, samples_seen).

    --fid and --omega-n are defaults for stdin queries. See docs/laws.md.
    """
    import sys

    from advscale.laws.law import Law
    from advscale.laws.predict import predict_one
    from advscale.records import make_record, write_record

    if acc_map not in ("auto", "paper", "law"):
        raise AdvscaleError(f"--acc-map {acc_map!r}: choose auto, paper or law")
    option_query = any(v is not None for v in (n, d, flops))
    if law == "-" and not option_query and queries in (None, "-"):
        raise AdvscaleError("--law - reads the law from stdin: give the query as options "
                            "(--n/--d/--fid, --flops) or --queries FILE")
    the_law = Law.load(law)
    if k is not None:
        if not k > 0:
            raise AdvscaleError(f"--flops-per-param-sample must be > 0, got {k!r}")
        the_law.k = float(k)
    warned: set[str] = set()

    def emit(payload: dict) -> None:
        w = payload.get("fid_warning")
        if w and w not in warned:
            warned.add(w)
            err(w)
        write_record(make_record("prediction", payload, config=config))

    config = {"law": law, "accuracy": accuracy, "acc_map": acc_map,
              "flops_per_param_sample": k}
    if option_query:
        q = {"n": n, "d": d, "fid": fid, "flops": flops, "omega_n": omega_n}
        emit(predict_one(the_law, q, accuracy, acc_map, where="options"))
        return
    from advscale.laws.predict import iter_queries

    for where, q in iter_queries(queries or "-", stdin=sys.stdin):
        if fid is not None and q.get("fid") is None and q.get("FID") is None:
            q["fid"] = fid
        if omega_n is not None and q.get("omega_n") is None:
            q["omega_n"] = omega_n
        emit(predict_one(the_law, q, accuracy, acc_map, where=where))
