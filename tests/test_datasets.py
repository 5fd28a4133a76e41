"""CIFAR-100, SVHN and any-size images: official layouts made here, imported and checked.

Each test writes a tiny file in the dataset's official layout (pickles in a tar.gz, MATLAB v5
``.mat`` via ``scipy.io.savemat``) and checks counts, labels, class names and the recorded
normalisation; malformed files give one ``advscale: error:`` line and leave no output file.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from advscale.data.importers import import_dataset
from advscale.data.layout import CIFAR10_MEAN, CIFAR10_STD, normalisation_of, read_attrs
from advscale.errors import AdvscaleError

FINE = [f"fine{i:02d}" for i in range(100)]
COARSE = [f"coarse{i:02d}" for i in range(20)]


def _cifar100_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    fine = (np.arange(n) * 7) % 100
    return {"filenames": [f"img{i}.png" for i in range(n)], "batch_label": "b",
            "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist(),
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}


def make_cifar100_tar(path: Path, members: dict | None = None, n_train: int = 30,
                      n_test: int = 12) -> Path:
    """A cifar-100-python.tar.gz in the official layout (pickles of plain dicts)."""
    members = members if members is not None else {
        "train": _cifar100_batch(n_train, 0), "test": _cifar100_batch(n_test, 1),
        "meta": {"fine_label_names": FINE, "coarse_label_names": COARSE}}
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in members.items():
            raw = obj if isinstance(obj, bytes) else pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def make_svhn_mat(path: Path, n: int = 25, y=None, x=None) -> Path:
    """An SVHN ``*_32x32.mat`` (MATLAB v5): X 32×32×3×N uint8, y N×1 in 1..10."""
    import scipy.io

    rng = np.random.default_rng(n)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8) if x is None else x
    y = (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8) if y is None else y
    scipy.io.savemat(path, {"X": x, "y": y})
    return path


def test_cifar100_fine_and_coarse(tmp_path):
    tar = make_cifar100_tar(tmp_path / "cifar-100-python.tar.gz")
    fine = import_dataset(tar, tmp_path / "fine.h5")
    assert fine["n"] == 30 and fine["class_names"] == FINE and fine["image_shape"] == [32, 32, 3]
    test = import_dataset(tar, tmp_path / "test.h5", split="test", labels="coarse")
    assert test["n"] == 12 and test["class_names"] == COARSE
    batch = _cifar100_batch(12, 1)
    with h5py.File(tmp_path / "test.h5") as f:
        assert f["label"][:].tolist() == batch["coarse_labels"]
        want = batch["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        assert np.array_equal(f["image"][:], want)
    with h5py.File(tmp_path / "fine.h5") as f:
        assert f["label"][:].tolist() == _cifar100_batch(30, 0)["fine_labels"]
    attrs = read_attrs(tmp_path / "fine.h5")
    assert attrs["source"] == "cifar100-train" and attrs["label_set"] == "fine"
    assert attrs["format_version"] == 2 and attrs["image_size"] == 32
    pixels = _cifar100_batch(30, 0)["data"].reshape(-1, 3, 1024) / 255.0
    np.testing.assert_allclose(attrs["mean"], pixels.transpose(1, 0, 2).reshape(3, -1).mean(1),
                               atol=1e-6)
    np.testing.assert_allclose(attrs["std"], pixels.transpose(1, 0, 2).reshape(3, -1).std(1),
                               atol=1e-6)
    assert normalisation_of(attrs) == (tuple(attrs["mean"]), tuple(attrs["std"]))


@pytest.mark.parametrize("split,n", [("train", 25), ("test", 12), ("extra", 13)])
def test_svhn_splits_and_label_ten_is_zero(tmp_path, split, n):
    mat = make_svhn_mat(tmp_path / f"{split}_32x32.mat", n)
    s = import_dataset(mat, tmp_path / "svhn.h5")
    assert s["n"] == n and s["class_names"] == [str(i) for i in range(10)]
    import scipy.io

    raw = scipy.io.loadmat(mat)
    with h5py.File(tmp_path / "svhn.h5") as f:
        labels = f["label"][:]
        assert labels.tolist() == [int(v) % 10 for v in raw["y"].ravel()]
        assert 0 in labels.tolist() and 10 not in labels.tolist()
        assert np.array_equal(f["image"][:], raw["X"].transpose(3, 0, 1, 2))
        assert f.attrs["source"] == f"svhn-{split}"


def test_svhn_folder_picks_the_split(tmp_path):
    for split, n in (("train", 5), ("extra", 9)):
        make_svhn_mat(tmp_path / f"{split}_32x32.mat", n)
    assert import_dataset(tmp_path, tmp_path / "o.h5", split="extra")["n"] == 9


@pytest.mark.parametrize("size", [16, 64])
def test_npz_and_folder_of_any_square_size(tmp_path, size):
    from PIL import Image

    rng = np.random.default_rng(size)
    images = rng.integers(0, 256, (6, size, size, 3), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", image=images, label=np.arange(6) % 3)
    s = import_dataset(tmp_path / "x.npz", tmp_path / "n.h5")
    assert s["image_shape"] == [size, size, 3] and read_attrs(tmp_path / "n.h5")["image_size"] \
        == size
    root = tmp_path / "folder"
    for i, im in enumerate(images):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(root / f"c{i % 2}" / f"{i}.png")
    s = import_dataset(root, tmp_path / "f.h5")
    assert s["image_shape"] == [size, size, 3] and s["class_names"] == ["c0", "c1"]


def test_old_files_still_read_and_cifar10_gets_its_constants(tmp_path):
    from advscale.data.layout import dataset_normalisation, summarize

    with h5py.File(tmp_path / "v1.h5", "w") as f:  # a format-1 file: no mean/std/image_size
        f["image"] = np.zeros((4, 32, 32, 3), np.uint8)
        f["label"] = np.arange(4)
        f.attrs.update({"format_version": 1, "source": "cifar10-test", "count": 4,
                        "class_names": json.dumps(["a"] * 10)})
    assert summarize(tmp_path / "v1.h5")["n"] == 4
    assert dataset_normalisation([tmp_path / "v1.h5"]) == (CIFAR10_MEAN, CIFAR10_STD)
    with h5py.File(tmp_path / "v1.h5", "a") as f:
        f.attrs["source"] = "folder"
    assert dataset_normalisation([tmp_path / "v1.h5"]) is None


def _truncated(p: Path) -> Path:
    make_cifar100_tar(p)
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    return p


BAD = {
    "cifar100-truncated": lambda d: _truncated(d / "cifar-100-python.tar.gz"),
    "cifar100-no-meta": lambda d: make_cifar100_tar(
        d / "cifar-100-python.tar.gz", {"train": _cifar100_batch(4, 0)}),
    "cifar100-no-fine-labels": lambda d: make_cifar100_tar(
        d / "cifar-100-python.tar.gz",
        {"train": {k: v for k, v in _cifar100_batch(4, 0).items() if k != "fine_labels"},
         "meta": {"fine_label_names": FINE, "coarse_label_names": COARSE}}),
    "cifar100-wrong-shape": lambda d: make_cifar100_tar(
        d / "cifar-100-python.tar.gz",
        {"train": {**_cifar100_batch(4, 0), "data": np.zeros((4, 1024), np.uint8)},
         "meta": {"fine_label_names": FINE, "coarse_label_names": COARSE}}),
    "cifar100-label-range": lambda d: make_cifar100_tar(
        d / "cifar-100-python.tar.gz",
        {"train": {**_cifar100_batch(4, 0), "fine_labels": [0, 1, 2, 100]},
         "meta": {"fine_label_names": FINE, "coarse_label_names": COARSE}}),
    "cifar100-99-names": lambda d: make_cifar100_tar(
        d / "cifar-100-python.tar.gz",
        {"train": _cifar100_batch(4, 0),
         "meta": {"fine_label_names": FINE[:99], "coarse_label_names": COARSE}}),
    "cifar100-pickle-payload": lambda d: make_cifar100_tar(
        d / "cifar-100-python.tar.gz",
        {"train": b"cos\nsystem\n(S'echo pwned'\ntR.", "meta": {"fine_label_names": FINE,
                                                              "coarse_label_names": COARSE}}),
    "svhn-truncated": lambda d: (lambda p: (p.write_bytes(p.read_bytes()[:3000]), p)[1])(
        make_svhn_mat(d / "train_32x32.mat", 40)),
    "svhn-no-y": lambda d: (lambda p: (__import__("scipy.io").io.savemat(
        p, {"X": np.zeros((32, 32, 3, 2), np.uint8)}), p)[1])(d / "train_32x32.mat"),
    "svhn-wrong-shape": lambda d: make_svhn_mat(d / "train_32x32.mat", 4,
                                                x=np.zeros((32, 32, 4), np.uint8)),
    "svhn-label-0": lambda d: make_svhn_mat(d / "train_32x32.mat", 4,
                                            y=np.array([[0], [1], [2], [3]], np.uint8)),
    "svhn-label-11": lambda d: make_svhn_mat(d / "train_32x32.mat", 4,
                                             y=np.array([[11], [1], [2], [3]], np.uint8)),
    "svhn-y-length": lambda d: make_svhn_mat(d / "train_32x32.mat", 4,
                                             y=np.ones((3, 1), np.uint8)),
    "npz-not-square": lambda d: (np.savez(d / "x.npz", image=np.zeros((2, 16, 8, 3), np.uint8),
                                          label=np.zeros(2, int)), d / "x.npz")[1],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_official_files_give_one_line_and_no_output(tmp_path, case):
    src = BAD[case](tmp_path)
    out = tmp_path / "out.h5"
    with pytest.raises(AdvscaleError) as e:
        import_dataset(src, out)
    assert "\n" not in str(e.value) and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


@pytest.mark.parametrize("case", ["cifar100-truncated", "svhn-label-11"])
def test_malformed_as_a_process(tmp_path, case):
    src = BAD[case](tmp_path)
    r = subprocess.run([sys.executable, "-m", "advscale", "data", "import", str(src), "-o",
                        str(tmp_path / "o.h5")], capture_output=True, text=True)
    assert r.returncode != 0 and r.stdout == ""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("advscale: error:"), r.stderr
    assert not (tmp_path / "o.h5").exists()


def test_cli_coarse_option(tmp_path):
    tar = make_cifar100_tar(tmp_path / "cifar-100-python.tar.gz")
    r = subprocess.run([sys.executable, "-m", "advscale", "data", "import", str(tar), "-o",
                        str(tmp_path / "c.h5"), "--labels", "coarse", "--split", "test"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["class_names"] == COARSE and rec["n"] == 12
    assert "--labels coarse" in rec["provenance"]["command"]


def test_cifar100_trains_with_its_class_count_and_mean_std_then_attacks(tmp_path):
    """train builds the model with the file's 100 classes and its mean/std and records them in
    the checkpoint; attack evaluates it on the test split; gen-synthetic fits 100 classes."""
    from typer.testing import CliRunner

    from advscale.cli.main import app
    from advscale.models.checkpoint import load_for_eval, read_checkpoint_metadata

    tar = make_cifar100_tar(tmp_path / "cifar-100-python.tar.gz", n_train=200, n_test=16)
    import_dataset(tar, tmp_path / "train.h5")
    import_dataset(tar, tmp_path / "test.h5", split="test")
    attrs = read_attrs(tmp_path / "train.h5")
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), "--data",
                            str(tmp_path / "train.h5"), "--eval-data", str(tmp_path / "test.h5"),
                            "--model", "wrn-10-1", "--samples", "16", "--batch-size", "8",
                            "--pgd-steps", "1", "--eval-n", "8", "--eval-steps", "1",
                            "--no-progress", "--device", "cpu"])
    assert r.exit_code == 0, r.stderr
    meta = read_checkpoint_metadata(tmp_path / "run")
    assert meta["num_classes"] == 100
    assert meta["mean"] == attrs["mean"] and meta["std"] == attrs["std"]
    model, _ = load_for_eval(tmp_path / "run")
    np.testing.assert_allclose(model.mean.flatten().tolist(), attrs["mean"], atol=1e-6)
    np.testing.assert_allclose(model.std.flatten().tolist(), attrs["std"], atol=1e-6)
    r = runner.invoke(app, ["attack", str(tmp_path / "run"), "--data", str(tmp_path / "test.h5"),
                            "--attack", "pgd-cw", "--steps", "1", "--n", "8", "--device", "cpu"])
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout.splitlines()[-1])
    assert rec["kind"] == "attack" and 0 <= rec["robust_acc"] <= 1
    r = runner.invoke(app, ["gen-synthetic", "fit-gaussian", str(tmp_path / "train.h5"), "-o",
                            str(tmp_path / "g.safetensors"), "--components", "2"])
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(app, ["gen-synthetic", "--model", str(tmp_path / "g.safetensors"), "-o",
                            str(tmp_path / "syn.h5"), "-n", "120", "--steps", "2"])
    assert r.exit_code == 0, r.stderr
    with h5py.File(tmp_path / "syn.h5") as f:
        assert json.loads(f.attrs["class_names"]) == FINE and f["label"][:].max() >= 99


def test_validity_prompt_names_the_files_classes():
    from advscale.data import CIFAR10_CLASSES
    from advscale.validity.machine_rater import PROMPT, prompt_for

    assert prompt_for(CIFAR10_CLASSES) == PROMPT
    p = prompt_for(FINE)
    assert "one of 100 classes" in p and "fine00, fine01" in p and "airplane" not in p
