"""``edm-export``: NVlabs EDM networks exported once with ``torch.export``, loaded without pickle.

The published EDM checkpoints (``edm-cifar10-32x32-cond-vp.pkl`` ...) are Python pickles that
import NVlabs' code when loaded: unpickling runs code. So the user converts a pickle ONCE, in an
environment they trust, with ``advscale gen-synthetic export --pkl FILE --edm-code DIR``; the
result is a ``torch.export`` program (``.pt2``: a graph in JSON plus raw tensor files) that
advscale loads after checking that nothing in the archive would be unpickled except through
torch's restricted ``weights_only`` loader.

The exported interface (also used by the tests with a small random network):
``forward(x float32 (B, C, H, W), sigma float32 (B,), class_labels float32 (B, K) one-hot)``
returns the denoised image ``D(x; sigma)`` float32 — the signature of NVlabs' ``EDMPrecond``.
Metadata (``advscale.json`` inside the archive): ``num_classes``, ``image_shape``,
``sigma_min``/``sigma_max``/``sigma_data``, ``flops_per_call`` (measured at export), the source
file's SHA-256 and the licence note.

Licence: NVlabs' EDM code and pretrained weights are released under CC BY-NC-SA 4.0
(non-commercial, share-alike). advscale contains none of that code; an exported file contains
their weights and stays under their licence.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from advscale.core.fileio import atomic_path, file_sha256
from advscale.data import CIFAR10_CLASSES
from advscale.errors import AdvscaleError
from advscale.synthetic.base import DiffusionGenerator

META_NAME = "advscale.json"
LICENCE_NOTE = (
    "Weights derived from NVlabs EDM (CC BY-NC-SA 4.0): non-commercial use, share-alike; "
    "see https://github.com/NVlabs/edm/blob/main/LICENSE.txt"
)


class _EDMInterface(nn.Module):
    """Adapts a network with NVlabs' ``EDMPrecond`` call signature to the exported interface."""

    def __init__(self, net: nn.Module, takes_labels: bool) -> None:
        super().__init__()
        self.net = net
        self.takes_labels = takes_labels

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor, class_labels: torch.Tensor
    ) -> torch.Tensor:
        labels = class_labels if self.takes_labels else None
        return self.net(x, sigma, labels).to(torch.float32)


def measure_flops(module: nn.Module, example: tuple[torch.Tensor, ...]) -> float:
    """FLOPs per image of one call (2 per multiply-add, convolutions and matmuls)."""

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(*example)
    return fc.get_total_flops() / example[0].shape[0]


