"""Command-line options generated from a request dataclass's :func:`~advscale.core.options.option`
fields, so each setting's flag, help, unit and default are written once, in the field.

:func:`request_command` turns ``def cmd(out: Path = ..., *, given: dict)`` into a typer command
whose options are the command's own parameters followed by one option per field of the request
classes; the body receives the options the user gave (parsed with the field's named parser) in
``given``, and the dataclass supplies every default. Torch-free.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any

import typer

from advscale.api import options as opts

_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool,
                          "list[str]": list[str], "list[int]": list[int],
                          "list[float]": list[float]}


_METAVARS = {"fraction": "X", "count": "N", "kwargs": "KEY=VALUE,..."}
"""The value placeholder of an option with a named parser."""


def cli_type(f: dataclasses.Field, spec: opts.OptionSpec) -> Any:
    """The Python type typer parses a field's text into (``str`` for a named parser)."""
    text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    text = text.replace(" | None", "").replace("None | ", "").replace("Optional[", "")
    if spec.parse is not None:
        return list[str] if text.startswith("list[") else str
    if text not in _TYPES:
        raise TypeError(f"{f.name}: no command-line type for {f.type!r}; give it parse=")
    return _TYPES[text]


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def shown_default(f: dataclasses.Field, spec: opts.OptionSpec) -> str | bool:
    """What ``[default: …]`` shows: ``default_text``, else the field's default, else nothing."""
    if spec.default_text is not None:
        return spec.default_text or False
    value = _default_of(f)
    if value is None or value in ("", [], {}):
        return False
    if isinstance(value, bool):
        long_ = flag_names(f.name, spec)[0]
        return long_ if value else f"--no-{long_[2:]}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def flag_names(name: str, spec: opts.OptionSpec) -> list[str]:
    """The option's names: ``--eval-data``, ``-o``, or ``--augment/--no-augment``."""
    long_ = spec.flag or "--" + name.replace("_", "-")
    names = [long_]
    if spec.short:
        names.append(spec.short)
    return names


def help_text(spec: opts.OptionSpec) -> str:
    """The help with its unit: ``Training attack step, in [0,1] pixel units.``"""
    text = spec.help.strip()
    if spec.unit:
        text = f"{text.rstrip('.')}, in {spec.unit}."
    return text


def typer_option(f: dataclasses.Field, spec: opts.OptionSpec) -> tuple[Any, Any]:
    """``(type, typer.Option)`` for one field; the option's own default is None (not given)."""
    typ = cli_type(f, spec)
    names = flag_names(f.name, spec)
    if typ is bool and spec.negatable:
        long_ = names[0]
        names[0] = f"{long_}/--no-{long_[2:]}"
    kwargs: dict[str, Any] = {"help": help_text(spec), "show_default": shown_default(f, spec)}
    if spec.panel:
        kwargs["rich_help_panel"] = spec.panel
    if spec.metavar or spec.parse:
        kwargs["metavar"] = spec.metavar or _METAVARS[spec.parse]
    default: Any = None
    if typ is bool and not spec.negatable:
        default, kwargs["show_default"] = False, False
    return typ, typer.Option(default, *names, **kwargs)


def request_params(classes: Iterable[type], exclude: Iterable[str] = (),
                   include: Iterable[str] | None = None) -> list[inspect.Parameter]:
    """One keyword parameter per exposed field of ``classes`` (first declaration wins), only
    those named in ``include`` when given (names no class has are ignored)."""
    skip, params = set(exclude), []
    wanted = None if include is None else set(include)
    for cls in classes:
        for f, spec in opts.cli_fields(cls):
            if f.name in skip or (wanted is not None and f.name not in wanted):
                continue
            skip.add(f.name)
            if wanted is not None:  # a borrowed field goes to the command's own Options
                spec = dataclasses.replace(spec, panel=None)
            typ, option = typer_option(f, spec)
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                            default=option, annotation=typ))
    return params


def parse_given(classes: Iterable[type], values: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave (not None, not an unset flag), through their named parsers."""
    specs = {f.name: (f, spec) for cls in classes for f, spec in opts.cli_fields(cls)}
    given: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or (value is False and not specs[name][1].negatable):
            continue
        if isinstance(value, (list, tuple)):
            if not value:
                continue
            value = [opts.parse_value(specs[name][1], v, name) for v in value]
        else:
            value = opts.parse_value(specs[name][1], value, name)
        given[name] = value
    return given


def request_command(*classes: type, exclude: Iterable[str] = (),
                    include: Iterable[str] | None = None) -> Callable[[Callable], Any]:
    """Decorate ``fn(own params..., *, given)``: add ``classes``' options to its signature
    (only the fields in ``include`` when given, never those in ``exclude``)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(fn)
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(fn).parameters.values() if p.name != "given"]
        generated = request_params(classes, exclude=[*exclude, *(p.name for p in own)],
                                   include=include)
        names = {p.name for p in generated}

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            values = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
            return fn(**kwargs, given=parse_given(classes, values))

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + generated
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # typer reads the signature above, not fn's
        return command

    return wrap
