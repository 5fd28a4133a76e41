"""The EDM sampler against an analytic oracle (class-conditional Gaussian data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advscale.core.tensors import quantize_uint8, to_uint8_nhwc
from advscale.synthetic.builtin_gaussian import GaussianGenerator, fit_gaussian_generator
from advscale.synthetic.edm import (
    EDMPrecond,
    SamplerConfig,
    edm_precond,
    edm_sample,
    edm_sigmas,
    from_uint8,
    nfe_for,
)


def _oracle(d_shape=(3, 4, 4), k=6, classes=3, seed=0) -> GaussianGenerator:
    """A class-conditional Gaussian with variances spanning 1e-4..0.5 (stiff like images)."""
    rng = np.random.default_rng(seed)
    d = int(np.prod(d_shape))
    means = rng.uniform(-0.5, 0.5, (classes, d))
    bases = np.stack([np.linalg.qr(rng.normal(size=(d, k)))[0] for _ in range(classes)])
    variances = np.stack([np.geomspace(0.5, 1e-4, k) * (1 + c) / classes
                          for c in range(classes)])
    residual = np.array([1e-3, 0.0, 2e-3])[:classes]
    return GaussianGenerator(means, bases, variances, residual, [str(i) for i in range(classes)],
                             d_shape)


def _latents(gen, n, seed=0):
    gens = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    return gen.prior(gens), gens


def test_schedule_matches_the_paper():
    t = edm_sigmas(18)
    assert t.dtype == torch.float64 and len(t) == 19
    assert float(t[0]) == pytest.approx(80.0) and float(t[17]) == pytest.approx(0.002)
    assert float(t[18]) == 0.0
    assert torch.all(t[1:] < t[:-1])
    # rho = 7 interpolation in sigma^(1/rho) is linear
    r = t[:18] ** (1 / 7)
    assert torch.allclose(r[1:] - r[:-1], (r[1] - r[0]).expand(17))
    with pytest.raises(ValueError):
        edm_sigmas(1)


def test_preconditioning_coefficients():
    s = torch.tensor([0.5, 2.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_precond(s, 0.5)
    assert c_skip.tolist() == pytest.approx([0.5, 0.25 / 4.25])
    assert c_out.tolist() == pytest.approx([0.25 / math.sqrt(0.5), 1.0 / math.sqrt(4.25)])
    assert c_in.tolist() == pytest.approx([1 / math.sqrt(0.5), 1 / math.sqrt(4.25)])
    assert c_noise.tolist() == pytest.approx([math.log(0.5) / 4, math.log(2.0) / 4])

    class Zero(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, c_noise, labels):
            return x * self.w

    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    d = EDMPrecond(Zero())(x, s, torch.zeros(2, dtype=torch.long))
    assert torch.allclose(d, c_skip.reshape(-1, 1, 1, 1) * x)


def test_gaussian_denoiser_is_the_exact_posterior_mean():
    gen = _oracle()
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1])
    sigma = torch.tensor([0.01, 0.3, 1.0, 5.0, 80.0], dtype=torch.float64)
    got = gen.denoise(x, sigma, labels)
    for i in range(5):
        c = int(labels[i])
        u = gen.bases[c]
        cov = u @ torch.diag(gen.variances[c]) @ u.T
        cov += gen.residual[c] * (torch.eye(48, dtype=torch.float64) - u @ u.T)
        s2 = float(sigma[i]) ** 2
        want = gen.means[c] + cov @ torch.linalg.solve(
            cov + s2 * torch.eye(48, dtype=torch.float64), x[i].reshape(-1) - gen.means[c])
        assert torch.allclose(got[i].reshape(-1), want, atol=1e-10)


def test_error_against_exact_ode_falls_monotonically_and_nfe_is_counted():
    gen = _oracle()
    lat, _ = _latents(gen, 24)
    labels = torch.arange(24) % 3
    exact = gen.exact_ode(lat * 80.0, 80.0, 0.0, labels)
    calls = []

    def counting(x, sigma, lab):
        calls.append(1)
        assert x.dtype == torch.float64 and sigma.shape == (x.shape[0],)
        return gen.denoise(x, sigma, lab)

    errors = []
    for steps in (5, 6, 7, 10, 20):
        calls.clear()
        res = edm_sample(counting, lat, labels, SamplerConfig(steps=steps))
        assert res.nfe == len(calls) == 2 * steps - 1 == nfe_for(steps)
        assert res.images.dtype == torch.float64
        errors.append(float((res.images - exact).pow(2).mean().sqrt()))
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 0.05 * errors[0]
    # Euler: one evaluation per step
    calls.clear()
    res = edm_sample(counting, lat, labels, SamplerConfig(steps=7, solver="euler"))
    assert res.nfe == len(calls) == 7


def test_sampler_samples_have_the_fitted_class_statistics():
    """Converged samples follow each class's mean (the closed-form flow is exact)."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (300, 4, 4, 3), dtype=np.uint8)
    labels = np.arange(300) % 2
    images[labels == 1] //= 3  # class 1 is darker
    gen = fit_gaussian_generator(images, labels, ["a", "b"], components=8)
    lat, _ = _latents(gen, 200)
    lab = torch.arange(200) % 2
    out = edm_sample(gen.denoise, lat, lab, SamplerConfig(steps=20)).images
    for c in (0, 1):
        got = out[lab == c].reshape(100, -1)
        assert float(got.mean()) == pytest.approx(float(gen.means[c].mean()), abs=0.03)
        want_var = float(gen.variances[c].sum() + gen.residual[c] * (48 - 8)) / 48
        assert float(got.var(0).mean()) == pytest.approx(want_var, rel=0.25)
    assert float(out[lab == 1].mean()) < float(out[lab == 0].mean()) - 0.3


