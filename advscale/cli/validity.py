"""``advscale validity``: the human study of invalid adversarial images (serve, rate, score).

A thin adapter over :func:`advscale.api.validity`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from advscale import api
from advscale.cli.common import err, handle_errors
from advscale.cli.help import App
from advscale.cli.shared import common
from advscale.records import write_record

app = App(
    help="Are adversarial images still their class? Rate them (web page or a command) and score "
    "them with the rule of Bartoldson et al. 2024, appendix G (docs/validity.md).",
    no_args_is_help=True,
)


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
    quiet: bool = common("quiet"),
) -> None:
    """Serve the rating web page; every answer is appended to the rater's labels file."""
    api.validity_study("serve", adv, port=port, host=host, batch=batch, out=out, rater=rater,
                 join=join, include_unfooled=include_unfooled, scale=scale, quiet=quiet,
                 announce=lambda line: err(f"advscale validity: {line}"))


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
    force: bool = common("force"),
) -> None:
    """Judge each image valid/deceptive/ambiguous; per-image records, then a summary (JSONL)."""
    recs = api.validity_study("score", labels, adv, n_eval=n_eval, min_correct=min_correct,
                        min_raters=min_raters, majority_of=majority_of,
                        summary_only=summary_only, output=None if out == "-" else out,
                        force=force)
    if out == "-":
        for r in recs:
            write_record(r)


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
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(f"rating as {rater}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        write_record(api.validity_study(
            "rate", adv, command, rater, out=out, per_image=per_image, versions=versions,
            scale=scale, timeout_s=timeout_s, on_bad_reply=on_bad_reply,
            prompt_file=prompt_file, include_unfooled=include_unfooled, progress=progress))
