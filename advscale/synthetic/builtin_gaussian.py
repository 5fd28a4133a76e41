"""``builtin-gaussian``: the offline default generator. It is NOT a trained diffusion model.

It fits one Gaussian per class to the user's training images (mean, the top ``k`` principal
components with their variances, and optionally an isotropic variance for the remaining
directions: a probabilistic PCA) and uses the exact posterior-mean denoiser of that Gaussian,

    D(x; sigma) = mu + U diag(lam / (lam + sigma²)) Uᵀ (x - mu) + s²/(s² + sigma²) (I - UUᵀ)(x - mu)

(``lam`` the variances along the components, ``s²`` the residual variance). Driving the real
EDM sampler with it reproduces the steps→quality effect (few steps → large ODE error → worse
samples), and the exact probability-flow ODE solution is known in closed form
(:meth:`GaussianGenerator.exact_ode`), which the tests use as an oracle. Samples are blurry
class-conditional "eigen-images", useful to exercise the pipeline, not to train robust models.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advscale.core.fileio import file_sha256
from advscale.core.stfile import load_tensors, save_tensors
from advscale.data.layout import IMAGE_KEY, LABEL_KEY, class_names_of, open_image_file, valid_count
from advscale.data.validate import validate_image_file
from advscale.errors import AdvscaleError
from advscale.synthetic.base import DiffusionGenerator

FORMAT = "advscale-builtin-gaussian"
NOTE = (
    "builtin-gaussian: exact denoiser of a class-conditional Gaussian (PCA) fitted to the "
    "training data; NOT a trained diffusion model"
)


class GaussianGenerator(DiffusionGenerator):
    """Class-conditional Gaussian with low-rank-plus-isotropic covariance and its exact denoiser.

    ``means`` (K, d), ``bases`` (K, d, k) orthonormal columns, ``variances`` (K, k) and
    ``residual`` (K,) are in ``[-1, 1]`` pixel units (variances in those units squared), with
    ``d = C·H·W`` flattened channels-first.
    """

    name = "builtin-gaussian"
    is_trained_diffusion_model = False
    dtype_name = "float64"

    def __init__(
        self,
        means: np.ndarray | torch.Tensor,
        bases: np.ndarray | torch.Tensor,
        variances: np.ndarray | torch.Tensor,
        residual: np.ndarray | torch.Tensor,
        class_names: Sequence[str],
        image_shape: tuple[int, int, int] = (3, 32, 32),
        device: str | torch.device = "cpu",
        fit_info: dict[str, Any] | None = None,
    ) -> None:
        self.device = torch.device(device)
        f64 = {"dtype": torch.float64, "device": self.device}
        self.means = torch.as_tensor(means).to(**f64)
        self.bases = torch.as_tensor(bases).to(**f64)
        self.variances = torch.as_tensor(variances).to(**f64).clamp_min(0)
        self.residual = torch.as_tensor(residual).to(**f64).clamp_min(0)
        self.class_names = list(class_names)
        self.image_shape = tuple(image_shape)  # type: ignore[assignment]
        self.fit_info = dict(fit_info or {})
        k_cls, d = self.means.shape
        if k_cls != len(self.class_names) or d != int(np.prod(self.image_shape)):
            raise ValueError("means must be (num_classes, C*H*W)")
        k = self.bases.shape[2]
        self.components = int(k)
        # Uᵀr and U(·): 2·k·d each, plus a few element-wise passes over d.
        self.flops_per_call = float(4 * k * d + 6 * d)

    # -- the denoiser and its exact ODE ---------------------------------------------------------

    def _apply(
        self, x: torch.Tensor, labels: torch.Tensor, pc_gain: torch.Tensor, res_gain: torch.Tensor
    ) -> torch.Tensor:
        """``mu + U diag(pc_gain) Uᵀ(x-mu) + res_gain (I-UUᵀ)(x-mu)``, per image's class.

        ``pc_gain`` is (B, k) and ``res_gain`` (B,), both already evaluated for each image.
        """
        b = x.shape[0]
        flat = x.reshape(b, -1).to(torch.float64)
        out = torch.empty_like(flat)
        with _threads_for(4.0 * flat.numel() * self.components):
            self._apply_classes(flat, out, labels, pc_gain, res_gain)
        return out.reshape(x.shape)

    def _apply_classes(self, flat: torch.Tensor, out: torch.Tensor, labels: torch.Tensor,
                       pc_gain: torch.Tensor, res_gain: torch.Tensor) -> None:
        for c in torch.unique(labels).tolist():
            m = labels == c
            u = self.bases[c]
            r = flat[m] - self.means[c]
            z = r @ u  # (b_c, k)
            g = res_gain[m, None]
            # mu + U diag(pc) Uᵀr + g (r - U Uᵀr)  =  mu + g r + U ((pc - g) ⊙ Uᵀr)
            out[m] = self.means[c] + g * r + (z * (pc_gain[m] - g)) @ u.T

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Exact posterior mean ``E[x0 | x0 + sigma·n = x, class]`` (float64)."""
        labels = labels.to(self.device)
        s2 = sigma.to(torch.float64).reshape(-1, 1) ** 2
        lam = self.variances[labels]
        res = self.residual[labels]
        pc_gain = lam / (lam + s2)
        denom = res + s2[:, 0]
        res_gain = torch.where(denom > 0, res / denom.clamp_min(1e-300), torch.zeros_like(res))
        return self._apply(x, labels, pc_gain, res_gain)

    def exact_ode(
        self, x: torch.Tensor, sigma_from: float, sigma_to: float, labels: torch.Tensor
    ) -> torch.Tensor:
        """The exact probability-flow ODE map from noise level ``sigma_from`` to ``sigma_to``.

        Along a direction of variance ``v`` the ODE ``dx/dsigma = (x - D)/sigma`` scales
        ``x - mu`` by ``sqrt((v + sigma_to²) / (v + sigma_from²))``.
        """
        labels = labels.to(self.device)
        a2, b2 = float(sigma_from) ** 2, float(sigma_to) ** 2
        lam = self.variances[labels]
        res = self.residual[labels]
        pc_gain = torch.sqrt((lam + b2) / (lam + a2))
        res_gain = torch.sqrt((res + b2) / (res + a2))
        return self._apply(x, labels, pc_gain, res_gain)

    # -- provenance -----------------------------------------------------------------------------

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for t in (self.means, self.bases, self.variances, self.residual):
            h.update(t.detach().cpu().numpy().tobytes())
        h.update(repr((self.class_names, self.image_shape)).encode())
        return "sha256:" + h.hexdigest()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted parameters to a ``.safetensors`` file (atomically)."""

        tensors = {"means": self.means, "bases": self.bases, "variances": self.variances,
                   "residual": self.residual}
        md = {"format": FORMAT, "class_names": json.dumps(self.class_names),
              "image_shape": json.dumps(list(self.image_shape)),
              "fit_info": json.dumps(self.fit_info), "note": NOTE}
        return save_tensors(path, tensors, md, what="builtin-gaussian model")

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu"
             ) -> GaussianGenerator:
        """Read a model written by :meth:`save` (safetensors: nothing is unpickled)."""

        t, md = load_tensors(path, what="safetensors file", decode=False)
        if md.get("format") != FORMAT:
            raise AdvscaleError(f"{path}: not a fitted builtin-gaussian model")
        return cls(t["means"], t["bases"], t["variances"], t["residual"],
                   json.loads(md["class_names"]), tuple(json.loads(md["image_shape"])),
                   device=device, fit_info=json.loads(md["fit_info"]))

    def attrs(self) -> dict[str, Any]:
        a = super().attrs()
        a.update(
            {
                "generator_note": NOTE,
                "gaussian_components": self.components,
                **{f"gaussian_{k}": v for k, v in self.fit_info.items()},
            }
        )
        return a


@contextlib.contextmanager
def _threads_for(flops: float, per_thread: float = 2e8) -> Iterator[None]:
    """Run small CPU work on fewer threads: below ~``per_thread`` FLOPs a thread, OpenMP
    start-up and spinning cost more than they save (much more on a shared machine)."""
    n = torch.get_num_threads()
    want = max(1, min(n, int(flops // per_thread)))
    if want == n:
        yield
        return
    torch.set_num_threads(want)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def fit_gaussian_generator(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    components: int = 64,
    residual: str = "none",
    device: str | torch.device = "cpu",
    seed: int = 0,
    fit_info: dict[str, Any] | None = None,
) -> GaussianGenerator:
    """Fit the class-conditional Gaussian to uint8 NHWC ``images`` with integer ``labels``.

    Per class: the mean, the top ``components`` principal directions (randomised SVD, seeded
    by ``seed``) with the variances of the data along them, and no variance off them
    (``residual="none"``, the default: samples lie on the k-dim affine subspace) or the mean
    variance of the other directions (``residual="isotropic"``: adds white-noise texture,
    which Inception features penalise: FID 354 vs 219 at 5 steps, n = 200).
    Variances use the unbiased (n - 1) normalisation, in ``[-1, 1]`` pixel units.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise AdvscaleError(f"images must be (N, H, W, 3), got {images.shape}")
    if residual not in ("isotropic", "none"):
        raise AdvscaleError(f"residual {residual!r} must be 'isotropic' or 'none'")
    n, h, w, c = images.shape
    d = c * h * w
    k_cls = len(class_names)
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=k_cls)
    if len(counts) > k_cls:
        raise AdvscaleError(f"labels reach {len(counts) - 1} but there are {k_cls} classes")
    if counts.min() < 2:
        raise AdvscaleError(f"every class needs >= 2 training images (counts {counts.tolist()})")
    k = int(min(components, counts.min() - 1, d))
    if k < 1:
        raise AdvscaleError("need at least one principal component")
    means = np.zeros((k_cls, d))
    bases = np.zeros((k_cls, d, k))
    variances = np.zeros((k_cls, k))
    resid = np.zeros(k_cls)
    gen = torch.Generator().manual_seed(int(seed))
    for ci in range(k_cls):
        x = torch.from_numpy(images[labels == ci]).permute(0, 3, 1, 2).reshape(-1, d)
        x = x.to(torch.float64) / 127.5 - 1.0
        mu = x.mean(0)
        xc = x - mu
        # Directions are found in float32 (fast), then made exactly orthonormal in float64;
        # the fitted model is defined by these directions and the variances along them.
        u32, _ = _top_components(xc.to(torch.float32), k, gen)
        u, _ = torch.linalg.qr(u32.to(torch.float64))
        z = xc @ u
        var = (z**2).sum(0) / (len(x) - 1)
        order = torch.argsort(var, descending=True)
        u, var = u[:, order], var[order]
        total = float((xc**2).sum()) / (len(x) - 1)
        means[ci] = mu.numpy()
        bases[ci] = u.numpy()
        variances[ci] = var.numpy()
        if residual == "isotropic" and d > k:
            resid[ci] = max(total - float(var.sum()), 0.0) / (d - k)
    info = {"residual": residual, "fit_n": int(n), "seed": int(seed), **(fit_info or {})}
    return GaussianGenerator(
        means, bases, variances, resid, class_names, (c, h, w), device=device, fit_info=info
    )


