"""One small adapter over fra31's AutoAttack (Croce & Hein, ICML 2020).

Two distributions of the same code exist: the official package installed from its repository
(``pip install git+https://github.com/fra31/auto-attack``, imports as ``autoattack``) and PyPI's
``pyautoattack`` (>=0.2,<0.3), which renames arguments (``attacks_to_run`` → ``attacks``,
``bs`` → ``batch_size``), always returns ``(x_adv, y_adv)`` and logs through :mod:`logging`
instead of printing. :func:`find_backend` picks the official package when it is installed and
``pyautoattack`` otherwise (``$ADVSCALE_AUTOATTACK`` forces one); :class:`AutoAttackRunner`
translates the arguments, and every result names the package and version that ran.

The runner handles the known traps:

* the device is passed explicitly (the official package defaults to CUDA);
* AutoAttack's prints go to stderr, so stdout stays pure JSONL;
* the global RNG is reseeded before each attack and AutoAttack gets an explicit seed (its
  default is the wall clock);
* the labels AutoAttack returns are handed to the evaluation service, which decides robustness
  (:func:`advscale.attacks.robustness.image_outcomes`), never AutoAttack's log lines;
* the returned images are checked to lie in the ε-ball (L∞ or L2) and in [0, 1].

The ensemble runs one attack at a time, each on the images still robust after the previous ones,
in batches of ``batch_size`` over those images in order: exactly the cascade of
``run_standard_evaluation`` with the same seed, and it yields the name of the attack that broke
each image. After each stage ``on_stage(stage, still_robust, images)`` is called (the progress
lines of ``advscale attack``).

Attack names (as advscale spells them): ``aa-standard`` (APGD-CE, APGD-T, FAB-T, Square; the
RobustBench evaluation), ``aa-rand`` (APGD-CE and APGD-DLR with 20 EOT iterations, for
randomised defences) and ``apgd-ce`` (the first stage of ``aa-standard`` on its own: 100
iterations, one restart). Images are float tensors (N, 3, H, W) in [0, 1]; the model maps them
to logits (normalisation inside the model); ``eps`` is in [0, 1] pixel units, an L∞ radius
(``norm="linf"``, AutoAttack's ``Linf``) or a per-image L2 radius (``norm="l2"``, ``L2``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch
from torch import nn

from advscale.errors import AdvscaleError

BACKENDS = ("autoattack", "pyautoattack")
"""Import names tried in order: the official package first, then PyPI's pyautoattack."""

AA_ATTACKS: dict[str, tuple[str, list[str] | None]] = {
    "aa-standard": ("standard", None),
    "aa-rand": ("rand", None),
    "apgd-ce": ("standard", ["apgd-ce"]),
}
"""advscale attack name → (AutoAttack version, attacks to run or None for the version's own)."""

ENV_BACKEND = "ADVSCALE_AUTOATTACK"
AA_NORMS = {"linf": "Linf", "l2": "L2"}
"""advscale norm → AutoAttack's ``norm`` argument."""
BALL_TOL = 1e-5
"""Slack of the ε-ball check of returned images (float rounding in AutoAttack's projections)."""


@dataclass(frozen=True)
class Backend:
    """An importable AutoAttack distribution."""

    package: str
    """Import name: ``autoattack`` (official) or ``pyautoattack``."""
    version: str
    """Installed distribution version (``unknown`` when it cannot be told)."""
    cls: Any
    """Its ``AutoAttack`` class."""


def _version_of(name: str, module: Any) -> str:
    for dist in (name, name.replace("_", "-")):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return str(getattr(module, "__version__", "unknown"))


def find_backend(prefer: str | None = None) -> Backend:
    """The AutoAttack distribution to use.

    ``prefer`` (or ``$ADVSCALE_AUTOATTACK``) names one of :data:`BACKENDS`; otherwise the official
    ``autoattack`` is used when importable, else ``pyautoattack``. Raises AdvscaleError when
    neither is installed or the preferred one is missing.
    """
    prefer = prefer or os.environ.get(ENV_BACKEND) or None
    if prefer is not None and prefer not in BACKENDS:
        raise AdvscaleError(f"AutoAttack backend {prefer!r} unknown; choose from {BACKENDS}")
    names = [prefer] if prefer else list(BACKENDS)
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        cls = getattr(module, "AutoAttack", None)
        if cls is None or not hasattr(cls, "run_standard_evaluation"):
            continue  # an unrelated package of the same name
        return Backend(name, _version_of(name, module), cls)
    if prefer:
        raise AdvscaleError(f"AutoAttack backend {prefer!r} is not installed")
    raise AdvscaleError(
        "AutoAttack is not installed: pip install 'pyautoattack>=0.2,<0.3' (or the official "
        "package from github.com/fra31/auto-attack)"
    )


