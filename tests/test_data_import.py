"""Importing real data into HDF5: every format and error path, in process and as a process."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.data import CIFAR10_CLASSES
from advscale.data.importers import import_dataset, read_cifar10
from advscale.data.layout import summarize
from advscale.errors import AdvscaleError

runner = CliRunner()
ADVSCALE = [sys.executable, "-m", "advscale"]


def _no_leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_cifar10_tarball_train_and_test(cifar_h5):
    train, test = summarize(cifar_h5["train"]), summarize(cifar_h5["test"])
    assert train["n"] == 50_000 and test["n"] == 10_000
    assert train["class_counts"] == [5_000] * 10 and test["class_counts"] == [1_000] * 10
    assert train["image_shape"] == [32, 32, 3] and train["contiguous"]
    assert train["attrs"]["source"] == "cifar10-train"
    assert train["attrs"]["format_version"] == 2 and train["attrs"]["image_size"] == 32
    # CIFAR-10 files carry the papers' constants, which are the train split's pixel statistics
    from advscale.data.official import PixelStats

    assert train["attrs"]["mean"] == [0.4914, 0.4822, 0.4465]
    assert train["attrs"]["std"] == [0.2471, 0.2435, 0.2616]
    stats = PixelStats()
    with h5py.File(cifar_h5["train"]) as f:
        images = f["image"][:]
    stats.add(images)
    pixels = images.reshape(-1, 3) / 255.0  # the statistics other imports record, directly
    np.testing.assert_allclose(stats.attrs()["mean"], pixels.mean(0), atol=1e-6)
    np.testing.assert_allclose(stats.attrs()["std"], pixels.std(0), atol=1e-6)
    np.testing.assert_allclose(stats.attrs()["mean"], train["attrs"]["mean"], atol=5e-3)
    np.testing.assert_allclose(stats.attrs()["std"], train["attrs"]["std"], atol=5e-3)
    assert train["class_names"] == list(CIFAR10_CLASSES)
    assert 0 <= train["pixel_min"] < train["pixel_max"] <= 255


def test_cifar10_image_layout_matches_the_pickles(cifar_tar, cifar_h5):
    images, labels = read_cifar10(cifar_tar, "test")
    with h5py.File(cifar_h5["test"]) as f:
        np.testing.assert_array_equal(f["image"][:50], images[:50])
        np.testing.assert_array_equal(f["label"][:50], labels[:50])
    # channels-last: the red plane is the first 1024 values of a row of the pickle
    with tarfile.open(cifar_tar) as t:
        assert any(m.name.endswith("test_batch") for m in t.getmembers())


def test_extracted_cifar_folder(tmp_path, cifar_tar):
    with tarfile.open(cifar_tar) as t:
        members = [m for m in t.getmembers() if m.name.endswith(("test_batch", "batches.meta"))]
        t.extractall(tmp_path, members=members, filter="data")
    out = tmp_path / "test.h5"
    s = import_dataset(tmp_path, out, split="test")
    assert s["n"] == 10_000 and s["class_counts"] == [1_000] * 10


def _save_npz(path: Path, n: int, compressed: bool, **override) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"image": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
              "label": (np.arange(n) % 10).astype(np.int64)}
    arrays.update(override)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_streamed_in_chunks(tmp_path, compressed):
    src = _save_npz(tmp_path / "d.npz", 1000, compressed)
    s = import_dataset(src, tmp_path / "d.h5", chunk_rows=128)
    assert s["n"] == 1000 and s["class_counts"] == [100] * 10
    with np.load(src) as z, h5py.File(tmp_path / "d.h5") as f:
        np.testing.assert_array_equal(f["image"][:], z["image"])
        np.testing.assert_array_equal(f["label"][:], z["label"])


def _png_folder(root: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(1)
    for i, cls in enumerate(CIFAR10_CLASSES[:3]):
        (root / cls).mkdir(parents=True)
        for j in range(4):
            w, h = sizes.get(f"{cls}/{j}", (32, 32))
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}_{j}.png")
    return root


def test_image_folder(tmp_path):
    root = _png_folder(tmp_path / "imgs", {})
    s = import_dataset(root, tmp_path / "f.h5")
    assert s["n"] == 12 and s["class_names"] == list(CIFAR10_CLASSES[:3])
    assert s["class_counts"] == [4, 4, 4]


# -- error paths: one line, non-zero exit, no output file --------------------------------------


def _corrupted_tarball(tmp_path: Path, cifar_tar: Path) -> Path:
    data = cifar_tar.read_bytes()
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(data[: len(data) // 3])
    return bad


def _truncated_npz(tmp_path: Path) -> Path:
    good = _save_npz(tmp_path / "good.npz", 500, False)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return bad


def _odd_folder(tmp_path: Path) -> Path:
    return _png_folder(tmp_path / "odd", {"bird/2": (31, 32)})


@pytest.fixture
def bad_inputs(tmp_path, cifar_tar):
    return {
        "corrupted tarball": (_corrupted_tarball(tmp_path, cifar_tar), "corrupted"),
        "truncated npz": (_truncated_npz(tmp_path), "npz"),
        "31x32 image": (_odd_folder(tmp_path), "31x32"),
        "missing path": (tmp_path / "does-not-exist.tar.gz", "no such file"),
    }


def test_bad_inputs_in_process(tmp_path, bad_inputs):
    for name, (src, needle) in bad_inputs.items():
        out = tmp_path / "out" / f"{name.replace(' ', '_')}.h5"
        result = runner.invoke(app, ["data", "import", str(src), "-o", str(out)])
        assert result.exit_code != 0, name
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("advscale: error:"), (name, lines)
        assert needle in lines[0], (name, lines[0])
        assert result.stdout == ""
        assert not out.exists()
        assert not out.parent.exists() or _no_leftovers(out.parent) == []


def test_bad_inputs_as_a_process(tmp_path, bad_inputs):
    src, _ = bad_inputs["corrupted tarball"]
    out = tmp_path / "x.h5"
    p = subprocess.run([*ADVSCALE, "data", "import", str(src), "-o", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().count("\n") == 0 and "advscale: error:" in p.stderr
    assert not out.exists()
    assert not [n for n in _no_leftovers(tmp_path) if n.startswith(".x.h5")]


@pytest.mark.parametrize(
    "override, message",
    [({"label": np.full(100, 10)}, "out of range"),
     ({"image": np.zeros((100, 32, 32), np.uint8)}, "must be uint8 \\(N, S, S, 3\\)"),
     ({"image": np.zeros((100, 32, 32, 3), np.float32)}, "must be uint8")],
)
def test_npz_validation(tmp_path, override, message):
    src = _save_npz(tmp_path / "v.npz", 100, False, **override)
    with pytest.raises(AdvscaleError, match=message):
        import_dataset(src, tmp_path / "v.h5")
    assert not (tmp_path / "v.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npz"]


def test_unknown_format(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n")
    with pytest.raises(AdvscaleError, match="unknown format"):
        import_dataset(p, tmp_path / "x.h5")


def test_offline_download_names_the_fix(tmp_path, monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("ADVSCALE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(AdvscaleError, match="pass a local copy"):
        import_dataset("cifar10", tmp_path / "c.h5")
    assert not (tmp_path / "c.h5").exists()


# -- CLI --------------------------------------------------------------------------------------


def test_cli_import_and_info_emit_records(tmp_path):
    src = _save_npz(tmp_path / "d.npz", 50, False)
    out = tmp_path / "d.h5"
    r = runner.invoke(app, ["data", "import", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert rec["kind"] == "data.info" and rec["n"] == 50
    assert "50 images" in r.stderr
    p = subprocess.run([*ADVSCALE, "data", "info", str(out)], capture_output=True, text=True)
    assert p.returncode == 0
    assert json.loads(p.stdout)["class_counts"] == [5] * 10


def test_help_is_torch_free():
    """``--help`` imports no torch (its speed is a benchmark, benchmarks/startup.py, never a
    timed test)."""
    code = ("import sys; from advscale.cli.main import app; "
            "from typer.testing import CliRunner; r = CliRunner().invoke(app, ['--help']); "
            "assert r.exit_code == 0; print('torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.split() == ["False"]


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("advscale ")
