"""How the report names a quality metric: on axes, in legends, captions and the runs table.

A run's quality is the FID of its synthetic data (0 for real data only) as its records measured
it (``train.eval``'s ``data[].fid_metric``): ``fid`` is the published protocol (Inception,
50k generated vs the 50k training images); ``fid_inception_n{N}`` uses the same features on
other sizes (biased); anything else, e.g. ``fd_pca64_n2000``, is a named proxy. The report never
writes a bare "FID" for a quality that is not the published one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from advscale.laws.data import PUBLISHED_FID, record_fid_metrics

UNNAMED = "FID (metric not recorded)"
"""What the report calls a quality whose records do not name their metric."""


def metric_symbol(metric: str | None) -> str:
    """The short name of a metric in a legend entry or a title: ``FID`` for the published
    protocol, else the metric's own name (``fd_pca64_n2000``)."""
    if metric is None:
        return UNNAMED
    return "FID" if metric == PUBLISHED_FID else metric


def metric_label(metric: str | None) -> str:
    """The full name of a metric on an axis or in a caption, saying whether it compares with
    published FIDs: ``FID (Inception, published protocol)``, ``fd_pca64_n2000 (proxy, not
    comparable to published FID)``."""
    if metric is None:
        return UNNAMED
    if metric == PUBLISHED_FID:
        return "FID (Inception, published protocol)"
    if "+" in metric:
        return f"{metric} (several metrics: not comparable with each other or published FID)"
    if metric.startswith("fid_inception"):
        return f"{metric} (Inception features, other sample sizes: not comparable to published FID)"
    return f"{metric} (proxy, not comparable to published FID)"


def quality_name(metric: str | None, value: float, zero: str = "real data") -> str:
    """One quality as a legend entry or a panel title: ``fd_pca64_n2000 = 130.7``; 0 is said
    with ``zero`` (``real data``, or ``extrapolated`` where only a law is drawn)."""
    if value == 0:
        return f"{metric_symbol(metric) if metric else 'FID'} = 0 ({zero})"
    return f"{metric_symbol(metric)} = {value:.4g}"


def join_metrics(metrics: Iterable[str]) -> str | None:
    """One metric name for a set of them: the name, ``a+b`` for several, None for none."""
    names = sorted(set(metrics))
    return "+".join(names) if names else None


def records_metric(records: Iterable[dict[str, Any]]) -> str | None:
    """The quality metric the synthetic sources of ``records`` name (see :func:`join_metrics`)."""
    found: set[str] = set()
    for rec in records:
        found |= record_fid_metrics(rec)
    return join_metrics(found)
