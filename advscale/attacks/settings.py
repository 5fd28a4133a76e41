"""What ``advscale attack`` runs: attack names, defaults, validated settings and their identity.

Units: ``eps`` and ``step_size`` in [0, 1] pixel units; ``n``, ``batch_size`` and ``chunk_size``
in images.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from advscale.core.options import option, seed_option
from advscale.errors import AdvscaleError
from advscale.version import __version__

PGD_ATTACKS = {"pgd-cw": "cw", "pgd-cw-margin": "cw-margin", "pgd-ce": "ce"}
"""advscale PGD attack name → loss of :func:`advscale.attacks.pgd.pgd_linf` (``pgd-cw``: the
reference's clamped CW loss; ``pgd-cw-margin``: the unclamped margin)."""
PGD_LOSS_RULES = {"cw": "cw-clamped-v1"}
"""PGD losses whose definition changed: the rule's name is hashed into the settings key, so a
``pgd-cw`` result of the unclamped margin (an older advscale) is never reused for this one."""
AA_NAMES = ("aa-standard", "aa-rand", "apgd-ce")
"""Attacks run by AutoAttack (see :mod:`advscale.attacks.autoattack`)."""
ATTACKS = (*AA_NAMES, *PGD_ATTACKS)
"""Every attack name ``advscale attack --attack`` accepts."""

DEFAULT_N = 10_000
DEFAULT_PGD_STEPS = 40
DEFAULT_PGD_STEP_SIZE = 2 / 255
DEFAULT_APGD_ITERS = 100


def _check_eps(eps: Any) -> None:
    if not (isinstance(eps, int | float) and math.isfinite(eps) and 0 < eps <= 1):
        raise AdvscaleError(f"eps must lie in (0, 1] (pixel units, e.g. 8/255), got {eps}",
                            field="eps")


def _resolve_steps(attack: str, steps: int | None, step_size: float | None
                   ) -> tuple[int | None, float | None]:
    """``(steps, step_size)`` with the attack's defaults; AdvscaleError when they do not apply."""
    if attack in PGD_ATTACKS:
        steps = DEFAULT_PGD_STEPS if steps is None else steps
        step_size = DEFAULT_PGD_STEP_SIZE if step_size is None else step_size
        if steps < 1:
            raise AdvscaleError(f"steps must be >= 1, got {steps}", field="steps")
        if not (math.isfinite(step_size) and step_size > 0):
            raise AdvscaleError(f"step_size must be > 0, got {step_size}", field="step_size")
    elif attack == "apgd-ce":
        steps = DEFAULT_APGD_ITERS if steps is None else steps
        if steps < 1:
            raise AdvscaleError(f"steps must be >= 1, got {steps}", field="steps")
        if step_size is not None:
            raise AdvscaleError("step_size applies to the pgd-* attacks only (APGD adapts "
                                "it)", field="step_size")
    elif steps is not None or step_size is not None:
        raise AdvscaleError(f"{attack} has AutoAttack's fixed settings: steps and "
                            "step_size apply to the pgd-* attacks and apgd-ce",
                            field="steps,step_size")
    return (None if steps is None else int(steps),
            None if step_size is None else float(step_size))


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

    ``steps``: PGD steps (default 40) for ``pgd-*``, APGD iterations (default 100) for
    ``apgd-ce``; AutoAttack's versions have fixed settings (``None``). ``step_size``: PGD step in
    [0, 1] pixel units (default 2/255; ``None`` for AutoAttack). ``n``: the first ``n`` test
    images (default: 10,000 or the whole file when smaller). ``batch_size`` and ``chunk_size`` in
    images. PGD results depend on ``seed`` only (the random start of test row ``i`` comes from
    ``(seed, i)``, :mod:`advscale.attacks.robustness`), never on batch or chunk size; AutoAttack
    results are reproducible for fixed ``seed``, ``batch_size`` and ``chunk_size``.
    """

    attack: str = option("aa-standard", help="aa-standard | aa-rand | apgd-ce (AutoAttack) | "
                         "pgd-cw (clamped CW loss, the papers' PGD-40) | pgd-cw-margin "
                         "(unclamped CW margin) | pgd-ce (advscale PGD).")
    eps: float = option(8 / 255, help="L∞ radius.", unit="[0,1] pixel units", parse="fraction",
                        default_text="8/255")
    steps: int | None = option(None, help="PGD steps or APGD iterations for apgd-ce; AA "
                               "versions are fixed.", default_text="40 for PGD, 100 for apgd-ce")
    step_size: float | None = option(None, help="PGD step.", unit="[0,1] pixel units",
                                     parse="fraction", default_text="2/255")
    n: int | None = option(None, help="Images to attack (the first n of the test file).",
                           default_text="10000, or all if fewer")
    batch_size: int = option(250, help="Images per attack batch.")
    chunk_size: int = option(1000, help="Images per resumable chunk (one state record each).")
    seed: int = seed_option("the attack: PGD's image i starts from a point seeded by (seed, i), "
                            "whatever the batch and chunk size; AutoAttack's chunk c uses seed+c",
                            panel=None)

    def resolved(self, available: int | None = None) -> AttackSettings:
        """Validated settings with defaults filled in; AdvscaleError on bad values.

        ``available`` is the number of test images in the data file.
        """
        if self.attack not in ATTACKS:
            close = difflib.get_close_matches(self.attack, ATTACKS, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise AdvscaleError(f"unknown attack {self.attack!r}; choose from "
                                f"{', '.join(ATTACKS)}{hint}")
        _check_eps(self.eps)
        steps, step_size = _resolve_steps(self.attack, self.steps, self.step_size)
        n = _resolve_n(self.n, available)
        for name, value, low in (("batch_size", self.batch_size, 1),
                                 ("chunk_size", self.chunk_size, 1), ("seed", self.seed, 0)):
            if value < low:
                raise AdvscaleError(f"{name} must be >= {low}, got {value}", field=name)
        return replace(self, steps=steps, step_size=step_size, n=n, eps=float(self.eps),
                       batch_size=int(self.batch_size), chunk_size=int(self.chunk_size),
                       seed=int(self.seed))

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
    """(package, version) that implements ``attack``: AutoAttack's distribution or advscale."""
    if attack in PGD_ATTACKS:
        return "advscale", __version__
    from advscale.attacks.autoattack import find_backend

    b = find_backend()
    return b.package, b.version


def settings_key(checkpoint_sha256: str, data_sha256: str, s: AttackSettings,
                 package: str, package_version: str) -> str:
    """A 16-hex-digit id of one evaluation: same key ⇔ same checkpoint, data, settings, code.

    PGD keys also hash the random-start rule (``pgd_start``) and, for ``pgd-cw``, the loss rule
    (``pgd_loss``, :data:`PGD_LOSS_RULES`), so results of an older rule are never taken for this
    one's.
    """
    doc: dict[str, Any] = {
        "checkpoint_sha256": checkpoint_sha256, "data_sha256": data_sha256,
        "attack": s.attack, "eps": round(s.eps, 12), "steps": s.steps,
        "step_size": None if s.step_size is None else round(s.step_size, 12), "n": s.n,
        "batch_size": s.batch_size, "chunk_size": s.chunk_size, "seed": s.seed,
        "package": package, "package_version": package_version}
    if s.attack in PGD_ATTACKS:
        from advscale.attacks.robustness import START_RULE

        doc["pgd_start"] = START_RULE
        rule = PGD_LOSS_RULES.get(PGD_ATTACKS[s.attack])
        if rule is not None:
            doc["pgd_loss"] = rule
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def settings_config(s: AttackSettings, **extra: Any) -> dict[str, Any]:
    """The settings as a provenance ``config`` dict."""
    return {**asdict(s), **extra}
