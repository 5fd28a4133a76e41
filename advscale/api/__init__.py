"""The public Python API: one function per command family, for notebooks, scripts and the CLI.

Each function resolves its request (defaults, named parsers such as ``"8/255"`` or ``"5e6"``),
validates it and runs it, and returns what the command prints: JSONL records as dicts
(``kind``, ``schema``, ``provenance`` and the payload; docs/formats.md). Nothing is printed on
stdout; progress and notes go to the ``advscale`` logger (the command line shows them on
stderr). Errors raise :class:`advscale.AdvscaleError` with a one-line message that names the
request field at fault (``e.field``). Torch-free at import: each function imports its layer
when called. The command line (``advscale.cli``) calls only this package.
"""

from __future__ import annotations

from advscale.api import options
from advscale.api._legacy import (
    count_flops,
    fit,
    measure_energy,
    predict,
    read_records,
    report,
)
from advscale.api.attacks import AttackSettings, attack
from advscale.api.training import TrainConfig, train
from advscale.core.options import CommonOptions

REQUESTS: tuple[type, ...] = (TrainConfig, AttackSettings)
"""The request dataclasses, whose fields the command line's options are generated from."""

__all__ = ["REQUESTS", "AttackSettings", "CommonOptions", "TrainConfig", "attack",
           "count_flops", "fit", "measure_energy", "options", "predict", "read_records",
           "report", "train"]
