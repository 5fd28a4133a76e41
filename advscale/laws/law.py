"""A fitted or published law, and everything ``advscale predict`` computes from it.

A law document is the payload of a ``fit`` record (docs/formats.md) or a preset
(:mod:`advscale.laws.presets`): ``form`` (``approach1``, ``approach2``, ``approach3``,
``power-law``; ``gbr`` fits describe data and do not predict), ``params``, ``target``, the
fitted ``quantity`` (``loss``; ``error`` = 1 − accuracy when an accuracy was fitted with
Approach 2/3; ``accuracy`` for power laws), ``flops_per_param_sample`` and optionally
``loss_to_accuracy`` and ``bootstrap`` (parameter samples, for prediction bands).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from advscale.errors import AdvscaleError
from advscale.laws import approach1, approach2, approach3, powerlaw
from advscale.laws.bootstrap import percentile_interval
from advscale.laws.optimal import (
    PAPER_FLOPS_PER_PARAM_SAMPLE,
    optimal_approach2,
    optimal_numeric,
    tradeoff_approach2,
    tradeoff_numeric,
)
from advscale.laws.presets import PAPER_ACCURACY_MAP, PRESETS, preset

PREDICTIVE_FORMS = ("approach1", "approach2", "approach3", "power-law")
_PARAMS = {"approach2": approach2.PUBLIC, "approach3": approach3.PUBLIC,
           "approach1": ("k_L", "s", "k_N", "a", "k_D", "b"), "power-law": ("C", "alpha")}


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
            raise AdvscaleError(
                f"--law {spec!r}: no such file, and not a preset ({', '.join(PRESETS)})"
            )
        text = path.read_text(encoding="utf-8")
        where = os.fspath(path)
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
        obj = json.loads(text)
        return [obj] if isinstance(obj, dict) else []
    except json.JSONDecodeError:
        pass
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise AdvscaleError(f"{where}:{i}: not valid JSON ({e.msg})") from None
            if isinstance(obj, dict):
                out.append(obj)
    return out


class Law:
    """Evaluate a law document: values, compute-optimal settings, asymptote, Eq. 6, bands."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.form = doc.get("form")
        self.name = str(doc.get("name", "law"))
        if self.form == "gbr":
            raise AdvscaleError(
                "gbr fits describe which recipe features matter; they are not a law to predict "
                "with (use approach 2/3 or a power law)"
            )
        if self.form not in PREDICTIVE_FORMS:
            raise AdvscaleError(f"law {self.name!r}: unknown form {self.form!r}")
        params = doc.get("params")
        need = _PARAMS[self.form]
        if not isinstance(params, dict) or any(
            not isinstance(params.get(k), int | float) for k in need
        ):
            raise AdvscaleError(f"law {self.name!r}: 'params' must give numbers for "
                                f"{', '.join(need)}")
        self.params = {k: float(params[k]) for k in need}
        self.target = str(doc.get("target", "adv_loss"))
        self.quantity = str(doc.get("quantity", "loss"))
        k = doc.get("flops_per_param_sample")
        self.k = float(k) if isinstance(k, int | float) and k > 0 else PAPER_FLOPS_PER_PARAM_SAMPLE
        self.acc_map = doc.get("loss_to_accuracy") or None

    @classmethod
    def load(cls, spec: str, stdin: IO[str] | None = None) -> Law:
        return cls(load_law_doc(spec, stdin))

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
        return "ndf" if self.form in ("approach2", "approach3") else "flops"

    def value(self, n, d, fid=0.0, params: dict | None = None) -> np.ndarray:
        """The fitted quantity at N parameters, D samples, FID (Approaches 2 and 3)."""
        p = self.params if params is None else params
        if self.form == "approach2":
            return approach2.predict_loss(p, n, d, fid)
        if self.form == "approach3":
            return approach3.predict_loss(p, n, d, fid)
        raise AdvscaleError(f"a {self.form} law predicts from --flops, not from N and D")

    def asymptote(self, fid=0.0, params: dict | None = None) -> np.ndarray:
        """The fitted quantity as N, D → ∞ at ``fid``."""
        p = self.params if params is None else params
        if self.form == "approach2":
            return np.asarray(p["E"]) * (1 + np.asarray(fid, float)) ** np.asarray(
                p.get("epsilon", 0.0))
        if self.form == "approach3":
            return approach3.asymptote(p, fid)
        raise AdvscaleError(f"a {self.form} law has no N, D → ∞ asymptote")

    def optimal(self, flops: float, fid=0.0, params: dict | None = None
                ) -> tuple[float, float, float]:
        """N*, D* and the value at them for a budget of ``flops`` (plain FLOPs)."""
        p = self.params if params is None else params
        if self.form == "approach2":
            n, d = optimal_approach2(p, flops, fid, self.k)
            return float(n), float(d), float(approach2.predict_loss(p, n, d, fid))
        if self.form == "approach3":
            return optimal_numeric(lambda n, d: approach3.predict_loss(p, n, d, fid), flops,
                                   self.k)
        if self.form == "approach1":
            out = approach1.predict(p, flops)
            return float(out["n"]), float(out["d"]), float(out["loss"])
        return float("nan"), float("nan"), float(powerlaw.predict(p, flops))

    def tradeoff(self, flops: float, omega_n: float, fid=0.0, params: dict | None = None
                 ) -> tuple[float, float]:
        """Eq. 6 at the budget's optimum: ω_D and the compute overhead ω_N·ω_D − 1."""
        p = self.params if params is None else params
        n, d, _ = self.optimal(flops, fid, p)
        if self.form == "approach2":
            wd = float(tradeoff_approach2(p, n, d, omega_n, fid))
        elif self.form == "approach3":
            wd = tradeoff_numeric(lambda nn, dd: approach3.predict_loss(p, nn, dd, fid), n, d,
                                  omega_n)
        else:
            raise AdvscaleError(f"the Eq. 6 trade-off needs an Approach 2 or 3 law, not "
                                f"{self.form}")
        return wd, omega_n * wd - 1

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
        m = self.acc_map if mapping in ("auto", "law") and self.acc_map else None
        if mapping == "law" and m is None:
            raise AdvscaleError(f"law {self.name!r} carries no loss→accuracy regression")
        m = m or PAPER_ACCURACY_MAP
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
