"""Plain, compact ``--help``: one line per option, defaults as ``[default: …]``, no type markers.

Typer's rich help draws boxed panels with ``<str>``-style type markers and squeezes the
descriptions into a narrow column at 80 columns; these command classes render the help as plain
text instead (in the spirit of sqlite-utils and argparse). Every command and group of the app is
built with them through :class:`App`.
"""

from __future__ import annotations

import textwrap
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

_METAVARS = {"int": "N", "float": "X", "Path": "PATH", "str": "TEXT", "bool": ""}
"""Placeholders shown after an option that takes a value, by the parameter's Python type."""

LEFT_COLUMN = 30
"""Widest option column; longer names put their description on the next line."""

MIN_DESCRIPTION = 40
"""The description column is never narrower than this, whatever the terminal's width."""

_NBSP = "\xa0"


def _bare(param: Any) -> str:
    try:
        text = param.bare_type()
    except (AttributeError, AssertionError, TypeError):
        return "str"
    while text.startswith("list[") and text.endswith("]"):
        text = text[5:-1]
    return text


def metavar(param: Any) -> str:
    """The placeholder after an option (N, X, PATH, TEXT, or the option's own metavar)."""
    if getattr(param, "metavar", None):
        return str(param.metavar)
    return _METAVARS.get(_bare(param), "VALUE")


def default_text(param: Any) -> str | None:
    """What ``[default: …]`` shows for a parameter, or None when it has no default to show."""
    shown = getattr(param, "show_default", None)
    if isinstance(shown, str):
        return shown
    if shown is False:
        return None
    value = param.default
    if callable(value) or value is None:
        return None
    if getattr(param, "is_bool_flag", False):
        if getattr(param, "secondary_opts", None):
            return (param.opts if value else param.secondary_opts)[-1]
        return None if not value else "on"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else None
    return str(value)


def option_names(param: Any) -> str:
    """``-a, --approach N`` or ``--join / --no-join``: the left column of an option."""
    short = sorted((o for o in param.opts if not o.startswith("--")), key=len)
    long_ = [o for o in param.opts if o.startswith("--")]
    names = ", ".join([*short, *long_])
    if param.secondary_opts:
        names += " / " + ", ".join(param.secondary_opts)
    if not getattr(param, "is_flag", False) and not getattr(param, "count", False):
        mv = metavar(param)
        names += f" {mv}" if mv else ""
    return names


def describe(param: Any) -> str:
    """The description column: the help, then ``[default: …]`` or ``[required]``."""
    text = " ".join((param.help or "").split())
    extra = default_text(param)
    tag = ""
    if extra is not None:  # a short tag is kept on one line
        tag = f"[default: {extra}]"
        tag = tag.replace(" ", _NBSP) if len(tag) <= 32 else tag
    if param.required and not tag:
        tag = "[required]"
    return f"{text}  {tag}".strip() if tag else text


def argument_name(param: Any) -> str:
    """An argument as the usage line and the Arguments section show it: ``FILES...``."""
    name = (param.metavar or param.name or "ARG").upper()
    return name + ("..." if param.nargs != 1 else "")


def sections(command: Any, ctx: Any) -> dict[str, list[tuple[str, str]]]:
    """Rows by section: Arguments, then Options or the options' own panels (e.g. train's)."""
    out: dict[str, list[tuple[str, str]]] = {"Arguments": []}
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            out["Arguments"].append((argument_name(param), describe(param)))
        else:
            title = getattr(param, "rich_help_panel", None) or "Options"
            out.setdefault(title, []).append((option_names(param), describe(param)))
    return out


def write_rows(formatter: Any, rows: list[tuple[str, str]]) -> None:
    """Two columns: names, then the description wrapped in a column of at least 40 characters.

    A ``[default: …]`` tag is never split across lines.
    """
    pad = " " * formatter.current_indent
    first = min(max(len(left) for left, _ in rows), LEFT_COLUMN)
    width = max(formatter.width - formatter.current_indent - first - 2, MIN_DESCRIPTION)
    for left, right in rows:
        lines = textwrap.wrap(right, width, break_on_hyphens=False, break_long_words=False)
        lines = [line.replace(_NBSP, " ") for line in lines] or [""]
        if len(left) <= first:
            formatter.write(f"{pad}{left:<{first}}  {lines[0]}".rstrip() + "\n")
            lines = lines[1:]
        else:
            formatter.write(f"{pad}{left}\n")
        for line in lines:
            formatter.write(f"{pad}{' ' * (first + 2)}{line}\n")


def write_params(command: Any, ctx: Any, formatter: Any) -> None:
    """The Arguments and Options sections, plain."""
    for title, rows in sections(command, ctx).items():
        if rows:
            with formatter.section(title):
                write_rows(formatter, rows)


def short_help(command: Any, limit: int) -> str:
    """A command's first paragraph, cut at a word to fit ``limit`` characters."""
    text = command.short_help or (command.help or "").strip().split("\n\n")[0]
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 10)].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def write_commands(group: Any, ctx: Any, formatter: Any) -> None:
    """The Commands section: each subcommand with its first paragraph."""
    names = [n for n in group.list_commands(ctx) if not group.get_command(ctx, n).hidden]
    if not names:
        return
    limit = max(formatter.width - formatter.current_indent - 2 - max(map(len, names)) - 2,
                MIN_DESCRIPTION)
    rows = [(n, short_help(group.get_command(ctx, n), limit)) for n in names]
    with formatter.section("Commands"):
        write_rows(formatter, rows)


def usage_pieces(command: Any, ctx: Any) -> list[str]:
    """``[OPTIONS] FILES...`` with arguments in capitals (optional ones in brackets)."""
    pieces = ["[OPTIONS]"]
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            name = argument_name(param)
            pieces.append(name if param.required else f"[{name}]")
    return pieces


class PlainCommand(TyperCommand):
    """A typer command whose ``--help`` is plain text (see the module docstring)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        write_params(self, ctx, formatter)
        self.format_epilog(ctx, formatter)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return usage_pieces(self, ctx)


class PlainGroup(TyperGroup):
    """A typer group whose ``--help`` is plain text, commands listed with their first line."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        write_params(self, ctx, formatter)
        write_commands(self, ctx, formatter)
        self.format_epilog(ctx, formatter)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*usage_pieces(self, ctx), "COMMAND [ARGS]..."]


class App(typer.Typer):
    """``typer.Typer`` with plain help for the group and every command registered on it."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", PlainGroup)
        kwargs.setdefault("rich_markup_mode", None)
        kwargs.setdefault("pretty_exceptions_enable", False)
        settings = {"help_option_names": ["-h", "--help"], **kwargs.pop("context_settings", {})}
        super().__init__(context_settings=settings, **kwargs)

    def command(self, name: str | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", PlainCommand)
        return super().command(name, **kwargs)
