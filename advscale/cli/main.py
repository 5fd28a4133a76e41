"""The ``advscale`` entry point: a typer app that registers one module per subcommand.

Each subcommand lives in ``advscale/cli/<name>.py`` and calls the library; none of them imports
torch at module level, so ``advscale --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import typer

try:  # typer >= 0.20 vendors click as typer._click; older typer uses click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

from advscale.errors import AdvscaleError

try:  # a module named in $ADVSCALE_ATTACK_MODULES / $ADVSCALE_LAW_MODULES may fail to import
    from advscale.cli import attack as attack_cmd
    from advscale.cli import count_flops as count_flops_cmd
    from advscale.cli import data as data_cmd
    from advscale.cli import energy as energy_cmd
    from advscale.cli import fit as fit_cmd
    from advscale.cli import gen_synthetic as gen_synthetic_cmd
    from advscale.cli import model as model_cmd
    from advscale.cli import predict as predict_cmd
    from advscale.cli import records as records_cmd
    from advscale.cli import report as report_cmd
    from advscale.cli import train as train_cmd
    from advscale.cli import validity as validity_cmd
except AdvscaleError as _e:
    sys.stderr.write(f"advscale: error: {_e}\n")
    raise SystemExit(2) from None

from advscale.cli.common import REPORTED, error_message, fail, guard_stdout, stdout_failure
from advscale.cli.help import App
from advscale.version import __version__

app = App(
    name="advscale",
    help="Scaling laws for adversarial robustness: data, train, attack, FLOPs, energy, fit, "
    "predict. stdout carries data (JSONL); progress and logs go to stderr. Shell completion: "
    "advscale --install-completion.",
    no_args_is_help=True,
    add_completion=True,
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
app.command("train", short_help="Adversarially train by samples seen; train.eval records.")(
    train_cmd.train)
app.command("attack", short_help="AutoAttack or PGD on checkpoints; attack records.")(
    attack_cmd.attack)
app.command("count-flops", short_help="FLOPs of a model and recipe; fill records' FLOPs.")(
    count_flops_cmd.count_flops)
app.command("energy", context_settings=energy_cmd.CONTEXT,
            short_help="Energy, cost and CO2 of a command, a power log or FLOPs.")(
    energy_cmd.energy)
app.command("fit", short_help="Fit a scaling law (approaches 1-3, power law, GBR).")(
    fit_cmd.fit_cmd)
app.command("predict", short_help="Predict with a fitted or published law; N*, D*, loss.")(
    predict_cmd.predict_cmd)
app.command("report", short_help="Figures and one HTML page from records and laws.")(
    report_cmd.report)
app.add_typer(records_cmd.app, name="records")
app.add_typer(validity_cmd.app, name="validity")
app.add_typer(model_cmd.app, name="model")

def main() -> None:
    """Console-script entry point: the one error boundary around the whole app.

    Usage errors (an unknown option, a missing argument) and errors raised outside a command
    body come out as one ``advscale: error: ...`` line with a non-zero exit, like errors inside
    commands (:func:`advscale.cli.common.handle_errors`).
    """
    REPORTED.clear()
    guard_stdout()
    try:
        rv = app(standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as e:
        e.show()
        sys.exit(e.exit_code)
    except click_exceptions.ClickException as e:
        fail(e.format_message(), e.exit_code)
        sys.exit(e.exit_code)
    except SystemExit:  # click's own exit on a broken pipe (--help, --version)
        if (closed := stdout_failure(BrokenPipeError())) is not None:
            sys.exit(closed.exit_code)
        raise
    except typer.Abort:
        fail("interrupted", 130)
        _exit(130)
    except KeyboardInterrupt:
        fail("interrupted", 130)
        _exit(130)
    except (AdvscaleError, OSError, UnicodeError, RecursionError, MemoryError) as e:
        if (closed := stdout_failure(e)) is not None:
            sys.exit(closed.exit_code)
        code = getattr(e, "exit_code", 2)
        fail(error_message(e) or str(e), code)
        sys.exit(code)
    _exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


def _exit(code: int) -> None:
    """Exit with ``code``; an interrupt that click turned into a silent 130 gets its line, and
    a Ctrl-C during the exit itself changes nothing (the result is already reported)."""
    if code == 130 and not REPORTED:
        fail("interrupted", 130)
    try:  # data still buffered for a reader that went away: said now, not at shutdown
        sys.stdout.flush()
    except (AdvscaleError, OSError) as e:
        closed = stdout_failure(e)
        code = closed.exit_code if closed is not None else code
    if "pytest" not in sys.modules:  # in-process test runs keep their Ctrl-C
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if code == 130:  # a Ctrl-C inside an extension module's import can leave CPython set
            with contextlib.suppress(Exception):  # to kill itself by SIGINT at exit: leave now
                sys.stderr.flush()
            os._exit(130)
    sys.exit(code)
