"""``advscale validity``: the human study of invalid adversarial images (serve, rate, score)."""

from __future__ import annotations

from pathlib import Path

import typer

from advscale.cli.common import err, handle_errors
from advscale.cli.help import App
from advscale.errors import AdvscaleError
from advscale.records import write_record
from advscale.validity.records import rate_record, score_records

app = App(
    help="Are adversarial images still their class? Rate them (web page or a command) and score "
    "them with the rule of Bartoldson et al. 2024, appendix G (docs/validity.md).",
    no_args_is_help=True,
)


def _default_out(adv: Path) -> Path:
    return adv.with_suffix(".labels")


@app.command("serve")
@handle_errors
def serve_cmd(
    adv: Path = typer.Argument(..., help="Adversarial-image HDF5 file (attack --save-adv)."),
    port: int = typer.Option(8000, help="TCP port (0 picks a free one)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; loopback by default."),
    batch: int = typer.Option(100, help="Image pairs per tab."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Labels directory, one DIR/<rater>.jsonl per rater.",
        show_default="ADV with suffix .labels",
    ),
    rater: list[str] = typer.Option(
        [], "--rater", help="Rater id to print a personal link for (repeatable)."
    ),
    join: bool = typer.Option(True, "--join/--no-join", help="Let new raters pick an id."),
    include_unfooled: bool = typer.Option(
        False, help="Rate every row, not only the images that fooled the model."
    ),
    scale: int = typer.Option(8, help="Nearest-neighbour upscaling factor of the images."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No request log on stderr."),
) -> None:
    """Serve the rating web page; every answer is appended to the rater's labels file."""
    import signal

    from advscale.validity.advset import load_adv_set
    from advscale.validity.server import RatingApp, make_server, rater_link, server_url

    out = out or _default_out(adv)
    data = load_adv_set(adv)
    app_ = RatingApp(data, out, batch=batch, raters=rater, allow_join=join,
                     include_unfooled=include_unfooled, scale=scale, log=err)
    httpd = make_server(app_, host, port, quiet=quiet)
    url = server_url(httpd)
    if host not in ("127.0.0.1", "localhost"):
        err(f"advscale validity: warning: listening on {host}, reachable beyond this machine")
    n = len(app_.items)
    err(f"advscale validity: {n} image pairs of {adv} in {-(-n // batch)} tab(s) of {batch}; "
        f"labels in {out}/")
    err(f"advscale validity: listening on {url}")
    for r in rater:
        err(f"  {r}: {rater_link(url, r, app_.token(r))}")
    if join:
        err(f"  new raters: open {url} and choose an id")
    for r in sorted(set(app_.store.raters()) - set(rater)):
        err(f"  {r} (resuming): {rater_link(url, r, app_.token(r))}")
    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        err("advscale validity: stopped; every answer given is saved")
    finally:
        httpd.server_close()
        app_.close()


@app.command("score")
@handle_errors
def score_cmd(
    labels: list[Path] = typer.Argument(..., help="Labels files or directories of them."),
    adv: Path = typer.Option(..., "--adv", help="The adversarial-image file they label."),
    n_eval: int = typer.Option(
        None, help="Test images attacked.",
        show_default="from ADV, else its number of rows"
    ),
    min_correct: int = typer.Option(2, help="Correct raters that make an image valid."),
    min_raters: int = typer.Option(
        1, help="Raters an image needs before it can be called invalid (else 'unrated')."
    ),
    majority_of: str = typer.Option(
        "humans", help="Pool whose majority makes an invalid image deceptive: humans|raters."
    ),
    summary_only: bool = typer.Option(False, help="Write only the summary record."),
    out: str = typer.Option("-", "--out", "-o", help="Output JSONL file ('-' = stdout)."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
) -> None:
    """Judge each image valid/deceptive/ambiguous; per-image records, then a summary (JSONL)."""
    from advscale.core.fileio import atomic_write
    from advscale.core.outputs import check_output
    from advscale.validity.advset import load_adv_set
    from advscale.validity.scoring import load_labels, score_labels

    check_output(out, [adv, *labels], force=force)
    data = load_adv_set(adv, images=False)
    records = load_labels(labels, log=err)
    scores = score_labels(records, data, n_eval=n_eval, min_correct=min_correct,
                          min_raters=min_raters, majority_of=majority_of)
    config = {"labels": [str(p) for p in labels], "adv": str(adv), "n_eval": n_eval,
              "min_correct": min_correct, "min_raters": min_raters, "majority_of": majority_of}
    recs = score_records(scores.images, scores.summary, config, summary_only=summary_only)
    if out == "-":
        for r in recs:
            write_record(r)
    else:
        with atomic_write(out) as f:
            for r in recs:
                write_record(r, f)
    s = scores.summary
    err(f"advscale validity: {s['n_fooled']} fooling images: {s['n_valid']} valid, "
        f"{s['n_invalid']} invalid ({s['n_deceptive']} deceptive, {s['n_ambiguous']} ambiguous), "
        f"{s['n_unrated']} unrated; invalid {_pct(s['invalid_frac_rated'])} of the rated, "
        f"{_pct(s['invalid_frac'])} of all; robust acc {s['robust_acc']:.4f} -> "
        f"{s['robust_acc_valid']:.4f} without invalid images")
    if s["n_unrated"]:
        err(f"advscale validity: warning: {s['n_unrated']} images have fewer than "
            f"{min_raters} rater(s) and are neither valid nor removed")


@app.command("rate")
@handle_errors
def rate_cmd(
    adv: Path = typer.Argument(..., help="Adversarial-image HDF5 file (attack --save-adv)."),
    command: str = typer.Option(
        ..., "--command", help="Rater command: reads a JSON line with a base64 PNG, replies "
        "'class, confidence' (docs/validity.md)."
    ),
    rater: str = typer.Option(..., "--rater", help="Rater id, e.g. gpt4 (names its file)."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Labels directory.", show_default="ADV with suffix .labels"
    ),
    per_image: bool = typer.Option(
        False, help="Start the command once per image (its whole stdout is the reply)."
    ),
    versions: str = typer.Option("adv", help="Images to rate: adv, clean or adv,clean."),
    scale: int = typer.Option(1, help="Nearest-neighbour upscaling of the PNG sent."),
    timeout_s: float = typer.Option(300.0, help="Seconds to wait for each reply."),
    on_bad_reply: str = typer.Option(
        "error", help="A reply not in the format: error (stop), abstain (store, counted wrong) "
        "or skip (leave for a later run)."
    ),
    prompt_file: Path = typer.Option(
        None, help="Text file replacing the paper's GPT-4 prompt sent with each image."
    ),
    include_unfooled: bool = typer.Option(False, help="Rate every row, not only fooling ones."),
) -> None:
    """Let a command (e.g. a vision-language model you run) rate the images as a machine rater."""
    from rich.progress import Progress

    from advscale.validity.advset import load_adv_set
    from advscale.validity.machine_rater import PROMPT, CommandRater, rate_images
    from advscale.validity.store import LabelStore, check_rater_id

    check_rater_id(rater)
    vers = [v.strip() for v in versions.split(",") if v.strip()]
    if not vers or set(vers) - {"adv", "clean"}:
        raise AdvscaleError(f"--versions {versions!r} must be adv, clean or adv,clean")
    prompt = PROMPT
    if prompt_file is not None:
        if not prompt_file.is_file():
            raise AdvscaleError(f"{prompt_file}: no such prompt file")
        prompt = prompt_file.read_text(encoding="utf-8").strip()
    out = out or _default_out(adv)
    data = load_adv_set(adv)
    rows = data.study_rows(include_unfooled)
    console = _stderr_console()
    with LabelStore(out, data, rows=rows, kind="machine", log=err) as store, \
            CommandRater(command, per_image=per_image, timeout_s=timeout_s) as asker, \
            Progress(transient=True, console=console) as bar:
        task = bar.add_task(f"rating as {rater}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        counts = rate_images(data, store, rater, asker.ask, versions=vers, rows=rows,
                             scale=scale, prompt=prompt, on_bad_reply=on_bad_reply, log=err,
                             progress=progress)
    write_record(rate_record(rater, str(adv), data.fingerprint, str(out), vers, counts, config={
        "command": command, "per_image": per_image, "scale": scale, "versions": vers,
        "on_bad_reply": on_bad_reply, "prompt_file": str(prompt_file) if prompt_file else None}))
    err(f"advscale validity: {rater} rated {counts['n_rated']} images now "
        f"({counts['n_already']} done before, {counts['n_bad_reply']} bad replies); labels in "
        f"{out}/{rater}.jsonl")


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _pct(frac: float | None) -> str:
    """A fraction as a percentage, or an em dash when there is none yet."""
    return "\u2014" if frac is None else f"{100 * frac:.1f}%"
