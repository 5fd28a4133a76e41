"""The options many commands share (``--device``, ``--seed``, ``-o/--output``, ``--force``,
``-q/-v``, ``--no-progress``), each declared once, in :class:`advscale.api.CommonOptions`."""

from __future__ import annotations

import dataclasses
from typing import Any

from advscale import api
from advscale.cli.requests import typer_option

_FIELDS = {f.name: f for f in dataclasses.fields(api.CommonOptions)}


def common(name: str, default: Any = dataclasses.MISSING) -> Any:
    """The typer option of shared field ``name``, with the field's default (or ``default``)."""
    f = _FIELDS[name]
    spec = api.options.spec_of(f)
    assert spec is not None
    _, opt = typer_option(f, spec)
    value = f.default if default is dataclasses.MISSING else default
    opt.default = value
    return opt


def seed(seeds: str) -> Any:
    """A ``--seed`` option: ``Random seed of SEEDS.`` (default 0; ``api.options.seed_option``)."""
    f = api.options.seed_option(seeds, panel=None)
    f.name, f.type = "seed", "int"
    _, opt = typer_option(f, api.options.spec_of(f))
    opt.default = 0
    return opt
