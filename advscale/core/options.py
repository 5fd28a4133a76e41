"""Settings declared once: a dataclass field carries its flag, help, unit and default.

A request dataclass (``TrainConfig``, the attack settings, fit options, ...) declares each field
with :func:`option`; the command line's options are built from these declarations, so a default
is written once, in the field. Library errors name the *field* (``eps``); the CLI maps a field to
its flag (:func:`flag_of`) in one place. Torch-free.

>>> from dataclasses import dataclass
>>> @dataclass
... class Demo:
...     eps: float = option(8 / 255, help="Attack radius.", unit="[0,1] pixel units",
...                         parse="fraction", default_text="8/255")
>>> flag_of(Demo, "eps")
'--eps'
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from advscale.errors import AdvscaleError

META_KEY = "advscale"
"""Key of the :class:`OptionSpec` in a dataclass field's ``metadata``."""


@dataclass(frozen=True)
class OptionSpec:
    """How one field appears on the command line.

    ``flag``: the long flag (default ``--`` + the field name with ``_`` → ``-``); ``short``: a
    one-letter alias (``-o``); ``help``: one or two sentences, ending with a full stop; ``unit``:
    the unit of a number (shown in help, e.g. ``[0,1] pixel units``, ``samples``, ``FLOPs``);
    ``panel``: the help section; ``metavar``: the value's placeholder; ``parse``: a named parser
    the CLI applies to the text (``fraction`` for ``8/255``, ``count`` for ``5e6``, ``kwargs``
    for ``KEY=VALUE[,KEY=VALUE]`` with JSON values); ``default_text``: how help shows a default
    that is computed (e.g. ``"1024 for D ≤ 10M, else 2048"``), only where the field's default is
    ``None``; ``cli``: False for a field the command line does not expose (derived or internal);
    ``negatable``: a boolean shown as ``--x/--no-x``.
    """

    help: str
    flag: str | None = None
    short: str | None = None
    unit: str | None = None
    panel: str | None = None
    metavar: str | None = None
    parse: str | None = None
    default_text: str | None = None
    cli: bool = True
    negatable: bool = True


