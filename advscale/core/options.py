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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