def _top_components(
    xc: torch.Tensor, k: int, gen: torch.Generator, oversample: int = 10, iters: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` right singular vectors (d, k) and singular values of centred ``xc`` (n, d).

    Exact (full SVD) for small matrices, else a seeded randomised range finder with power
    iterations (Halko et al. 2011), accurate for the leading components of image data.
    """
    n, d = xc.shape
    if min(n, d) <= 4 * (k + oversample):
        _, s, vh = torch.linalg.svd(xc, full_matrices=False)
        return vh[:k].T.contiguous(), s[:k]
    q = k + oversample
    omega = torch.randn(d, q, generator=gen, dtype=torch.float64).to(xc.dtype)
    y, _ = torch.linalg.qr(xc @ omega)
    for _ in range(iters):
        z, _ = torch.linalg.qr(xc.T @ y)
        y, _ = torch.linalg.qr(xc @ z)
    b = y.T @ xc  # (q, d)
    _, s, vh = torch.linalg.svd(b, full_matrices=False)
    return vh[:k].T.contiguous(), s[:k]


def gaussian_from_file(
    path: str | os.PathLike[str],
    components: int = 64,
    residual: str = "none",
    max_per_class: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> GaussianGenerator:
    """Fit :func:`fit_gaussian_generator` to an advscale HDF5 image file (e.g. train.h5).

    ``max_per_class`` keeps the first that many images of each class (None: all).
    """
    validate_image_file(path)  # storage, attributes, labels in range of the named classes
    with open_image_file(path) as f:
        n = valid_count(f)
        names = class_names_of(f)
        labels = f[LABEL_KEY][:n].astype(np.int64)
        keep = np.arange(n)
        if max_per_class is not None:
            keep = np.concatenate(
                [np.flatnonzero(labels == c)[:max_per_class] for c in range(len(names))]
            )
            keep.sort()
        images = f[IMAGE_KEY][:n][keep] if len(keep) < n else f[IMAGE_KEY][:n]
        labels = labels[keep]
    if n == 0:
        raise AdvscaleError(f"{path}: no images to fit the Gaussian to")
    info = {"data": os.path.basename(os.fspath(path)), "data_sha256": file_sha256(path)}
    return fit_gaussian_generator(
        images, labels, names, components, residual, device, seed, fit_info=info
    )