def option(default: Any = dataclasses.MISSING, *, help: str,
           default_factory: Any = dataclasses.MISSING, **spec: Any) -> Any:
    """A dataclass field with its command-line declaration (:class:`OptionSpec` keywords)."""
    meta = {META_KEY: OptionSpec(help=help, **spec)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def internal(default: Any = dataclasses.MISSING, *, help: str,
             default_factory: Any = dataclasses.MISSING, **spec: Any) -> Any:
    """A field the command line does not expose (derived or internal): ``option(cli=False)``."""
    return option(default, help=help, default_factory=default_factory, cli=False, **spec)


def spec_of(field: dataclasses.Field) -> OptionSpec | None:
    """The field's :class:`OptionSpec`, or None for a field declared without :func:`option`."""
    return field.metadata.get(META_KEY)


def flag_of(cls: type, name: str) -> str:
    """The long flag of field ``name`` of dataclass ``cls`` (``eval_data`` → ``--eval-data``)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            spec = spec_of(f)
            if spec is not None and spec.flag:
                return spec.flag
            break
    return "--" + name.replace("_", "-")


def cli_fields(cls: type) -> Iterator[tuple[dataclasses.Field, OptionSpec]]:
    """The fields of ``cls`` the command line exposes, in declaration order, with their specs."""
    for f in dataclasses.fields(cls):
        spec = spec_of(f)
        if spec is not None and spec.cli:
            yield f, spec


def field_spec(cls: type, name: str) -> OptionSpec | None:
    """The :class:`OptionSpec` of field ``name`` of dataclass ``cls`` (None when undeclared)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return spec_of(f)
    return None


# -- named parsers: text as typed on a command line (or passed as a string) → a value --------

def parse_fraction(text: str, field: str = "value") -> float:
    """``8/255``, ``0.031`` or ``2e-3`` → a float; AdvscaleError naming ``field`` otherwise."""
    try:
        return float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise AdvscaleError(f"{field} {text!r} is not a number or fraction like 8/255",
                            field=field) from None


def parse_count(text: str, field: str = "value") -> int:
    """A whole count: ``50000``, ``5e6`` or ``50_000`` → an int; AdvscaleError otherwise."""
    try:
        value = float(str(text).replace("_", ""))
    except ValueError:
        raise AdvscaleError(f"{field} {text!r} is not a number", field=field) from None
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise AdvscaleError(f"{field} {text!r} must be a whole, non-negative number",
                            field=field)
    return int(value)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_kwargs(text: str | None, field: str = "value") -> dict[str, Any]:
    """``KEY=VALUE[,KEY=VALUE]`` → a dict; each VALUE is JSON when it parses (``32``, ``true``,
    ``[1,2]``), else a string. A JSON object (``{"img_size": 32}``) is accepted as is.

    >>> parse_kwargs("img_size=32,patch_size=4,act=gelu")
    {'img_size': 32, 'patch_size': 4, 'act': 'gelu'}
    """
    text = "" if text is None else str(text).strip()
    if not text:
        return {}
    if text.startswith("{"):
        value = _json_or_text(text)
        if isinstance(value, dict):
            return value
        raise AdvscaleError(f"{field} {text!r} is not a JSON object", field=field)
    out: dict[str, Any] = {}
    for part in _split_top(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip().isidentifier():
            raise AdvscaleError(f"{field} {part!r} must look like KEY=VALUE (e.g. "
                                "img_size=32,patch_size=4)", field=field)
        out[key.strip()] = _json_or_text(value.strip())
    return out


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets and quotes (``a=[1,2],b=3`` → two parts)."""
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == '"':
            quote = not quote
        elif not quote and ch in "[{":
            depth += 1
        elif not quote and ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0 and not quote:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def parse_shard(text: str, field: str = "shard") -> tuple[int, int]:
    """``i/k`` (0-based i < k) → ``(i, k)``: this worker's share of a job split k ways."""
    try:
        i_s, k_s = str(text).split("/")
        i, k = int(i_s), int(k_s)
    except ValueError:
        raise AdvscaleError(f"{field} {text!r} must look like i/k, e.g. 0/4",
                            field=field) from None
    if not (k >= 1 and 0 <= i < k):
        raise AdvscaleError(f"{field} {text!r} needs 0 <= i < k", field=field)
    return i, k


PARSERS: dict[str, Callable[[str, str], Any]] = {
    "fraction": parse_fraction, "count": parse_count, "kwargs": parse_kwargs,
    "shard": parse_shard}
"""The named parsers of :attr:`OptionSpec.parse`."""


def parse_value(spec: OptionSpec | None, text: Any, field: str) -> Any:
    """``text`` through the spec's named parser (strings only; other values pass through)."""
    if spec is None or spec.parse is None or not isinstance(text, str):
        return text
    return PARSERS[spec.parse](text, field)


def parse_fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every string given for a field with a named parser parsed."""
    specs = {f.name: spec_of(f) for f in dataclasses.fields(cls)}
    return {k: parse_value(specs.get(k), v, k) for k, v in values.items()}


# -- options every command declares the same way ------------------------------------------------

RUN_PANEL = "Run"
DEVICE_HELP = "Where to compute: auto (CUDA when available), cpu, cuda or cuda:N."


def device_option(**spec: Any) -> Any:
    """The ``--device`` field: one name, one meaning (the torch device), in every command."""
    return option("auto", help=DEVICE_HELP, panel=spec.pop("panel", RUN_PANEL), **spec)


def seed_option(seeds: str, **spec: Any) -> Any:
    """The ``--seed`` field; ``seeds`` says what it seeds (e.g. ``"data order and init"``)."""
    return option(0, help=f"Random seed of {seeds}.", panel=spec.pop("panel", RUN_PANEL), **spec)


def progress_option(**spec: Any) -> Any:
    """The ``--progress/--no-progress`` field: a progress bar on stderr."""
    return option(True, help="Progress bar on stderr.", panel=spec.pop("panel", RUN_PANEL),
                  **spec)


@dataclass
class CommonOptions:
    """Options many commands share, declared once each with one meaning."""

    device: str = device_option(panel=None)
    output: str | None = option(None, short="-o", metavar="PATH",
                                help="Write the output here (atomically) instead of stdout.")
    force: bool = option(False, negatable=False,
                         help="Replace an existing output, or redo work already recorded (never "
                         "touches a command's input).")
    quiet: bool = option(False, short="-q", negatable=False,
                         help="Only warnings and errors on stderr.")
    verbose: bool = option(False, short="-v", negatable=False,
                           help="Debug messages on stderr (e.g. AutoAttack's log).")
    progress: bool = progress_option(panel=None)
