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