@dataclass
class AutoAttackResult:
    """What one AutoAttack run on N images found (arrays indexed like the input)."""

    x_adv: torch.Tensor
    """(N, C, H, W) float32 in [0, 1]: the successful adversarial image, else the clean one."""
    pred_clean: np.ndarray
    """int64 (N,): the model's clean prediction."""
    pred_adv: np.ndarray
    """int64 (N,): the label AutoAttack returned for ``x_adv`` (the clean prediction where no
    stage found an adversarial image)."""
    broken_stage: list[str]
    """Per image: the stage whose adversarial image fooled the model, or ``""``."""
    stages: list[str]
    """The stages run, in order."""


@contextlib.contextmanager
def _stdout_to_stderr(verbose: bool) -> Iterator[None]:
    """Route prints (official package) and log records (pyautoattack) to stderr."""
    logger = logging.getLogger("auto-attack")
    handler = None
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("autoattack: %(message)s"))
        logger.addHandler(handler)
        old_level = logger.level
        logger.setLevel(logging.DEBUG)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(old_level)


class AutoAttackRunner:
    """AutoAttack at ``eps`` under ``norm`` on ``model``, on an explicit device, with a fixed seed.

    ``attack`` is a key of :data:`AA_ATTACKS`. ``n_iter`` overrides APGD's iteration count
    (``apgd-ce`` only; AutoAttack's versions have fixed settings). ``verbose`` shows AutoAttack's
    progress on stderr.
    """

    def __init__(
        self,
        model: nn.Module,
        attack: str = "aa-standard",
        *,
        eps: float = 8 / 255,
        norm: str = "linf",
        seed: int = 0,
        device: str | torch.device = "cpu",
        n_iter: int | None = None,
        backend: Backend | None = None,
        verbose: bool = False,
    ) -> None:
        if attack not in AA_ATTACKS:
            raise AdvscaleError(f"unknown AutoAttack name {attack!r}; choose from "
                                f"{', '.join(AA_ATTACKS)}")
        self.model = model
        self.attack = attack
        if norm not in AA_NORMS:
            raise AdvscaleError(f"norm {norm!r}: AutoAttack runs under "
                                f"{', '.join(AA_NORMS)}", field="norm")
        self.norm = norm
        self.eps = float(eps)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.backend = backend or find_backend()
        self.verbose = verbose
        version, stages = AA_ATTACKS[attack]
        self.version = version
        with _stdout_to_stderr(verbose):
            self.aa = self._construct(version)
        if stages is not None:
            self.aa.attacks_to_run = list(stages)
        if n_iter is not None:
            if attack != "apgd-ce":
                raise AdvscaleError(f"{attack} has fixed settings; the iteration count can only "
                                    "be changed for apgd-ce")
            self.aa.apgd.n_iter = int(n_iter)
        self.stages: list[str] = list(self.aa.attacks_to_run)

    @property
    def package(self) -> str:
        return self.backend.package

    @property
    def package_version(self) -> str:
        return self.backend.version

    @property
    def n_iter(self) -> int:
        """APGD iterations per restart (100 in AutoAttack's versions)."""
        return int(self.aa.apgd.n_iter)

    def _construct(self, version: str) -> Any:
        """Build the backend's AutoAttack object, translating argument names."""
        params = inspect.signature(self.backend.cls.__init__).parameters
        kwargs: dict[str, Any] = {"norm": AA_NORMS[self.norm], "eps": self.eps, "seed": self.seed,
                                  "version": version, "device": self.device}
        if "verbose" in params:  # official package
            kwargs["verbose"] = self.verbose
        aa = self.backend.cls(self.model, **kwargs)
        aa.verbose = self.verbose
        return aa

    def _run_one(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[
            torch.Tensor, torch.Tensor]:
        """One ``run_standard_evaluation`` call; returns (x_adv, labels of x_adv)."""
        fn = self.aa.run_standard_evaluation
        params = inspect.signature(fn).parameters
        kwargs: dict[str, Any] = {}
        if "batch_size" in params:  # pyautoattack
            kwargs["batch_size"] = batch_size
        else:  # official
            kwargs["bs"] = batch_size
            if "return_labels" in params:
                kwargs["return_labels"] = True
        out = fn(x, y, **kwargs)
        if isinstance(out, tuple):
            x_adv, y_adv = out[0], out[1]
        else:  # old official versions return only the images: label them ourselves
            x_adv, y_adv = out, _predict(self.model, out, batch_size, self.device)
        return x_adv, y_adv

    def run(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 250,
            on_stage: Callable[[str, int, int], None] | None = None) -> AutoAttackResult:
        """Attack ``x`` (N, C, H, W) in [0, 1] with labels ``y`` (N,); see the module doc."""
        if batch_size < 1:
            raise AdvscaleError("batch_size must be >= 1", field="batch_size")
        # contiguous NCHW: AutoAttack views gradients with .view(), which fails on the
        # channels-last strides a permuted NHWC batch has
        x = x.detach().to(device=self.device, dtype=torch.float32).contiguous()
        y = y.detach().to(device=self.device, dtype=torch.int64)
        with torch.no_grad():
            pred_clean = _predict(self.model, x, batch_size, self.device)
        # the cascade attacks the images no stage has fooled yet (clean-correct ones first)
        pending = (pred_clean == y).cpu().numpy().copy()
        pred_adv = pred_clean.cpu().numpy().copy()
        x_adv = x.clone()
        broken_stage = [""] * int(x.shape[0])
        for stage in self.stages:
            idx = np.flatnonzero(pending)
            if idx.size:
                self._stage(stage, x, y, idx, batch_size, x_adv, pred_adv, broken_stage)
                pending[idx] = [broken_stage[j] == "" for j in idx]
            if on_stage is not None:
                on_stage(stage, int(pending.sum()), int(x.shape[0]))
        self.aa.attacks_to_run = list(self.stages)
        return AutoAttackResult(x_adv.detach(), pred_clean.cpu().numpy().astype(np.int64),
                                pred_adv.astype(np.int64), broken_stage, list(self.stages))

    def _stage(self, stage: str, x: torch.Tensor, y: torch.Tensor, idx: np.ndarray,
               batch_size: int, x_adv: torch.Tensor, pred_adv: np.ndarray,
               broken_stage: list[str]) -> None:
        """Run one stage on images ``idx``; record the ones it fooled (in place)."""
        self.aa.attacks_to_run = [stage]
        torch.manual_seed(self.seed)
        np.random.seed(self.seed % 2**32)
        it = torch.as_tensor(idx, device=self.device)
        with _stdout_to_stderr(self.verbose):
            xa, ya = self._run_one(x[it], y[it], batch_size)
        xa = xa.to(self.device, torch.float32)
        ya = ya.to(self.device).long()
        self._check_ball(x[it], xa)
        broken = (ya != y[it]).cpu().numpy()
        for j in idx[broken]:
            broken_stage[j] = stage
        if broken.any():
            bt = torch.as_tensor(idx[broken], device=self.device)
            bsel = torch.as_tensor(np.flatnonzero(broken), device=self.device)
            x_adv[bt] = xa[bsel]
            pred_adv[idx[broken]] = ya[bsel].cpu().numpy()

    def _check_ball(self, x: torch.Tensor, x_adv: torch.Tensor) -> None:
        if x_adv.shape != x.shape:
            raise AdvscaleError(f"AutoAttack returned shape {tuple(x_adv.shape)} for "
                                f"{tuple(x.shape)}")
        diff = (x_adv - x).flatten(1)
        if not x.numel():
            dist = 0.0
        elif self.norm == "l2":
            dist = float(diff.norm(dim=1).max())
        else:
            dist = float(diff.abs().max())
        if dist > self.eps + BALL_TOL or float(x_adv.min()) < -1e-6 or float(
                x_adv.max()) > 1 + 1e-6:
            raise AdvscaleError(f"AutoAttack returned images outside the {self.norm} "
                                f"eps={self.eps:.6f} ball or [0, 1] (distance {dist:.6f})")


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int,
             device: torch.device) -> torch.Tensor:
    """Argmax labels of ``model`` on ``x`` in batches (no gradients)."""
    out = []
    with torch.no_grad():
        for i in range(0, int(x.shape[0]), batch_size):
            out.append(model(x[i:i + batch_size].to(device)).argmax(1))
    if not out:
        return torch.empty(0, dtype=torch.int64, device=device)
    return torch.cat(out).long()
