"""A fitted or published law, and everything ``advscale predict`` computes from it.

A law document is a ``fit`` record (docs/formats.md) or a preset
(:mod:`advscale.laws.presets`): ``form`` (the approach's registry name, see
:mod:`advscale.laws.approach`: ``approach1``, ``approach2``, ``approach3``, ``power-law``;
``gbr`` fits describe data and do not predict), ``params``, ``target``, the
fitted ``quantity`` (``loss``; ``error`` = 1 − accuracy when an accuracy was fitted with
Approach 2/3; ``accuracy`` for power laws), ``flops_per_param_sample`` and optionally
``loss_to_accuracy`` and ``bootstrap`` (parameter samples, for prediction bands).
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from advscale.core.jsonl import decode_text, loads_bounded
from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE
from advscale.errors import AdvscaleError
from advscale.laws.approach import Approach, approach_name, get_approach
from advscale.laws.bootstrap import percentile_interval
from advscale.laws.presets import PAPER_ACCURACY_MAP, PRESETS, preset

LOCAL_STEP = 0.05
"""Half-width in ln F of the central difference for the local exponents (±5% of the budget)."""


def load_law_doc(spec: str, stdin: IO[str] | None = None) -> dict[str, Any]:
    """A law document from a preset name, a fit JSON/JSONL file, or ``-`` (stdin).

    A file may hold the ``fit`` record as one JSONL line (what ``advscale fit`` prints) or as
    pretty-printed JSON; with several ``fit`` records, the last one is used.
    """
    if spec in PRESETS:
        return preset(spec)
    if spec == "-":
        text = (stdin if stdin is not None else sys.stdin).read()
        where = "<stdin>"
    else:
        path = Path(spec)
        if not path.is_file():
            close = difflib.get_close_matches(spec, list(PRESETS), n=2, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise AdvscaleError(
                f"law {spec!r}: no such file, and not a preset ({', '.join(PRESETS)}){hint}",
                field="law")
        where = os.fspath(path)
        text = decode_text(path.read_bytes(), where)
    docs = _parse_docs(text, where)
    fits = [d for d in docs if d.get("kind") == "fit"]
    if not fits:
        raise AdvscaleError(f"{where}: no 'fit' record found (write one with advscale fit)")
    doc = fits[-1]
    doc.setdefault("name", where)
    return doc


def _parse_docs(text: str, where: str) -> list[dict[str, Any]]:
    text = text.strip()
    if not text:
        raise AdvscaleError(f"{where}: empty; expected a fit record")
    try:
        obj = loads_bounded(text, where)
        return [obj] if isinstance(obj, dict) else []
    except AdvscaleError:
        pass
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            obj = loads_bounded(line, f"{where}:{i}")
            if isinstance(obj, dict):
                out.append(obj)
    return out


def law_approach(doc: dict[str, Any], name: str = "law") -> Approach:
    """The approach of a law document, from its ``form`` (a one-line error if unknown)."""
    form = doc.get("form")
    if approach_name(form) is None:
        raise AdvscaleError(f"law {name!r}: unknown form {form!r}")
    return get_approach(form)


class Law:
    """Evaluate a law document: values, compute-optimal settings, asymptote, Eq. 6, bands.

    What the law answers is its approach's (:mod:`advscale.laws.approach`); ``form`` is the
    approach's registry name.
    """

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.name = str(doc.get("name", "law"))
        self.spec = self.name
        self.approach = law_approach(doc, self.name)
        if not self.approach.predictive:
            raise self.approach.refusal("predict")
        self.form = self.approach.name
        self.params = self.approach.check_params(doc.get("params"), self.name)
        self.target = str(doc.get("target", "adv_loss"))
        self.quantity = str(doc.get("quantity", "loss"))
        k = doc.get("flops_per_param_sample")
        self.k = float(k) if isinstance(k, int | float) and k > 0 else PAPER_FLOPS_PER_PARAM_SAMPLE
        self.k_override: float | None = None
        self.acc_map = doc.get("loss_to_accuracy") or None
        self.x = str(doc.get("x") or "train_flops")
        """What a law of FLOPs is of: ``train_flops``, or the field ``fit --x`` named."""

    @property
    def fid_metric(self) -> str | None:
        """The quality metric of the law's FIDs (``fid`` for the papers' presets), or None."""
        if isinstance(self.doc.get("fid_metric"), str):
            return self.doc["fid_metric"]
        metrics = (self.doc.get("fid_inputs") or {}).get("metrics") or []
        return metrics[0] if len(metrics) == 1 else None

    def ranges(self) -> dict[str, list[float]]:
        """The fitted data's spans, by axis (``params``, ``samples``, ``flops``); empty for
        presets. A law of another x than FLOPs spans that x under ``flops``."""
        data = self.doc.get("data") or {}
        spans = {"params": data.get("params_range"), "samples": data.get("samples_range"),
                 "flops": data.get("flops_range")}
        if self.x != "train_flops":
            spans["flops"] = self.doc.get("x_range")
        return {k: [float(v[0]), float(v[1])] for k, v in spans.items()
                if isinstance(v, list) and len(v) == 2 and all(
                    isinstance(e, int | float) and e > 0 for e in v)}

    @classmethod
    def load(cls, spec: str, stdin: IO[str] | None = None) -> Law:
        """The law named by ``spec``: a preset, a fit file, or ``-`` (stdin)."""
        law = cls(load_law_doc(spec, stdin))
        law.spec = spec
        return law

    def set_flops_per_param_sample(self, k: float) -> None:
        """Use ``k`` in FLOPs = k·N·D instead of the law's own constant."""
        if not k > 0:
            raise AdvscaleError(f"flops_per_param_sample must be > 0, got {k!r}",
                                field="flops_per_param_sample")
        self.k = self.k_override = float(k)

    # -- parameter samples ----------------------------------------------------------------
    def samples(self) -> list[dict[str, float]]:
        """Bootstrap parameter samples (empty when the law carries none)."""
        bs = self.doc.get("bootstrap") or {}
        names, rows = bs.get("names"), bs.get("samples")
        if not names or not rows:
            return []
        return [dict(zip(names, r, strict=True)) for r in rows
                if r is not None and all(v is not None for v in r)]

    # -- the law --------------------------------------------------------------------------
    def needs(self) -> str:
        """What a query needs: ``ndf`` (N, D, FID) or ``flops``."""
        return self.approach.inputs

    def supports(self, operation: str) -> bool:
        """Whether the law's approach answers ``operation`` (e.g. ``asymptote``)."""
        return self.approach.supports(operation)

    def value(self, n, d, fid=0.0, params: dict | None = None) -> np.ndarray:
        """The fitted quantity at N parameters, D samples, FID (Approaches 2 and 3)."""
        return self.approach.predict(self.params if params is None else params, n, d, fid)

    def at_budget(self, flops, params: dict | None = None) -> np.ndarray:
        """The fitted quantity for a budget of ``flops`` (laws of FLOPs: the power law)."""
        return self.approach.at_budget(self.params if params is None else params, flops)

    def asymptote(self, fid=0.0, params: dict | None = None) -> np.ndarray:
        """The fitted quantity as N, D → ∞ at ``fid``."""
        return self.approach.asymptote(self.params if params is None else params, fid)

    def optimal(self, flops: float, fid=0.0, params: dict | None = None
                ) -> tuple[float, float, float]:
        """N*, D* and the value at them for a budget of ``flops`` (plain FLOPs)."""
        p = self.params if params is None else params
        return self.approach.optimal(p, flops, fid, self.k)

    def local_exponents(self, flops: float, fid=0.0, params: dict | None = None,
                        step: float = LOCAL_STEP) -> tuple[float, float]:
        """d ln N*/d ln F and d ln D*/d ln F at ``flops`` (central differences in ln F).

        Since k·N*·D* = F, the two sum to 1. For Approach 2 they equal Eq. 4's a and b; for
        Approach 3 at FID > 0 they drift with the budget (the data-quality bottleneck).
        """
        n_hi, d_hi, _ = self.optimal(flops * math.exp(step), fid, params)
        n_lo, d_lo, _ = self.optimal(flops * math.exp(-step), fid, params)
        return (math.log(n_hi / n_lo) / (2 * step), math.log(d_hi / d_lo) / (2 * step))

    def tradeoff(self, flops: float, omega_n: float, fid=0.0, params: dict | None = None
                 ) -> tuple[float, float]:
        """Eq. 6 at the budget's optimum: ω_D and the compute overhead ω_N·ω_D − 1."""
        self.approach.require("tradeoff")
        p = self.params if params is None else params
        n, d, _ = self.optimal(flops, fid, p)
        wd = self.approach.tradeoff(p, n, d, omega_n, fid)
        return wd, omega_n * wd - 1

    def inverse(self, value: float, fid=0.0, params: dict | None = None) -> float | None:
        """The least FLOPs (the law's x) at which the fitted quantity reaches ``value``; None
        when no budget does (at or beyond the asymptote), ``inf`` when none below 1e300."""
        self.approach.require("inverse")
        p = self.params if params is None else params
        return self.approach.inverse(p, value, fid, self.k, self.quantity == "accuracy")

    def from_accuracy(self, acc: float, mapping: str = "auto") -> float:
        """The fitted quantity at accuracy ``acc``: the inverse of :meth:`to_accuracy`."""
        if self.quantity == "error":
            return 1.0 - acc
        if self.quantity == "accuracy":
            return acc
        m = self._map(mapping)
        if not m["slope"] < 0:
            raise AdvscaleError(f"law {self.name!r}: its loss→accuracy line does not fall with "
                                f"the loss (slope {m['slope']:g}); it cannot be inverted")
        return (acc - m["intercept"]) / m["slope"]

    def _map(self, mapping: str) -> dict[str, float]:
        m = self.acc_map if mapping in ("auto", "law") and self.acc_map else None
        if mapping == "law" and m is None:
            raise AdvscaleError(f"law {self.name!r} carries no loss→accuracy regression")
        return m or PAPER_ACCURACY_MAP

    def to_accuracy(self, value, mapping: str = "auto") -> np.ndarray:
        """Accuracy from the fitted quantity: 1 − error, identity, or the loss→accuracy line.

        ``mapping``: ``auto`` (the law's own regression when it has one, else the paper's),
        ``paper`` or ``law``.
        """
        v = np.asarray(value, dtype=float)
        if self.quantity == "error":
            return 1 - v
        if self.quantity == "accuracy":
            return v
        m = self._map(mapping)
        return m["intercept"] + m["slope"] * v

    def also(self) -> dict[str, dict[str, float]]:
        """Secondary power laws (cost, energy, CO2 against FLOPs)."""
        return dict(self.doc.get("also") or {})


def band(fn: Callable[[dict], float], samples: list[dict], level: float = 0.95
         ) -> list[float] | None:
    """The percentile band of ``fn`` over bootstrap parameter samples."""
    if not samples:
        return None
    vals = []
    for s in samples:
        try:
            vals.append(float(np.asarray(fn(s))))
        except (ValueError, ArithmeticError, AdvscaleError):
            vals.append(float("nan"))
    return percentile_interval(np.array(vals), level)
