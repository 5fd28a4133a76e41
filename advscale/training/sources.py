"""What a training mixture is made of: per-source size, weight, provenance and quality.

A source's quality comes from its HDF5 attributes (what ``gen-synthetic fid --annotate`` writes):
the ``fid`` attribute (written only for the published protocol: metric ``fid``), else
``quality_value`` under the name in ``quality_metric`` — any named Fréchet-distance metric, the
Inception one on fewer images (``fid_inception_n10000``, biased) or a proxy such as
``fd_pca64_n2000``. The value becomes the source's ``fid`` (the quality axis of Approaches 2
and 3) and the name travels with it as ``fid_metric``, with ``comparable_to_published`` (the
file's attribute; else true only for ``fid``). A KID (``kid...``) is not a Fréchet distance
and does not flow; real data gives null.
The run's ``fid`` is the mixture-weighted mean of its synthetic sources' values (weights are
the mixture weights, or source sizes for an unweighted union), null when it has no synthetic
data. Sources of different metrics are not averaged away silently: ``advscale fit`` refuses a
fit over more than one metric.
"""

from __future__ import annotations

import math
from typing import Any

from advscale.data.layout import decode_attr
from advscale.errors import AdvscaleError

PUBLISHED_METRIC = "fid"


def source_fid(attrs: dict[str, Any]) -> tuple[float | None, str | None]:
    """The quality value recorded in a file's attributes and its metric name, or (None, None)."""
    true_fid = _finite(decode_attr(attrs.get("fid")))
    if true_fid is not None:
        return true_fid, PUBLISHED_METRIC
    metric = decode_attr(attrs.get("quality_metric", ""))
    if not isinstance(metric, str) or not metric.strip() or metric.lower().startswith("kid"):
        return None, None
    value = _finite(decode_attr(attrs.get("quality_value")))
    return (value, metric.strip()) if value is not None else (None, None)


def source_comparable(attrs: dict[str, Any], metric: str | None) -> bool | None:
    """Whether a source's quality compares with published FIDs (null without a quality)."""
    if metric is None:
        return None
    flag = decode_attr(attrs.get("comparable_to_published"))
    if isinstance(flag, bool | int | float):
        return bool(flag) and metric == PUBLISHED_METRIC
    return metric == PUBLISHED_METRIC


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def describe_sources(
    paths: list[str], sizes: list[int], weights: list[float] | None, attrs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One ``{"path", "source", "weight", "n", "fid", "fid_metric", "comparable_to_published"}``
    dict per source."""
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
            "comparable_to_published": source_comparable(a, metric),
        })
    return out


def mixture_fid(sources: list[dict[str, Any]]) -> float | None:
    """The weighted mean quality of the synthetic sources (those with one), or None."""
    syn = [s for s in sources if s["fid"] is not None]
    if not syn:
        return None
    ws = [s["weight"] if s["weight"] is not None else s["n"] for s in syn]
    return sum(w * s["fid"] for w, s in zip(ws, syn, strict=True)) / sum(ws)


DEFAULT_NUM_CLASSES = 10
"""``TrainConfig.num_classes``'s default: a file naming another class count replaces it."""


def data_model_settings(paths: list[str], num_classes: int | None
                        ) -> tuple[int, dict[str, list[float]], int]:
    """The class count, input normalisation and image size of a model trained on ``paths``.

    Classes: ``num_classes`` as given, unless it is the default (10, or None) and the first
    source names another count, which then wins. Normalisation: ``{"mean", "std"}`` of the first
    source that records one (docs/formats.md §1), else ``{}`` (the model's default). Image
    size: the first source's H (= W) in pixels.
    """
    from advscale.data.layout import class_names_of, dataset_normalisation, open_image_file

    with open_image_file(paths[0]) as f:
        k = len(class_names_of(f))
        image_size = int(f["image"].shape[1])
    if num_classes in (None, DEFAULT_NUM_CLASSES) and k >= 2:
        num_classes = k
    norm = dataset_normalisation(paths)
    kwargs = {"mean": list(norm[0]), "std": list(norm[1])} if norm is not None else {}
    return (int(num_classes if num_classes is not None else DEFAULT_NUM_CLASSES), kwargs,
            image_size)


def check_model_accepts(model: Any, image_shape: tuple[int, ...], name: str, what: str) -> None:
    """One forward pass of a blank image (eval mode, no gradients, weights and statistics left
    as they are); AdvscaleError when the model cannot take images of ``image_shape``."""
    import torch

    h, w, c = image_shape
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, c, h, w))
    except RuntimeError as e:
        msg = " ".join(str(e).split())[:160]
        raise AdvscaleError(f"{what}: model {name} does not accept {h}x{w} images ({msg})",
                            field="model") from None
    finally:
        model.train(was_training)
