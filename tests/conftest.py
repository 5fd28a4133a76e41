"""Shared fixtures: the CIFAR-10 copy from $ADVSCALE_DATA (or ../shared/data) and tiny files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Every record the suite makes is validated against its schema (advscale.records.schemas),
# in this process and in the CLI subprocesses that inherit the environment.
os.environ["ADVSCALE_STRICT_RECORDS"] = "1"


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


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, cifar_h5) -> Path:
    """A wrn-10-1 checkpoint briefly trained on CIFAR-10 (40 plain SGD steps of 64 images:
    roughly 25-30% clean accuracy, some robustness at eps 1/255), saved with
    save_model_checkpoint; built once per session on one CPU thread (~15-30 s)."""
    import h5py
    import torch

    from advscale.models import create_model
    from advscale.models.checkpoint import save_model_checkpoint
    from advscale.training.losses import AttackConfig, standard_step_loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with h5py.File(cifar_h5["train"], "r") as f:
            x = torch.from_numpy(f["image"][:4096]).permute(0, 3, 1, 2).float().div(255)
            y = torch.from_numpy(f["label"][:4096].astype(np.int64))
        torch.manual_seed(0)
        model = create_model("wrn-10-1")
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
        gen = torch.Generator().manual_seed(0)
        model.train()
        for _ in range(40):
            idx = torch.randint(0, len(x), (64,), generator=gen)
            out = standard_step_loss(model, x[idx].contiguous(), y[idx], AttackConfig(),
                                     label_smoothing=0.0)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
        model.eval()
        path = tmp_path_factory.mktemp("tiny_ckpt") / "last.safetensors"
        save_model_checkpoint(path, model, {"model": "wrn-10-1", "activation": "silu",
                                            "num_classes": 10, "run_id": "tiny",
                                            "samples_seen": 40 * 64})
    finally:
        torch.set_num_threads(threads)
    return path


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: tiny models on a shared 2-core box run faster, and
    results repeat. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


HANG_GUARD_S = 3600
"""Timeout of a test's subprocess: a guard against a hang, never a budget (a busy machine may
run any test many times slower; no test asserts how long it took)."""
