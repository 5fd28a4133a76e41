"""The public Python API: one function per command family, for notebooks, scripts and the CLI.

Each function resolves its request (defaults, named parsers such as ``"8/255"`` or ``"5e6"``),
validates it and runs it, and returns what the command prints: JSONL records as dicts
(``kind``, ``schema``, ``provenance`` and the payload; docs/formats.md). Nothing is printed on
stdout; progress and notes go to the ``advscale`` loggers (the command line shows them on
stderr). Errors raise :class:`advscale.AdvscaleError` with a one-line message that names the
request field at fault (``e.field``). Torch-free at import: each function imports its layer
when called. The command line (``advscale.cli``) calls only this package.

==================  ====================================  ==================================
function            command                               library underneath
==================  ====================================  ==================================
``dataset``         ``data import|info|mix|stitch``       ``data``
``gen_synthetic``   ``gen-synthetic`` (and subcommands)   ``synthetic``
``train``           ``train``                             ``training.loop``, ``.rundir``
``attack``          ``attack``                            ``attacks.evaluate``, ``.merge``
``count_flops``     ``count-flops``                       ``training.flops``
``measure_energy``  ``energy``                            ``energy.measure``
``fit``             ``fit``                               ``laws.fit``
``predict``         ``predict``                           ``laws.predict``
``report``          ``report``                            ``report.command``
``validity_study``  ``validity serve|score|rate``         ``validity``
``model``           ``model list|import|info``            ``models``
``tables``          ``records import|table``              ``records.tables``
``read_records``    (reading JSONL)                       ``records``
==================  ====================================  ==================================
"""

from __future__ import annotations

from advscale.api import options
from advscale.api.attacks import AttackSettings, attack, attack_help
from advscale.api.datasets import dataset
from advscale.api.energy import EnergyConstants, measure_energy
from advscale.api.flops import count_flops
from advscale.api.laws import (
    PAPER_FLOPS_PER_PARAM_SAMPLE,
    FitRequest,
    approach_choices,
    approach_option_classes,
    fit,
    predict,
)
from advscale.api.models import model
from advscale.api.raters import validity_study
from advscale.api.recordio import builtin_maps, check_output, read_records, save_records, tables
from advscale.api.reports import ACC_FLOOR_PCT, report
from advscale.api.synthetic import SamplerConfig, gen_synthetic
from advscale.api.training import TrainConfig, has_run, train
from advscale.core.options import CommonOptions

REQUESTS: tuple[type, ...] = (TrainConfig, AttackSettings, FitRequest, EnergyConstants,
                              SamplerConfig, CommonOptions)
"""The request dataclasses, whose fields the command line's options are generated from."""

FAMILIES = ("dataset", "gen_synthetic", "train", "attack", "count_flops", "measure_energy",
            "fit", "predict", "report", "validity_study", "model", "tables")
"""One function per command family (``read_records`` reads what they write)."""

__all__ = ["ACC_FLOOR_PCT", "FAMILIES", "PAPER_FLOPS_PER_PARAM_SAMPLE", "REQUESTS",
           "AttackSettings", "CommonOptions", "EnergyConstants", "FitRequest", "SamplerConfig",
           "approach_choices", "approach_option_classes",
           "TrainConfig", "attack", "attack_help", "builtin_maps", "check_output",
           "count_flops", "dataset", "fit", "gen_synthetic", "has_run", "measure_energy",
           "model", "options", "predict", "read_records", "report", "save_records", "tables",
           "train", "validity_study"]
