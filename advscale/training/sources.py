"""What a training mixture is made of: per-source size, weight, provenance and FID.

A source's FID comes from its HDF5 attributes: the ``fid`` attribute (gen-synthetic writes it only
for the published protocol), else ``quality_value`` when ``quality_metric`` names an FID
(``fid_inception_n10000``: Inception features, fewer images, biased); the metric's name travels
with it as ``fid_metric``. Proxies of other names (``fd_pca...``) and real data give null.
The run's ``fid`` is the mixture-weighted mean FID of its synthetic sources (weights are the
mixture weights, or source sizes for an unweighted union), null when it has no synthetic data.
"""

from __future__ import annotations

import math
from typing import Any

from advscale.data.layout import decode_attr


def source_fid(attrs: dict[str, Any]) -> tuple[float | None, str | None]:
    """The FID recorded in a file's attributes and its metric name, or (None, None)."""
    true_fid = _finite(decode_attr(attrs.get("fid")))
    if true_fid is not None:
        return true_fid, "fid"
    metric = decode_attr(attrs.get("quality_metric", ""))
    if not isinstance(metric, str) or not metric.lower().startswith("fid"):
        return None, None
    value = _finite(decode_attr(attrs.get("quality_value")))
    return (value, metric) if value is not None else (None, None)


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def describe_sources(
    paths: list[str], sizes: list[int], weights: list[float] | None, attrs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One ``{"path", "source", "weight", "n", "fid", "fid_metric"}`` dict per source."""
    out = []
    for i, (p, n, a) in enumerate(zip(paths, sizes, attrs, strict=True)):
        src = decode_attr(a.get("source", ""))
        fid, metric = source_fid(a)
        out.append({
            "path": str(p),
            "source": str(src) if src is not None else None,
            "weight": None if weights is None else float(weights[i]),
            "n": int(n),
            "fid": fid,
            "fid_metric": metric,
        })
    return out


def mixture_fid(sources: list[dict[str, Any]]) -> float | None:
    """The weighted mean FID of the synthetic sources (those with an FID), or None."""
    syn = [s for s in sources if s["fid"] is not None]
    if not syn:
        return None
    ws = [s["weight"] if s["weight"] is not None else s["n"] for s in syn]
    return sum(w * s["fid"] for w, s in zip(ws, syn, strict=True)) / sum(ws)
