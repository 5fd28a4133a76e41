"""Fitting protocols: every choice of how records become a fitted law, named in one switch.

advscale's own protocol (``advscale``, the default) and the procedure of Bartoldson et al.'s
notebook (``bartoldson2024``: bbartoldson/Adversarial-Robustness-Limits,
``Scaling_law_fitting_and_plots.ipynb`` with ``scaling_law_utils.py``) differ in the choices
below; ``advscale fit --protocol NAME`` sets them all, and each is also its own option
(``advscale fit --help``; docs/laws.md, "Fitting protocols", has them side by side). The fit
record logs the resolved choices in its ``protocol`` block.

=====================  =====================================  ===============================
choice                 ``advscale``                           ``bartoldson2024``
=====================  =====================================  ===============================
``points``             ``final`` evaluation of each run       ``best``: lowest loss
``min_train_fraction`` 0 (every evaluation is a candidate)    0.5: checkpoints past half of
                                                              training only
``filter_order``       ``after``: filters drop chosen points  ``before``: filters drop
                                                              evaluations, then each run's
                                                              point is chosen
``exclusion_size``     ``samples``: the run's samples seen    ``nominal``: its nominal data
                                                              size (``samples_target``)
``anchor``             ``fid0``: stage-1 B, E taken as FID-0  ``base``: stage 2 anchored at
                       values (Approach 2)                    the base dataset's own FID, then
                                                              B, E rescaled to FID 0
``joint_polish``       true: all 7 parameters polished on     false: the two-stage result
                       all data after the two stages
``base_dataset``       the FID group with the most runs       ``dg20`` (name yours)
``stage2_datasets``    every other dataset                    ``vanilla7``, ``vanilla10``,
                                                              ``vanilla20``
``flops_floor``        none (Approach 1)                      1.9e17: evaluations above it
``envelope``           ``advscale`` (Approach 1: runs         ``bartoldson2024``: linear in
                       covering F, log-FLOPs interpolation)   FLOPs; finished runs compete
                                                              with their best loss
``accuracy_runs``      ``fitted``: the fitted runs            ``base``: the base dataset's
                                                              runs (loss→accuracy map)
``grids``              ``appendix``: appendix F's text        ``code``: the code's (e −0.5,
                                                              ζ −0.3, Approach 3's E 0.5)
=====================  =====================================  ===============================

A record's dataset is its ``data_source`` field (the notebook's column), else ``dataset``,
else the stems of its ``data[].path`` joined by ``+`` (``real`` without synthetic sources).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from advscale.core.options import option
from advscale.errors import AdvscaleError
from advscale.laws.notebook import OPTIMIZERS

NOTEBOOK_FLOPS_FLOOR = 1.9e17
"""The notebook's ``approach_1_flop_floor``: Approach 1 uses evaluations above it only."""


@dataclass(frozen=True)
class Protocol:
    """The resolved choices of a fit (see the module docstring for what each means)."""

    name: str = "advscale"
    points: str | None = None
    min_train_fraction: float = 0.0
    filter_order: str = "after"
    exclusion_size: str = "samples"
    anchor: str = "fid0"
    joint_polish: bool = True
    base_dataset: str | None = None
    stage2_datasets: tuple[str, ...] = ()
    flops_floor: float | None = None
    envelope: str = "advscale"
    accuracy_runs: str = "fitted"
    grids: str = "appendix"
    optimizer: str = option(
        "advscale", help="Approaches 2 and 3: advscale (screened grid, tight polish: the "
        "objective's minimum) or notebook (the authors' L-BFGS-B with SciPy's defaults, "
        "finite differences, their parameterisation and grids: their constants).")

    def record(self) -> dict[str, Any]:
        """The fit record's ``protocol`` block."""
        out = dataclasses.asdict(self)
        out["stage2_datasets"] = list(self.stage2_datasets)
        return out


PROTOCOLS: dict[str, Protocol] = {
    "advscale": Protocol(),
    "bartoldson2024": Protocol(
        name="bartoldson2024", points="best", min_train_fraction=0.5, filter_order="before",
        exclusion_size="nominal", anchor="base", joint_polish=False, base_dataset="dg20",
        stage2_datasets=("vanilla7", "vanilla10", "vanilla20"),
        flops_floor=NOTEBOOK_FLOPS_FLOOR, envelope="bartoldson2024", accuracy_runs="base",
        grids="code"),
}

CHOICES: dict[str, tuple[str, ...]] = {
    "filter_order": ("after", "before"),
    "exclusion_size": ("samples", "nominal"),
    "anchor": ("fid0", "base"),
    "envelope": ("advscale", "bartoldson2024"),
    "accuracy_runs": ("fitted", "base"),
    "grids": ("appendix", "code"),
    "optimizer": OPTIMIZERS,
}
"""The allowed values of the choices that are names."""

_FIELDS = tuple(f.name for f in dataclasses.fields(Protocol) if f.name != "name")


def resolve_protocol(name: str | Protocol = "advscale",
                     overrides: Mapping[str, Any] | None = None) -> Protocol:
    """The protocol ``name`` with the choices in ``overrides`` (None values ignored) replaced.

    A changed choice keeps the protocol's name (the record's ``protocol`` block lists every
    resolved choice, so a reader sees what was changed).
    """
    base = name if isinstance(name, Protocol) else PROTOCOLS.get(name)
    if base is None:
        raise AdvscaleError(f"protocol {name!r}: choose from {', '.join(PROTOCOLS)}",
                            field="protocol")
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(changes) - set(_FIELDS)
    if unknown:
        raise AdvscaleError(f"unknown protocol choice(s) {', '.join(sorted(unknown))}")
    if "stage2_datasets" in changes:
        changes["stage2_datasets"] = tuple(changes["stage2_datasets"])
    out = dataclasses.replace(base, **changes)
    _check(out)
    return out


def _check(p: Protocol) -> None:
    for key, allowed in CHOICES.items():
        value = getattr(p, key)
        if value not in allowed:
            raise AdvscaleError(f"{key} {value!r}: choose from {', '.join(allowed)}",
                                field=key)
    if not 0.0 <= p.min_train_fraction <= 1.0:
        raise AdvscaleError(f"min_train_fraction must be in [0, 1], got "
                            f"{p.min_train_fraction!r}", field="min_train_fraction")
    if p.flops_floor is not None and p.flops_floor < 0:
        raise AdvscaleError(f"flops_floor must be >= 0, got {p.flops_floor!r}",
                            field="flops_floor")
