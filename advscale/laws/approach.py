"""Scaling-law approaches as classes, looked up by one name in a registry.

Each approach (Bartoldson et al.'s Approaches 1–3, Debenedetti et al.'s power law and GBR) is
one :class:`Approach` subclass, registered under one name with :func:`register_approach`:

* ``approach1`` (``--approach 1``): envelope of training curves, L*, N*, D* as powers of
  FLOPs;
* ``approach2`` (``2``): Eq. 3, ``A/N^α + B'/D^β + E'`` with FID terms;
* ``approach3`` (``3``): Eq. 5, a data-quality bottleneck on the data term;
* ``power-law``: the best accuracy per FLOPs bin as ``C·FLOPs^α``;
* ``gbr``: gradient boosting on the training recipe (describes data, does not predict).

The registry names are the ``form`` values of ``fit`` records; :func:`get_approach` also
accepts the ``--approach`` spellings (``1``, ``2``, ``3``) — that mapping lives here only.

An approach answers ``fit(data)`` (the approach-specific part of a ``fit`` record) and, when
it predicts, some of ``predict`` (the fitted quantity at N, D, FID), ``at_budget`` (the value
at a FLOPs budget, for laws of FLOPs only), ``asymptote``, ``optimal`` (N*, D* for a budget),
``tradeoff`` (Eq. 6's ω_D), ``inverse`` (the least FLOPs reaching a value: along the optimal
frontier, or a law of FLOPs inverted) and ``derived``. An operation it does not override raises a
one-line :class:`~advscale.errors.AdvscaleError`; :meth:`Approach.supports` tells which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws.data import Point, RecordSet
from advscale.laws.objective import HUBER_DELTA
from advscale.laws.protocol import Protocol

Log = Callable[[str], None]
Progress = Callable[[int, int], None]

OPERATIONS = ("predict", "at_budget", "asymptote", "optimal", "tradeoff", "inverse", "derived")
"""What a law may be asked besides ``fit``; see :meth:`Approach.supports`."""


def _nolog(msg: str) -> None:
    pass


@dataclass
class FitData:
    """What an approach's ``fit`` gets: the selected points and the fit's settings."""

    points: list[Point]
    runs: RecordSet
    target: str
    n_boot: int = 0
    seed: int = 0
    full_grid: bool = True
    delta: float = HUBER_DELTA
    also: list[str] = field(default_factory=list)
    log: Log = _nolog
    progress: Progress | None = None
    protocol: Protocol = field(default_factory=Protocol)
    bins: int | None = None
    """Power law: the number of log-spaced bins (None: the approach's default)."""
    x: str | None = None
    """Power law: the field the law is of (None: ``train_flops``)."""


class Approach:
    """One way of fitting a scaling law, and what the fitted law answers.

    Class attributes describe the approach to the ``advscale fit`` pipeline: ``name`` (the
    registry name and the records' ``form``), ``option`` (the ``--approach`` spelling, also
    the records' ``approach``), ``params`` (the public parameter names a law document must
    give as numbers), ``inputs`` (``ndf``: queries give N, D, FID; ``flops``: a budget),
    ``default_target``, ``points`` (forced evaluation points per run, or None),
    ``needs_fid``/``needs_flops`` (fields each point must carry), ``default_exclusion``
    (the paper's exclusion rule by default) and ``warns_fid`` (warn about FIDs measured off
    the published protocol).
    """

    name: ClassVar[str] = ""
    option: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    params: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[str] = "flops"
    predictive: ClassVar[bool] = True
    default_target: ClassVar[str] = "adv_loss"
    points: ClassVar[str | None] = None
    needs_fid: ClassVar[bool] = False
    needs_flops: ClassVar[bool] = False
    default_exclusion: ClassVar[bool] = False
    warns_fid: ClassVar[bool] = False
    needs_nd: ClassVar[bool] = True
    """False when the law uses neither N nor D (a missing ``params``/``samples_seen`` is fine)."""
    log_space: ClassVar[bool] = True
    """True when the fitted quantity must be > 0 (a fit in log space)."""
    fitted_as_error: ClassVar[bool] = False
    """True when an accuracy target is fitted as the error rate 1 − accuracy."""
    options: ClassVar[tuple[str, ...]] = ()
    """The approach-specific fit options it accepts (``bins``, ``x``)."""
    constant_exponents: ClassVar[bool] = True
    """False when N* ∝ F^a holds only locally (``predict`` then adds the local exponents)."""

    # -- what is refused, in one line ------------------------------------------------------
    def refusal(self, operation: str) -> AdvscaleError:
        """The error for an operation this approach does not support."""
        messages = {
            "predict": f"a {self.name} law predicts from --flops, not from N and D",
            "at_budget": f"a {self.name} law predicts from N and D, not from a FLOPs budget "
                         f"alone (ask for the compute-optimal N*, D*)",
            "asymptote": f"a {self.name} law has no N, D → ∞ asymptote",
            "optimal": f"a {self.name} law gives no compute-optimal N*, D*",
            "tradeoff": f"the Eq. 6 trade-off needs an Approach 2 or 3 law, not {self.name}",
            "derived": f"a {self.name} law has no derived quantities",
            "inverse": f"a {self.name} law cannot be inverted for a target",
        }
        return AdvscaleError(messages.get(operation, f"a {self.name} law cannot {operation}"))

    def supports(self, operation: str) -> bool:
        """True when this approach overrides ``operation`` (one of :data:`OPERATIONS`)."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        return self.predictive and getattr(type(self), operation) is not getattr(
            Approach, operation)

    def require(self, operation: str) -> None:
        """Raise :meth:`refusal` unless ``operation`` is supported."""
        if not self.supports(operation):
            raise self.refusal(operation)

    # -- a law document's parameters -------------------------------------------------------
    def check_params(self, params: Any, law: str = "law") -> dict[str, float]:
        """The law's public parameters as floats, or a one-line error naming the missing."""
        if not isinstance(params, dict) or any(
                isinstance(params.get(k), bool) or not isinstance(params.get(k), int | float)
                for k in self.params):
            raise AdvscaleError(f"law {law!r}: 'params' must give numbers for "
                                f"{', '.join(self.params)}")
        return {k: float(params[k]) for k in self.params}

    # -- the operations (refused unless a subclass overrides them) --------------------------
    def fit(self, data: FitData) -> dict[str, Any]:
        """The approach-specific fields of a ``fit`` record (``form``, ``params``, ...)."""
        raise NotImplementedError

    def predict(self, params: dict, n, d, fid=0.0) -> np.ndarray:
        """The fitted quantity at N parameters, D samples and FID."""
        raise self.refusal("predict")

    def at_budget(self, params: dict, flops) -> np.ndarray:
        """The fitted quantity for a training budget of ``flops`` (laws of FLOPs only)."""
        raise self.refusal("at_budget")

    def asymptote(self, params: dict, fid=0.0) -> np.ndarray:
        """The fitted quantity as N, D → ∞ at ``fid``."""
        raise self.refusal("asymptote")

    def optimal(self, params: dict, flops: float, fid=0.0, k: float = 0.0
                ) -> tuple[float, float, float]:
        """N*, D* and the value at them for ``flops`` (plain FLOPs = k·N·D)."""
        raise self.refusal("optimal")

    def tradeoff(self, params: dict, n_opt: float, d_opt: float, omega_n: float, fid=0.0
                 ) -> float:
        """Eq. 6: the multiple ω_D of D* keeping the value at its optimum when N = ω_N·N*."""
        raise self.refusal("tradeoff")

    def inverse(self, params: dict, value: float, fid=0.0, k: float = 0.0,
                higher: bool = False) -> float | None:
        """The least FLOPs (the law's x) at which the fitted quantity reaches ``value`` (at or
        below it for a loss or error, at or above it for an accuracy: ``higher``); None when
        no budget does, ``inf`` when none below 1e300 FLOPs does."""
        raise self.refusal("inverse")

    def derived(self, params: dict) -> dict[str, float]:
        """Quantities derived from the parameters (e.g. Eq. 4's exponents a, b)."""
        raise self.refusal("derived")


# -- the registry ----------------------------------------------------------------------------
_REGISTRY: dict[str, Approach] = {}
_SPELLINGS: dict[str, str] = {}

A = TypeVar("A", bound=type[Approach])


def register_approach(cls: A) -> A:
    """Class decorator: register one instance of ``cls`` under ``cls.name``.

    ``cls.option`` and ``cls.aliases`` become other accepted spellings of the same name.
    """
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    for spelling in (cls.name, cls.option, *cls.aliases):
        owner = _SPELLINGS.get(spelling)
        if spelling and owner is not None and owner != cls.name:
            raise ValueError(f"approach spelling {spelling!r} is taken by {owner!r}")
    _REGISTRY[cls.name] = cls()
    for spelling in (cls.name, cls.option, *cls.aliases):
        if spelling:
            _SPELLINGS[spelling] = cls.name
    return cls


def approach_name(spelling: Any) -> str | None:
    """The registry name for a name, an ``--approach`` value or a record ``form``; else None."""
    return _SPELLINGS.get(str(spelling)) if spelling is not None else None


def get_approach(spelling: Any, what: str = "approach") -> Approach:
    """The registered approach for ``spelling`` (``2``, ``approach2``, ``power-law``...);
    ``what`` names the field it came from."""
    name = approach_name(spelling)
    if name is None:
        raise AdvscaleError(f"{what} {spelling!r}: choose from "
                            f"{', '.join(a.option for a in _REGISTRY.values())}", field=what)
    return _REGISTRY[name]


def list_approaches() -> tuple[str, ...]:
    """The registered approaches' names, in registration order."""
    return tuple(_REGISTRY)


def approach_options() -> tuple[str, ...]:
    """The ``--approach`` spellings, in registration order (``1``, ``2``, ``3``, ...)."""
    return tuple(a.option for a in _REGISTRY.values())
