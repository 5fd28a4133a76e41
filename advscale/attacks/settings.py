"""What ``advscale attack`` runs: the validated settings of one evaluation and their identity.

A value module: it imports the registry (names, defaults, validation; torch-free) and no
executor. Units: ``eps`` and ``step_size`` in [0, 1] pixel units (an L∞ radius, or a per-image
L2 radius under ``norm="l2"``); ``n``, ``batch_size`` and ``chunk_size`` in images.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from advscale.attacks.norms import DEFAULT_EPS, check_eps, check_norm, default_step_size
from advscale.attacks.registry import AttackSpec, attack_names, get_attack
from advscale.core.options import option
from advscale.errors import AdvscaleError

GRADIENTS = ("exact", "bpda")
"""How attacks differentiate the model: ``exact`` (autograd), or ``bpda``: every MeanSparse layer
passes gradients straight through (:mod:`advscale.models.meansparse`; RobustBench's "best known"
MeanSparse evaluation), its forward pass unchanged."""

DEFAULT_N = 10_000
PRECISIONS = ("fp32", "bf16", "tf32")
"""Numeric precisions of the model's forward (:mod:`advscale.attacks.precision`)."""


def __getattr__(name: str) -> Any:
    """``ATTACKS``: every registered name (read from the registry when asked)."""
    if name == "ATTACKS":
        return attack_names()
    raise AttributeError(name)


def _resolve_steps(spec: AttackSpec, steps: int | None, step_size: float | None, norm: str,
                   eps: float) -> tuple[int | None, float | None]:
    """``(steps, step_size)`` with the attack's defaults; AdvscaleError when they do not apply."""
    if spec.steps is None:
        if steps is not None or step_size is not None:
            raise AdvscaleError(f"{spec.name} has fixed settings: steps and step_size do not "
                                "apply to it", field="steps" if steps is not None else
                                "step_size")
        return None, None
    steps = spec.steps if steps is None else steps
    if steps < 1:
        raise AdvscaleError(f"steps must be >= 1, got {steps}", field="steps")
    if not spec.step_size:
        if step_size is not None:
            raise AdvscaleError(f"step_size does not apply to {spec.name} (it adapts its step)",
                                field="step_size")
        return int(steps), None
    step_size = default_step_size(norm, eps, steps) if step_size is None else step_size
    if not (math.isfinite(step_size) and step_size > 0):
        raise AdvscaleError(f"step_size must be > 0, got {step_size}", field="step_size")
    return int(steps), float(step_size)


def _resolve_n(n: int | None, available: int | None) -> int:
    if n is None:
        n = DEFAULT_N if available is None else min(DEFAULT_N, available)
    if n < 1:
        raise AdvscaleError(f"n must be >= 1, got {n}", field="n")
    if available is not None and n > available:
        raise AdvscaleError(f"n {n} exceeds the {available} images in the test file", field="n")
    return int(n)


