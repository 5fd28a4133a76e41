"""The rendered ``--help`` of every command and subcommand, at 80 columns: plain and complete.

No type markers (``<str>``, ``<list[Path]>``, ``{checkpoints}...``) or boxes, every option with a
default shows it as ``[default: …]`` (never in prose), and descriptions get at least 40 columns.
"""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from advscale.cli.help import default_text
from advscale.cli.main import app

MARKERS = re.compile(r"<(?:str|int|float|bool|path|text|integer|list\[[^\]]*\]|tuple[^>]*)>"
                     r"|\{\w+\}\.\.\.|[╭╰│─]", re.IGNORECASE)


def _commands() -> list[tuple[tuple[str, ...], object]]:
    out = []

    def walk(cmd: object, path: tuple[str, ...]) -> None:
        out.append((path, cmd))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return out


COMMANDS = _commands()


def _render(path: tuple[str, ...]) -> str:
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert res.exit_code == 0, res.output
    return res.output


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"", "train", "fit", "data import", "validity serve", "gen-synthetic fid"} <= names
    assert len(names) >= 25


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) or "advscale" for p, _ in
                                                     COMMANDS])
def test_help_is_plain_and_complete(path: tuple[str, ...], cmd: object) -> None:
    text = _render(path)
    assert text.startswith("Usage: advscale"), text[:200]
    assert not MARKERS.findall(text), MARKERS.findall(text)
    assert not re.search(r"\(default\b", text, re.IGNORECASE), "a default in prose"
    assert not re.search(r"\w \.(\s|$)", text), "stray space before a full stop"
    flat = " ".join(text.split())
    for param in cmd.params:  # type: ignore[attr-defined]
        if param.hidden or param.name == "help":
            continue
        has_default = param.default not in (None, False, [], ()) and not callable(param.default)
        shown = default_text(param)
        if has_default:
            assert shown is not None, f"{param.name}: default {param.default!r} not shown"
        if shown is not None:
            tag = " ".join(f"[default: {shown}]".split())
            assert tag in flat, f"--{param.name}: {tag} missing"
    for line in text.splitlines():
        assert len(line) <= 80 or " " not in line.strip(), f"too wide: {line!r}"
        m = re.match(r"^(  )(\S.*?)( {2,})(\S.*)$", line)  # a row: "  --name X  text"
        start = len(line) - len(line.lstrip()) if m is None else len(m[1] + m[2] + m[3])
        if line.strip():
            assert start <= 40, f"description squeezed to {80 - start} columns: {line!r}"


def test_defaults_use_one_format_everywhere() -> None:
    text = _render(("train",)) + _render(("attack",)) + _render(("validity", "score"))
    assert "[default: 5]" in text  # TRADES beta, once given in prose
    assert "[default: 40 for PGD, 100 for apgd-ce]" in " ".join(text.split())
    assert "[default: from ADV, else its number of rows]" in " ".join(text.split())


def test_root_help_offers_completion() -> None:
    text = _render(())
    assert "--install-completion" in text and "--show-completion" in text


def test_no_show_default_restates_a_default():
    """Defaults are written once, in the request dataclasses' fields: a hand-written
    ``show_default`` only describes a computed default (``"all"``, ``"D/10"``), never a
    number, a fraction or a flag that a field already holds."""
    import re
    from pathlib import Path

    cli = Path(__file__).resolve().parents[1] / "advscale" / "cli"
    literal = re.compile(r"^(-?[\d.]+(e-?\d+)?|\d+/\d+|--[\w-]+)$")
    for path in sorted(cli.glob("*.py")):
        for text in re.findall(r'show_default\s*=\s*f?"([^"]*)"', path.read_text()):
            assert not literal.match(text), f"{path.name}: show_default={text!r} restates a default"


def test_options_are_generated_from_request_fields():
    """A request field's flag, help with unit, shown default, metavar and named parser."""
    from dataclasses import dataclass

    from typer.testing import CliRunner

    from advscale.api.options import option
    from advscale.cli.common import handle_errors
    from advscale.cli.help import App
    from advscale.cli.requests import request_command

    @dataclass
    class Demo:
        eps: float = option(8 / 255, help="Radius.", unit="[0,1] pixel units",
                            parse="fraction", default_text="8/255")
        samples: int = option(0, help="Samples D.", parse="count", default_text="")
        model_kwargs: dict = option(default_factory=dict, parse="kwargs", help="Model keywords.")
        fast: bool = option(True, help="Go fast.")
        n_boot: int = option(1000, flag="--bootstrap", short="-B", help="Replicates.")

    seen = {}
    app = App()

    @app.command()
    @handle_errors
    @request_command(Demo)
    def cmd(*, given: dict) -> None:
        seen.update(given)

    r = CliRunner().invoke(app, ["--help"])
    text = " ".join(r.output.split())
    assert "Radius, in [0,1] pixel units. [default: 8/255]" in text
    assert "--model-kwargs KEY=VALUE,..." in text and "--fast / --no-fast" in text
    assert "-B, --bootstrap" in text and "[default: 1000]" in text
    r = CliRunner().invoke(app, ["--eps", "4/255", "--samples", "5e3", "--model-kwargs",
                                 "img_size=32,patch_size=4,act=gelu,dims=[1,2]", "--no-fast",
                                 "-B", "7"])
    assert r.exit_code == 0, r.output
    assert seen == {"eps": 4 / 255, "samples": 5000, "fast": False, "n_boot": 7,
                    "model_kwargs": {"img_size": 32, "patch_size": 4, "act": "gelu",
                                     "dims": [1, 2]}}
    r = CliRunner().invoke(app, ["--samples", "lots"])
    assert r.exit_code == 2 and "--samples 'lots' is not a number" in r.output