def export_module(
    module: nn.Module,
    out: str | os.PathLike[str],
    *,
    num_classes: int,
    image_shape: tuple[int, int, int] = (3, 32, 32),
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export ``module`` (the interface above) with a dynamic batch size to ``out`` (.pt2).

    Returns the metadata stored with it. Writes atomically.
    """

    module = module.eval()
    c, h, w = image_shape
    example = (
        torch.randn(2, c, h, w),
        torch.rand(2) * 10 + 0.1,
        torch.nn.functional.one_hot(torch.tensor([0, num_classes - 1]), num_classes).float(),
    )
    info = {
        "format": "advscale-edm-export",
        "format_version": 1,
        "interface": "forward(x f32 BCHW, sigma f32 B, class_labels f32 BxK one-hot) -> D(x)",
        "num_classes": int(num_classes),
        "image_shape": [int(c), int(h), int(w)],
        "sigma_min": 0.002,
        "sigma_max": 80.0,
        "sigma_data": 0.5,
        "torch_version": torch.__version__,
        **(meta or {}),
    }
    info["flops_per_call"] = measure_flops(module, example)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    try:
        ep = torch.export.export(
            module, example,
            dynamic_shapes={"x": {0: batch}, "sigma": {0: batch}, "class_labels": {0: batch}},
        )
    except Exception as e:  # torch.export raises many types; report one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AdvscaleError(f"torch.export failed on this network: {first}") from None
    out = Path(out)
    with atomic_path(out, suffix=".tmp.pt2") as tmp:
        torch.export.save(ep, str(tmp), extra_files={META_NAME: json.dumps(info)})
    info["path"] = str(out)
    return info


def export_edm_pickle(
    pkl: str | os.PathLike[str],
    edm_code: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    key: str = "ema",
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Unpickle an NVlabs EDM network (TRUSTED FILES ONLY: this runs their code) and export it.

    ``edm_code`` is a checkout of NVlabs' EDM repository (its ``torch_utils`` and ``training``
    packages are needed to unpickle). The pickle's ``key`` entry (``ema``) is the network.
    """
    pkl, edm_code = Path(pkl), Path(edm_code)
    if not pkl.is_file():
        raise AdvscaleError(f"{pkl}: no such network pickle")
    if not edm_code.is_dir():
        raise AdvscaleError(f"{edm_code}: not a folder (a checkout of the NVlabs EDM code)")
    root = str(edm_code.resolve())
    before = set(sys.modules)
    sys.path.insert(0, root)
    try:
        return _export_unpickled(pkl, out, key, num_classes)
    finally:
        sys.path.remove(root)
        for name in set(sys.modules) - before:  # leave none of their modules importable
            f = getattr(sys.modules[name], "__file__", None) or ""
            if os.path.abspath(f).startswith(root + os.sep):
                del sys.modules[name]


def _export_unpickled(
    pkl: Path, out: str | os.PathLike[str], key: str, num_classes: int | None
) -> dict[str, Any]:

    try:
        with open(pkl, "rb") as f:
            data = pickle.load(f)  # noqa: S301 - the documented, user-confirmed trust step
    except (ModuleNotFoundError, ImportError) as e:
        raise AdvscaleError(f"{pkl}: unpickling needs the EDM code ({e}); check edm_code",
                            field="edm_code") from None
    except (pickle.UnpicklingError, EOFError, OSError) as e:
        raise AdvscaleError(f"{pkl}: not a readable network pickle ({e})") from None
    net = data.get(key) if isinstance(data, dict) else data
    if not isinstance(net, nn.Module):
        raise AdvscaleError(f"{pkl}: entry {key!r} is not a torch network")
    net = net.eval().requires_grad_(False).to("cpu")
    label_dim = int(getattr(net, "label_dim", 0) or 0)
    k = int(num_classes or label_dim or 10)
    c = int(getattr(net, "img_channels", 3))
    r = int(getattr(net, "img_resolution", 32))
    meta = {
        "source_name": pkl.name,
        "source_sha256": file_sha256(pkl),
        "source_class": f"{type(net).__module__}.{type(net).__name__}",
        "label_dim": label_dim,
        "sigma_min": float(max(getattr(net, "sigma_min", 0.0) or 0.0, 0.002)),
        "sigma_max": float(min(getattr(net, "sigma_max", 80.0) or 80.0, 80.0)),
        "sigma_data": float(getattr(net, "sigma_data", 0.5)),
        "licence": LICENCE_NOTE,
    }
    return export_module(_EDMInterface(net, label_dim > 0), out, num_classes=k,
                         image_shape=(c, r, r), meta=meta)


def check_archive(path: str | os.PathLike[str]) -> None:
    """Refuse a ``.pt2`` whose loading would unpickle anything outside ``weights_only``.

    Checks every weight and constant entry is stored raw (not pickled), that there are no
    custom or opaque objects and no legacy pickled weight files, and that the sample inputs
    load with torch's restricted ``weights_only`` unpickler.
    """
    p = Path(path)
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as e:
        raise AdvscaleError(f"{p}: not a torch.export archive ({e})") from None
    with zf:
        names = zf.namelist()
        roots = {n.split("/", 1)[0] for n in names if "/" in n}
        if len(roots) != 1:
            raise AdvscaleError(f"{p}: not a torch.export archive")
        root = roots.pop() + "/"
        rel = {n[len(root):]: n for n in names}
        if "models/model.json" not in rel:
            raise AdvscaleError(f"{p}: archive holds no exported program 'model'")
        for legacy in ("data/weights/model.pt", "data/constants/model.pt"):
            if legacy in rel:
                raise AdvscaleError(f"{p}: legacy pickled {legacy}; re-export with this torch")
        for cfg_name in ("data/weights/model_weights_config.json",
                         "data/constants/model_constants_config.json"):
            if cfg_name not in rel:
                continue
            cfg = json.loads(zf.read(rel[cfg_name])).get("config", {})
            for fqn, entry in cfg.items():
                path_name = str(entry.get("path_name", ""))
                if entry.get("use_pickle") or path_name.startswith(("custom_obj_", "opaque_obj_")):
                    raise AdvscaleError(
                        f"{p}: entry {fqn!r} would be unpickled; refusing to load it")
        for n, full in rel.items():
            if n.startswith("data/sample_inputs/"):
                try:
                    torch.load(io.BytesIO(zf.read(full)), weights_only=True)
                except Exception as e:
                    raise AdvscaleError(
                        f"{p}: sample inputs are not plain tensors ({type(e).__name__}); "
                        "refusing to load") from None


class ExportedEDMGenerator(DiffusionGenerator):
    """A ``.pt2`` EDM denoiser (see module docs) as an advscale generator."""

    name = "edm-export"

    def __init__(self, module: Any, meta: dict[str, Any], sha256: str, device: torch.device,
                 dtype: str = "fp32") -> None:
        self.module = module
        self.meta = meta
        self.sha256 = sha256
        self.device = device
        self.dtype_name = "bfloat16" if dtype == "bf16" else "float32"
        k = int(meta["num_classes"])
        self.class_names = [str(i) for i in range(k)] if k != 10 else _cifar_names()
        self.image_shape = tuple(meta["image_shape"])  # type: ignore[assignment]
        self.sigma_min = float(meta.get("sigma_min", 0.002))
        self.sigma_max = float(meta.get("sigma_max", 80.0))
        self.sigma_data = float(meta.get("sigma_data", 0.5))
        self.flops_per_call = float(meta.get("flops_per_call", 0.0))

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu", dtype: str = "fp32",
             compile: bool = False) -> ExportedEDMGenerator:
        """Check and load an exported program; ``compile`` wraps it in ``torch.compile``."""

        p = Path(path)
        if not p.is_file():
            raise AdvscaleError(f"{p}: no such exported network (.pt2)")
        check_archive(p)
        extra = {META_NAME: ""}
        try:
            ep = torch.export.load(str(p), extra_files=extra)
        except Exception as e:
            raise AdvscaleError(f"{p}: cannot load the exported program ({e})") from None
        try:
            meta = json.loads(extra[META_NAME])
        except (json.JSONDecodeError, TypeError):
            raise AdvscaleError(f"{p}: no advscale metadata; export it with advscale") from None
        dev = torch.device(device)
        module = ep.module().to(dev)
        if compile:
            module = torch.compile(module)
        return cls(module, meta, file_sha256(p), dev, dtype)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(labels.to(self.device), self.num_classes)
        args = (x.to(self.device, torch.float32), sigma.to(self.device, torch.float32),
                onehot.to(torch.float32))
        if self.dtype_name == "bfloat16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                out = self.module(*args)
        else:
            out = self.module(*args)
        return out.to(torch.float64)

    def fingerprint(self) -> str:
        return "sha256:" + self.sha256

    def attrs(self) -> dict[str, Any]:
        a = super().attrs()
        a.update({
            "export_source_name": self.meta.get("source_name"),
            "export_source_sha256": self.meta.get("source_sha256"),
            "licence": self.meta.get("licence"),
        })
        return {k: v for k, v in a.items() if v is not None}


def _cifar_names() -> list[str]:

    return list(CIFAR10_CLASSES)