@dataclass(frozen=True)
class AttackSettings:
    """What to run. ``None`` fields take their defaults in :meth:`resolved`.

    PGD results depend on ``seed`` only (the random start of test row ``i`` comes from
    ``(seed, i)``, :mod:`advscale.attacks.robustness`), never on batch or chunk size;
    AutoAttack results are reproducible for fixed ``seed``, ``batch_size`` and ``chunk_size``.
    """

    attack: str = option("aa-standard", help="The attack (registered names: advscale attack "
                         "--help).")
    eps: float | None = option(None, help="Radius of the threat model's ball.",
                               unit="[0,1] pixel units", parse="fraction",
                               default_text="8/255 (linf), 0.5 (l2)")
    steps: int | None = option(None, help="PGD steps, or APGD iterations for apgd-ce; "
                               "AutoAttack's versions are fixed.",
                               default_text="40 for PGD, 100 for apgd-ce")
    step_size: float | None = option(
        None, help="PGD step; L2 default 2.5·eps/steps (Madry et al. 2018).",
        unit="[0,1] pixel units", parse="fraction", default_text="2/255 (linf)")
    n: int | None = option(None, help="Images to attack (the first n of the file).",
                           default_text="10000, or all if fewer")
    batch_size: int = option(250, help="Images per attack batch.")
    chunk_size: int = option(1000, help="Images per resumable chunk (one state record each).")
    seed: int = option(0, help="PGD: image i starts from a point seeded by (seed, i); "
                       "AutoAttack: chunk c uses seed+c.")
    norm: str = option("linf", help="Threat model: linf (‖δ‖∞ ≤ eps) or l2 (‖δ‖₂ ≤ eps per "
                       "image).", metavar="linf|l2")
    gradient: str = option("exact", help="How attacks differentiate the model: exact "
                           "(autograd) or bpda (MeanSparse layers pass gradients straight "
                           "through; RobustBench's best-known MeanSparse evaluation).",
                           metavar="exact|bpda")
    precision: str = option("fp32", help="The model's forward: fp32 (leaderboard numbers), bf16 "
                            "(autocast, float32 logits) or tf32 (CUDA matmuls; none on CPU).",
                            metavar="fp32|bf16|tf32")

    def resolved(self, available: int | None = None) -> AttackSettings:
        """Validated settings with defaults filled in; AdvscaleError (naming the field) on bad
        values. ``available`` is the number of test images in the data file."""
        spec = get_attack(self.attack)
        norm = check_norm(self.norm)
        if norm not in spec.norms:
            raise AdvscaleError(f"{spec.name} runs under {', '.join(spec.norms)}, not {norm}",
                                field="norm")
        eps = check_eps(DEFAULT_EPS[norm] if self.eps is None else self.eps, norm)
        if self.gradient not in GRADIENTS:
            raise AdvscaleError(f"unknown gradient {self.gradient!r}; choose from "
                                f"{', '.join(GRADIENTS)}", field="gradient")
        steps, step_size = _resolve_steps(spec, self.steps, self.step_size, norm, eps)
        n = _resolve_n(self.n, available)
        precision = str(self.precision).strip().lower()
        if precision not in PRECISIONS:
            raise AdvscaleError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                                f"{self.precision!r}", field="precision")
        for name, value, low in (("batch_size", self.batch_size, 1),
                                 ("chunk_size", self.chunk_size, 1), ("seed", self.seed, 0)):
            if value < low:
                raise AdvscaleError(f"{name} must be >= {low}, got {value}", field=name)
        out = replace(self, steps=steps, step_size=step_size, n=n, eps=eps, norm=norm,
                      batch_size=int(self.batch_size), chunk_size=int(self.chunk_size),
                      seed=int(self.seed), precision=precision)
        if spec.validate is not None:
            spec.validate(out)
        return out

    @property
    def chunks(self) -> int:
        """Number of chunks (settings must be resolved)."""
        assert self.n is not None
        return -(-self.n // self.chunk_size)

    def chunk_bounds(self, chunk: int) -> tuple[int, int]:
        """Test rows ``[start, stop)`` of ``chunk``."""
        assert self.n is not None
        start = chunk * self.chunk_size
        return start, min(self.n, start + self.chunk_size)

    def chunk_seed(self, chunk: int) -> int:
        """The seed of ``chunk``: ``seed + chunk`` (chunk 0 uses ``seed`` itself).

        It reseeds the global RNG before the chunk's attack and seeds AutoAttack; PGD's random
        starts do not use it (they come from ``seed`` and the image's row).
        """
        return self.seed + chunk


def package_of(attack: str) -> tuple[str, str]:
    """(package, version) that implements ``attack`` (its spec's ``package()``)."""
    return get_attack(attack).package()


def settings_key(checkpoint_sha256: str, data_sha256: str, s: AttackSettings,
                 package: str, package_version: str) -> str:
    """A 16-hex-digit id of one evaluation: same key ⇔ same checkpoint, data, settings, code.

    The attack's ``key_extras`` are hashed too (PGD: its random-start rule ``pgd_start`` and,
    for ``pgd-cw``, its loss rule ``pgd_loss``), so results of an older rule are never taken for
    this one's. ``norm`` enters the key only when it is not ``linf``, so L∞ keys are those of
    advscale before threat models existed; likewise ``precision`` only when it is not ``fp32``.
    """
    doc: dict[str, Any] = {
        "checkpoint_sha256": checkpoint_sha256, "data_sha256": data_sha256,
        "attack": s.attack, "eps": round(float(s.eps or 0), 12), "steps": s.steps,
        "step_size": None if s.step_size is None else round(s.step_size, 12), "n": s.n,
        "batch_size": s.batch_size, "chunk_size": s.chunk_size, "seed": s.seed,
        "package": package, "package_version": package_version}
    if s.gradient != "exact":  # exact-gradient keys stay those of older advscale versions
        doc["gradient"] = s.gradient
    if s.norm != "linf":
        doc["norm"] = s.norm
    if s.precision != "fp32":  # fp32 keys are those of advscale before precisions existed
        doc["precision"] = s.precision
    spec = get_attack(s.attack)
    if spec.key_extras is not None:
        doc.update(spec.key_extras(s))
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def settings_config(s: AttackSettings, **extra: Any) -> dict[str, Any]:
    """The settings as a provenance ``config`` dict."""
    return {**asdict(s), **extra}
