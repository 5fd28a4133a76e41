"""Shared fixtures: the CIFAR-10 copy from $ADVSCALE_DATA (or ../shared/data) and tiny files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def cifar_tarball() -> Path | None:
    """The CIFAR-10 python tarball: $ADVSCALE_DATA/cifar-10-python.tar.gz or ../shared/data."""
    for base in (os.environ.get("ADVSCALE_DATA"), ROOT.parent / "shared" / "data"):
        if base:
            p = Path(base) / "cifar-10-python.tar.gz"
            if p.is_file():
                return p
    return None


@pytest.fixture(scope="session")
def cifar_tar() -> Path:
    p = cifar_tarball()
    if p is None:
        pytest.skip("CIFAR-10 tarball not found (set ADVSCALE_DATA)")
    return p


@pytest.fixture(scope="session")
def cifar_h5(tmp_path_factory, cifar_tar) -> dict[str, Path]:
    """CIFAR-10 train and test imported once per test session."""
    from advscale.data.importers import import_dataset

    d = tmp_path_factory.mktemp("cifar")
    out = {}
    for split in ("train", "test"):
        out[split] = d / f"{split}.h5"
        import_dataset(cifar_tar, out[split], split=split)
    return out


def make_h5(path: Path, n: int, seed: int = 0, source: str = "test") -> Path:
    """A small random image file in the advscale layout (labels balanced over 10 classes)."""
    from advscale.data import CIFAR10_CLASSES
    from advscale.data.layout import ImageFileWriter

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    with ImageFileWriter(path, n, source=source, class_names=CIFAR10_CLASSES) as w:
        w.write(images, labels)
    return path


@pytest.fixture
def tiny_h5(tmp_path) -> Path:
    return make_h5(tmp_path / "tiny.h5", 200)


def make_adv_h5(path: Path, n: int = 12, n_fooled: int = 10, seed: int = 0) -> Path:
    """A small adversarial-image file in the `attack --save-adv` layout (docs/formats.md).

    Row i has true class i % 10 and test-set index 100 + i; the first ``n_fooled`` rows fooled
    the model (pred_adv = (label + 1) % 10), the rest did not (pred_adv = label).
    """
    import json

    import h5py

    from advscale.data import CIFAR10_CLASSES

    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    delta = rng.uniform(-8 / 255, 8 / 255, size=clean.shape).astype(np.float32)
    adv = np.clip(clean.astype(np.float32) / 255 + delta, 0, 1).astype(np.float32)
    label = np.arange(n, dtype=np.int64) % 10
    fooled = np.arange(n) < n_fooled
    pred_adv = np.where(fooled, (label + 1) % 10, label).astype(np.int64)
    with h5py.File(path, "w") as f:
        f["index"] = 100 + np.arange(n, dtype=np.int64)
        f["label"] = label
        f["pred_clean"] = label.copy()
        f["pred_adv"] = pred_adv
        f["image_clean"] = clean
        f["image_adv"] = adv
        f["success"] = fooled
        f["attack"] = np.array([b"apgd-ce" if i % 2 else b"apgd-t" for i in range(n)], "S16")
        f.attrs["format_version"] = 1
        f.attrs["kind"] = "advscale-adversarial"
        f.attrs["class_names"] = json.dumps(list(CIFAR10_CLASSES))
        f.attrs["model"] = "wrn-10-1"
        f.attrs["checkpoint_sha256"] = "0" * 64
        f.attrs["eps"] = 8 / 255
        f.attrs["attack_settings"] = json.dumps({"attack": "aa-standard"})
    return path


@pytest.fixture
def adv_h5(tmp_path) -> Path:
    """12 adversarial images, 10 of which fooled the model (rows 0..9)."""
    return make_adv_h5(tmp_path / "adv.h5")