def test_churn_uses_per_image_noise_and_is_reproducible():
    gen = _oracle()
    lat, gens = _latents(gen, 6, seed=10)
    labels = torch.arange(6) % 3
    cfg = SamplerConfig(steps=6, s_churn=10.0, s_min=0.05, s_max=50.0)
    with pytest.raises(ValueError):
        edm_sample(gen.denoise, lat, labels, cfg)
    a = edm_sample(gen.denoise, lat, labels, cfg, gens).images
    lat2, gens2 = _latents(gen, 6, seed=10)
    b = edm_sample(gen.denoise, lat2, labels, cfg, gens2).images
    assert torch.equal(a, b)
    det = edm_sample(gen.denoise, lat, labels, SamplerConfig(steps=6)).images
    assert not torch.allclose(a, det)
    # an image's result does not depend on its batch mates
    lat3, gens3 = _latents(gen, 6, seed=10)
    c = edm_sample(gen.denoise, lat3[2:4], labels[2:4], cfg, gens3[2:4]).images
    assert torch.allclose(c, a[2:4], atol=1e-12)


def test_config_validation_and_attrs():
    with pytest.raises(ValueError):
        SamplerConfig(steps=1)
    with pytest.raises(ValueError):
        SamplerConfig(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError):
        SamplerConfig(solver="rk4")
    a = SamplerConfig(steps=10).as_attrs()
    assert a["nfe"] == 19 and a["s_max"] is None and a["rho"] == 7.0


def test_uint8_round_trip():
    px = torch.randint(0, 256, (3, 8, 8, 3), dtype=torch.uint8)
    assert np.array_equal(to_uint8_nhwc(from_uint8(px), value_range="symmetric"), px.numpy())
    big = torch.full((1, 3, 2, 2), 5.0, dtype=torch.float64)
    assert to_uint8_nhwc(big, value_range="symmetric").max() == 255
    assert quantize_uint8(np.array([np.nan, -1.0, 0.5, 2.0])).tolist() == [0, 0, 128, 255]
