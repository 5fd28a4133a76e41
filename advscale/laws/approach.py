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

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from advscale.core.options import parse_fields
from advscale.errors import AdvscaleError
from advscale.laws.data import Needs, Point, RecordSet, check_target_values
from advscale.laws.objective import HUBER_DELTA
from advscale.laws.protocol import Protocol

Log = Callable[[str], None]
Progress = Callable[[int, int], None]

FIGURES = {
    "law_of_nd": "isoloss contours, predicted vs actual, N*/D*/L* vs FLOPs (one law each)",
    "quality": "the law across qualities and N*, D* per quality (Figure 5)",
    "accuracy_vs_flops": "best accuracy per FLOPs with the law (Debenedetti et al. Figure 2)",
    "energy_vs_flops": "energy, CO2 and cost per FLOPs with the law's also-fitted laws",
    "gbr": "GBR predicted vs actual and feature importances (Figures 1b, 1c)",
}
"""The report figures a law can be drawn on, by the name :attr:`Approach.figures` uses."""

OPERATIONS = ("predict", "at_budget", "asymptote", "optimal", "tradeoff", "inverse", "derived")
"""What a law may be asked besides ``fit``; see :meth:`Approach.supports`."""


def _nolog(msg: str) -> None:
    pass


@dataclass
class FitData:
    """What an approach's ``fit`` gets: the selected points and the fit's settings
    (``options``: the approach's own, an instance of its :attr:`Approach.Options`, or None)."""

    points: list[Point]
    runs: RecordSet
    target: str
    n_boot: int = 0
    seed: int = 0
    full_grid: bool = True
    delta: float = HUBER_DELTA
    log: Log = _nolog
    progress: Progress | None = None
    protocol: Protocol = field(default_factory=Protocol)
    options: Any = None


class Approach:
    """One way of fitting a scaling law, and what the fitted law answers.

    Class attributes describe the approach to the ``advscale fit`` pipeline: ``name`` (the
    registry name and the records' ``form``), ``option`` (the ``--approach`` spelling, also
    the records' ``approach``), ``params`` (the public parameter names a law document must
    give as numbers), ``inputs`` (``ndf``: queries give N, D, FID; ``flops``: a budget),
    ``default_target``, ``points`` (forced evaluation points per run, or None), ``needs``
    (the fields each point must carry), ``default_exclusion`` (the paper's exclusion rule by
    default), ``Options`` (a dataclass of the approach's own fit options, declared with
    :func:`~advscale.core.options.option`: ``advscale fit`` shows them in a panel of their
    own and records them in the provenance) and ``figures`` (the report figures its laws are
    drawn on, :data:`FIGURES`).

    What differs between approaches in how points are checked and described is a method
    (:meth:`needs_for`, :meth:`check_values`, :meth:`quality_metric`, :meth:`draws`), so the
    pipeline never branches on an approach's name.
    """

    name: ClassVar[str] = ""
    option: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    params: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[str] = "flops"
    predictive: ClassVar[bool] = True
    default_target: ClassVar[str] = "adv_loss"
    points: ClassVar[str | None] = None
    needs: ClassVar[Needs] = Needs()
    default_exclusion: ClassVar[bool] = False
    Options: ClassVar[type | None] = None
    """The approach's own fit options: a dataclass of :func:`~advscale.core.options.option`
    fields (None: it takes none)."""
    figures: ClassVar[tuple[str, ...]] = ()
    """The report figures (:data:`FIGURES`) the approach's laws are drawn on."""
    constant_exponents: ClassVar[bool] = True
    """False when N* ∝ F^a holds only locally (``predict`` then adds the local exponents)."""

    # -- the approach's own options ----------------------------------------------------------
    def make_options(self, given: Mapping[str, Any] | None = None) -> Any:
        """:attr:`Options` from the options ``given`` (None values are unset); an option
        this approach does not take is refused in one line naming the approaches that do."""
        given = {k: v for k, v in (given or {}).items() if v not in (None, [], ())}
        names = option_names(type(self))
        for key in given:
            if key not in names:
                takers = [a.option for a in _REGISTRY.values() if key in option_names(type(a))]
                where = (f"applies to approach {', '.join(takers)}, not {self.option}"
                         if takers else f"is not an option of approach {self.option}")
                raise AdvscaleError(f"{key} {where}", field=f"{key},approach")
        if self.Options is None:
            return None
        return self.Options(**parse_fields(self.Options, given))

    def needs_for(self, options: Any) -> Needs:
        """The fields each point must carry for a fit with ``options`` (default :attr:`needs`)."""
        return self.needs

    def check_values(self, points: list[Point], target: str) -> None:
        """Refuse values this approach cannot fit, in one line (default: a fit in log space
        needs values > 0; accuracies must be fractions)."""
        check_target_values(points, target)

    def quality_metric(self, info: dict[str, Any], log: Log) -> str | None:
        """The one quality metric of the fit's FIDs (``info``: the fit's ``fid_inputs``), or
        None; an approach whose law is of FID refuses a mix and warns off-protocol FIDs."""
        metrics = info.get("metrics") or []
        return metrics[0] if len(metrics) == 1 else None

    def draws(self, figure: str, law: dict[str, Any]) -> bool:
        """Whether the report draws ``law`` (a record of this approach) on ``figure``."""
        return figure in self.figures

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
    unknown = set(cls.figures) - set(FIGURES)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown report figures {sorted(unknown)}; "
                         f"choose from {', '.join(FIGURES)}")
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


def option_names(cls: type[Approach]) -> tuple[str, ...]:
    """The names of an approach's own fit options (its :attr:`Approach.Options` fields)."""
    return tuple(f.name for f in dataclasses.fields(cls.Options)) if cls.Options else ()


def option_classes() -> tuple[type, ...]:
    """The registered approaches' :attr:`Approach.Options` dataclasses (each once)."""
    out: list[type] = []
    for appr in _REGISTRY.values():
        if appr.Options is not None and appr.Options not in out:
            out.append(appr.Options)
    return tuple(out)


def list_approaches() -> tuple[str, ...]:
    """The registered approaches' names, in registration order."""
    return tuple(_REGISTRY)


def approach_options() -> tuple[str, ...]:
    """The ``--approach`` spellings, in registration order (``1``, ``2``, ``3``, ...)."""
    return tuple(a.option for a in _REGISTRY.values())
