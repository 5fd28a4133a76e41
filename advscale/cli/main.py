"""The ``advscale`` entry point: a typer app that registers one module per subcommand.

Each subcommand lives in ``advscale/cli/<name>.py`` and calls the library; none of them imports
torch at module level, so ``advscale --help`` starts fast.
"""

from __future__ import annotations

import sys

import typer

from advscale.cli import attack as attack_cmd
from advscale.cli import count_flops as count_flops_cmd
from advscale.cli import data as data_cmd
from advscale.cli import energy as energy_cmd
from advscale.cli import fit as fit_cmd
from advscale.cli import gen_synthetic as gen_synthetic_cmd
from advscale.cli import model as model_cmd
from advscale.cli import predict as predict_cmd
from advscale.cli import report as report_cmd
from advscale.cli import train as train_cmd
from advscale.cli import validity as validity_cmd
from advscale.cli.common import fail
from advscale.version import __version__

app = typer.Typer(
    name="advscale",
    help="Scaling laws for adversarial robustness: data, train, attack, FLOPs, energy, fit, "
    "predict. stdout carries data (JSONL); progress and logs go to stderr.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"advscale {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """advscale: scaling laws for adversarial robustness."""


# In pipeline order: data → synthetic data → training → evaluation → cost → laws → report.
app.add_typer(data_cmd.app, name="data")
app.add_typer(gen_synthetic_cmd.app, name="gen-synthetic")
app.command("train")(train_cmd.train)
app.command("attack")(attack_cmd.attack)
app.command("count-flops")(count_flops_cmd.count_flops)
app.command("energy", context_settings=energy_cmd.CONTEXT)(energy_cmd.energy)
app.command("fit")(fit_cmd.fit_cmd)
app.command("predict")(predict_cmd.predict_cmd)
app.command("report")(report_cmd.report)
app.add_typer(validity_cmd.app, name="validity")
app.add_typer(model_cmd.app, name="model")

def main() -> None:
    """Console-script entry point."""
    from advscale.errors import AdvscaleError

    try:
        app()
    except AdvscaleError as e:  # raised outside a command body (e.g. in a callback)
        fail(str(e), e.exit_code)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
        sys.exit(130)
