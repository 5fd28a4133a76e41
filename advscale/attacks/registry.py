"""The attack registry: one module per attack family registers its attacks here.

An attack is an :class:`AttackSpec`: its name, the threat models it supports, its defaults
(steps, step size), the validation of its settings, the extras it adds to the settings key and
its *chunk runner*. ``advscale attack --attack NAME`` and :func:`advscale.api.attack` accept every
registered name; their help lists :func:`attack_help`.

The runner attacks one chunk (a :class:`ChunkJob`) and returns a :class:`RawOutcome`: the clean
and attacked predictions, the attacked images and, for an ensemble, the stage that broke each
image. It never decides which images are robust: the evaluation service
(:func:`advscale.attacks.robustness.image_outcomes`) does that for every attack alike (robust =
correct clean and correct attacked).

Built-in attacks live in ``advscale/attacks/catalog/`` (every module there is imported on first
use); modules named in ``$ADVSCALE_ATTACK_MODULES`` (comma-separated import names) are imported
too, so an attack outside the package is one file as well. Registering modules stay torch-free
at import (their runners import torch), so ``--help`` lists attacks without loading torch.

Adding an attack (CONTRIBUTING.md, "Add an attack")::

    from advscale.attacks.registry import AttackSpec, RawOutcome, register_attack

    def run(job):            # job: ChunkJob (model, x, y, settings, start, seed, ...)
        ...                  # attack job.x; return RawOutcome(pred_clean, pred_adv, x_adv)

    register_attack(AttackSpec("my-attack", run, norms=("linf", "l2"), steps=10,
                               step_size=True, help="one line for --help"))
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from advscale.core.plugins import import_named_modules
from advscale.errors import AdvscaleError

ENV_MODULES = "ADVSCALE_ATTACK_MODULES"
"""Comma-separated modules imported (after the catalog) for their ``register_attack`` calls."""


@dataclass
class ChunkJob:
    """What a chunk runner attacks: one chunk of test images under resolved settings.

    ``x``: float (k, C, H, W) in [0, 1] on ``device``; ``y``: int64 (k,); ``s``: the resolved
    :class:`advscale.attacks.settings.AttackSettings`; ``start``: the test row of ``x[0]``
    (per-image seeding); ``seed``: the chunk seed (``s.seed + chunk``; the global RNG is
    already seeded with it); ``progress(stage, stage_number, stages, still_robust, images)``
    reports a finished stage of a staged attack (numbered from 1).
    """

    model: Any
    x: Any
    y: Any
    s: Any
    start: int
    seed: int
    device: Any
    verbose: bool = False
    progress: Callable[[str, int, int, int, int], None] | None = None


@dataclass
class RawOutcome:
    """What a runner found (per image of the chunk); robustness is decided by the service.

    ``pred_clean``, ``pred_adv``: int64 numpy (k,); ``x_adv``: float tensor (k, C, H, W) in
    [0, 1] (anything for a clean-misclassified image: the service keeps the clean one);
    ``stages``: the stages run, in order (default: the attack's name); ``broken_stage``: per
    image the stage whose attack fooled it ("" none; None: the one stage);
    ``adv_loss_sum``: the summed TRADES β = 5 loss when the attack reports it (PGD).
    """

    pred_clean: Any
    pred_adv: Any
    x_adv: Any
    stages: list[str] | None = None
    broken_stage: list[str] | None = None
    adv_loss_sum: float | None = None


Runner = Callable[[ChunkJob], RawOutcome]


def _advscale_package() -> tuple[str, str]:
    from advscale.version import __version__

    return "advscale", __version__


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack.

    ``steps``: default steps (None: the attack has fixed settings and takes none);
    ``step_size``: whether a step size applies (its default comes from
    :func:`advscale.attacks.norms.default_step_size`); ``validate(settings)`` raises
    AdvscaleError (naming a field) on settings the attack cannot run; ``key_extras(settings)``
    returns what else identifies a result (hashed into the settings key: rule names, versions);
    ``package()`` returns (package, version) of the implementation.
    """

    name: str
    runner: Runner
    norms: tuple[str, ...] = ("linf",)
    help: str = ""
    steps: int | None = None
    step_size: bool = False
    validate: Callable[[Any], None] | None = None
    key_extras: Callable[[Any], Mapping[str, Any]] | None = None
    package: Callable[[], tuple[str, str]] = _advscale_package
    family: str = "advscale"
    """Who implements it, for ``--help`` grouping (``advscale``, ``AutoAttack``, ...)."""
    meta: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, AttackSpec] = {}
_loaded = False


def register_attack(spec: AttackSpec) -> AttackSpec:
    """Add ``spec`` to the registry (a module calls this at import); returns it.

    Re-registering a name from the same module replaces it (a reloaded module); a different
    module's attack of the same name is an error.
    """
    old = _REGISTRY.get(spec.name)
    if old is not None and getattr(old.runner, "__module__", None) != getattr(
            spec.runner, "__module__", None):
        raise AdvscaleError(f"attack {spec.name!r} is already registered by "
                            f"{old.runner.__module__}")
    _REGISTRY[spec.name] = spec
    return spec


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from advscale.attacks import catalog

    for info in sorted(pkgutil.iter_modules(catalog.__path__), key=lambda m: m.name):
        importlib.import_module(f"{catalog.__name__}.{info.name}")
    import_named_modules(ENV_MODULES)


def attack_names() -> tuple[str, ...]:
    """Every registered attack name, in registration order."""
    _load()
    return tuple(_REGISTRY)


def get_attack(name: str) -> AttackSpec:
    """The spec of ``name``; AdvscaleError (field ``attack``) with a close match when unknown."""
    _load()
    spec = _REGISTRY.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise AdvscaleError(f"unknown attack {name!r}; choose from "
                            f"{', '.join(_REGISTRY)}{hint}", field="attack")
    return spec


def attack_help() -> str:
    """One line per family: ``name (norms): help``, for the CLI's and the API's docs."""
    _load()
    parts = []
    for spec in _REGISTRY.values():
        norms = "/".join(n.upper().replace("LINF", "L∞") for n in spec.norms)
        parts.append(f"{spec.name} [{norms}]" + (f": {spec.help}" if spec.help else ""))
    return "; ".join(parts) + "."
