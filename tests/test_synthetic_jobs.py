"""gen-synthetic jobs: resumable, sharded, class-balanced output in the HDF5 layout; the CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import make_h5
from typer.testing import CliRunner

from advscale.errors import AdvscaleError
from advscale.records import loads_all
from advscale.synthetic.builtin_gaussian import GaussianGenerator, gaussian_from_file
from advscale.synthetic.jobs import (
    generate,
    image_seeds,
    job_labels,
    partial_path,
    shard_rows,
    stitch_synthetic,
)


@pytest.fixture(scope="module")
def gauss(tmp_path_factory) -> GaussianGenerator:
    d = tmp_path_factory.mktemp("gauss")
    make_h5(d / "train.h5", 200)
    return gaussian_from_file(d / "train.h5", components=8)


def _read(path):
    with h5py.File(path, "r") as f:
        return f["image"][:], f["label"][:], f["seed"][:] if "seed" in f else None, dict(f.attrs)


def test_labels_balanced_shuffled_and_seeds_distinct():
    rows = np.arange(1003)
    lab = job_labels(7, 1003, 10, rows)
    counts = np.bincount(lab, minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 1003
    assert not np.array_equal(lab[:20], np.arange(20) % 10)  # shuffled
    assert np.array_equal(job_labels(7, 1003, 10, rows[500:600]), lab[500:600])
    seeds = image_seeds(7, rows)
    assert len(set(seeds.tolist())) == 1003 and seeds.min() >= 0
    assert not np.array_equal(image_seeds(8, rows), seeds)


def test_shards_are_whole_batches_that_tile_the_job():
    spans = [shard_rows(1003, 100, (i, 3)) for i in range(3)]
    assert spans[0][0] == 0 and spans[-1][1] == 1003
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert all(s % 100 == 0 for s, _ in spans)


def test_output_layout_and_attributes(gauss, tmp_path):
    out = tmp_path / "syn.h5"
    s = generate(gauss, out, num=20, steps=5, batch_size=16, seed=1)
    assert s["n"] == 20 and s["nfe"] == 9 and s["steps"] == 5
    assert s["flops_per_image"] == pytest.approx(9 * gauss.flops_per_call)
    images, labels, seeds, attrs = _read(out)
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    assert attrs["count"] == 20 and attrs["source"] == "synthetic"
    assert attrs["status"] == "complete" and attrs["generator"] == "builtin-gaussian"
    assert attrs["is_trained_diffusion_model"] == 0
    assert "NOT a trained diffusion model" in attrs["generator_note"]
    assert attrs["sampler_sigma_max"] == 80.0 and attrs["sampler_rho"] == 7.0
    assert json.loads(attrs["job"])["steps"] == 5
    assert np.array_equal(seeds, image_seeds(1, np.arange(20)))
    assert np.array_equal(labels, job_labels(1, 20, 10, np.arange(20)))
    assert not partial_path(out).exists()
    with pytest.raises(AdvscaleError, match="already exists"):
        generate(gauss, out, num=20, steps=5, batch_size=16, seed=1)
    # resuming a finished job is a no-op
    assert generate(gauss, out, num=20, steps=5, batch_size=16, seed=1,
                    resume=True)["rows_generated"] == 0


class _Kill(Exception):
    pass


def test_kill_and_resume_gives_identical_output(gauss, tmp_path):
    ref = tmp_path / "ref.h5"
    generate(gauss, ref, num=40, steps=3, batch_size=16, seed=3)
    out = tmp_path / "out.h5"

    def die_after_two_batches(done, total):
        if done >= 32:
            raise _Kill

    with pytest.raises(_Kill):
        generate(gauss, out, num=40, steps=3, batch_size=16, seed=3,
                 progress=die_after_two_batches)
    part = partial_path(out)
    assert part.exists() and not out.exists()
    with h5py.File(part, "r") as f:
        assert f.attrs["count"] == 32 and f.attrs["status"] == "partial"
    with pytest.raises(AdvscaleError, match="resume"):
        generate(gauss, out, num=40, steps=3, batch_size=16, seed=3)
    with pytest.raises(AdvscaleError, match="other settings.*steps"):
        generate(gauss, out, num=40, steps=4, batch_size=16, seed=3, resume=True)
    s = generate(gauss, out, num=40, steps=3, batch_size=16, seed=3, resume=True)
    assert s["resumed_from"] == 32 and s["rows_generated"] == 8
    a, b = _read(ref), _read(out)
    for x, y in zip(a[:3], b[:3], strict=True):
        assert np.array_equal(x, y)


def test_one_vs_two_shards_identical_after_stitch(gauss, tmp_path):
    one = tmp_path / "one.h5"
    generate(gauss, one, num=25, steps=3, batch_size=8, seed=4)
    parts = [tmp_path / f"s{i}.h5" for i in range(2)]
    for i, p in enumerate(parts):
        generate(gauss, p, num=25, steps=3, batch_size=8, seed=4, shard=(i, 2))
    with pytest.raises(AdvscaleError, match="missing"):
        stitch_synthetic(parts[:1], tmp_path / "bad.h5")
    other = tmp_path / "other.h5"
    generate(gauss, other, num=25, steps=3, batch_size=8, seed=5, shard=(1, 2))
    with pytest.raises(AdvscaleError, match="different job"):
        stitch_synthetic([parts[0], other], tmp_path / "bad.h5")
    out = tmp_path / "all.h5"
    s = stitch_synthetic(parts[::-1], out)
    assert s["n"] == 25 and s["virtual"]
    from advscale.data.reader import ImageMixture

    mix = ImageMixture([out])
    images, labels = mix[np.arange(25)]
    a = _read(one)
    assert np.array_equal(images, a[0]) and np.array_equal(labels, a[1])
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["synthetic_job"])["steps"] == 3


def test_saved_fit_reloads_with_same_fingerprint(gauss, tmp_path):
    p = gauss.save(tmp_path / "fit.safetensors")
    again = GaussianGenerator.load(p)
    assert again.fingerprint() == gauss.fingerprint()
    assert again.fit_info == gauss.fit_info


def test_cli_generate_resume_stitch(tmp_path):
    from advscale.cli.main import app

    make_h5(tmp_path / "train.h5", 100)
    runner = CliRunner()
    base = ["gen-synthetic", "--data", str(tmp_path / "train.h5"), "--components", "4",
            "--steps", "3", "-n", "20", "--batch-size", "8"]
    outs = []
    for i in range(2):
        out = tmp_path / f"p{i}.h5"
        r = runner.invoke(app, [*base, "--shard", f"{i}/2", "-o", str(out)])
        assert r.exit_code == 0, r.output
        recs = loads_all(r.stdout)
        assert len(recs) == 1 and recs[0]["kind"] == "synthetic"
        assert recs[0]["shard"] == f"{i}/2" and recs[0]["nfe"] == 5
        assert recs[0]["is_trained_diffusion_model"] is False
        outs.append(out)
    r = runner.invoke(app, [*base, "--shard", "0/2", "-o", str(outs[0])])
    assert r.exit_code != 0 and "already exists" in r.output
    r = runner.invoke(app, ["gen-synthetic", "stitch", *map(str, outs), "--real",
                            str(tmp_path / "train.h5"), "-o", str(tmp_path / "all.h5")])
    assert r.exit_code == 0, r.output
    assert loads_all(r.stdout)[0]["n"] == 120
    r = runner.invoke(app, ["gen-synthetic", "-o", str(tmp_path / "x.h5")])
    assert r.exit_code != 0 and "--data" in r.output
    r = runner.invoke(app, ["gen-synthetic", "-g", "nope", "-o", str(tmp_path / "x.h5")])
    assert r.exit_code != 0 and "unknown generator" in r.output


def test_sigkill_then_cli_resume_is_identical(gauss, tmp_path):
    """A real SIGKILL mid-job: the partial file reopens and --resume completes it identically."""
    import os
    import signal
    import subprocess
    import sys
    import time

    fit = gauss.save(tmp_path / "fit.safetensors")
    ref = tmp_path / "ref.h5"
    generate(gauss, ref, num=300, steps=3, batch_size=10, seed=2)
    out = tmp_path / "out.h5"
    cmd = [sys.executable, "-m", "advscale", "gen-synthetic", "--model", str(fit), "--steps",
           "3", "-n", "300", "--batch-size", "10", "--seed", "2", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = partial_path(out)
    count, deadline = 0, time.time() + 120
    try:
        while count == 0 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
            try:
                with h5py.File(part, "r", locking=False) as f:
                    count = int(f.attrs["count"])
            except (OSError, KeyError):
                continue
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.returncode == 0:
        pytest.skip("the job finished before it could be killed")
    assert part.exists() and not out.exists()
    from advscale.cli.main import app

    r = CliRunner().invoke(app, [*cmd[3:], "--resume"])
    assert r.exit_code == 0, r.output
    assert loads_all(r.stdout)[0]["resumed_from"] > 0
    a, b = _read(ref), _read(out)
    for x, y in zip(a[:3], b[:3], strict=True):
        assert np.array_equal(x, y)
