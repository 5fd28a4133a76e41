"""The records ``advscale gen-synthetic`` writes (docs/formats.md, "Synthetic data")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from advscale.records import make_record


def generation_record(summary: Mapping[str, Any], config: Mapping[str, Any] | None = None,
                      seed: int | None = None) -> dict[str, Any]:
    """A ``synthetic`` record from :func:`advscale.synthetic.jobs.generate`'s summary."""
    return make_record("synthetic", summary, config=config, seed=seed)


def gaussian_fit_record(path: str, data: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A ``synthetic.fit`` record: the fitted builtin-gaussian at ``path`` and its attributes."""
    return make_record("synthetic.fit", {"path": str(path), "data": str(data), **attrs})


def quality_record(result: Mapping[str, Any], seed: int | None = None) -> dict[str, Any]:
    """A ``synthetic.quality`` record from :func:`advscale.synthetic.quality.measure_quality`."""
    return make_record("synthetic.quality", result, seed=seed)


def export_record(info: Mapping[str, Any]) -> dict[str, Any]:
    """A ``synthetic.export`` record from an export's metadata."""
    return make_record("synthetic.export", info)


def denoiser_record(progress: Mapping[str, Any], seed: int | None = None) -> dict[str, Any]:
    """A ``synthetic.denoiser`` record from one checkpoint of ``train_denoiser``."""
    return make_record("synthetic.denoiser", progress, seed=seed)
