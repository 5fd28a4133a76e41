"""The training reader: no-repeat sampling, exact resume, batched reads, VDS, workers."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import make_h5

from advscale.data.reader import ImageMixture, parse_mixture, stitch, torch_loader
from advscale.data.sampler import FeistelPermutation, MixtureStream, ResumableBatchSampler
from advscale.errors import AdvscaleError


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 4097])
def test_feistel_is_a_permutation(n):
    v = FeistelPermutation(n, key=42)(np.arange(n))
    assert sorted(v.tolist()) == list(range(n))


def test_million_sample_mixture_each_index_once_per_pass():
    sizes = [600_000, 250_000, 150_000]  # a virtual 1,000,000-sample mixture
    stream = MixtureStream(sizes, seed=7)
    total = sum(sizes)
    first = stream.indices(0, total)
    assert np.array_equal(np.sort(first), np.arange(total))
    second = stream.indices(total, 2 * total)
    assert np.array_equal(np.sort(second), np.arange(total))
    assert not np.array_equal(first, second)  # a fresh permutation each pass
    assert stream.unique_drawn(total + 5) == total


def test_sampler_restored_mid_pass_continues_with_exactly_the_remaining_indices():
    total = 1_000_000
    stream = MixtureStream([total], seed=3)
    full = ResumableBatchSampler(stream, batch_size=4096, num_samples=total)
    seen = []
    it = iter(full)
    for _ in range(100):
        seen.append(next(it))
    state = dict(full.state_dict(), position=100 * 4096)
    restored = ResumableBatchSampler(MixtureStream([total], seed=3), 4096, total)
    restored.load_state_dict(json.loads(json.dumps(state)))
    rest = np.concatenate(list(restored))
    done = np.concatenate(seen)
    assert len(done) + len(rest) == total
    assert np.array_equal(np.sort(np.concatenate([done, rest])), np.arange(total))
    assert np.array_equal(rest, stream.indices(len(done), total))


def test_stream_does_not_depend_on_batch_size_or_ranks():
    stream = MixtureStream([1000, 3000], weights=[1, 3], seed=1)
    a = np.concatenate(list(ResumableBatchSampler(stream, 64, 5000)))
    b = np.concatenate(list(ResumableBatchSampler(stream, 500, 5000)))
    assert np.array_equal(a, b)
    ranks = [list(ResumableBatchSampler(stream, 64, 4096, rank=r, world_size=2)) for r in (0, 1)]
    merged = np.concatenate([np.concatenate([x, y]) for x, y in zip(*ranks, strict=True)])
    assert np.array_equal(merged, a[:4096])


def test_weighted_mixture_is_proportional_and_repeats_only_after_exhaustion():
    stream = MixtureStream([2_000, 100_000], weights=[1, 7], seed=5)
    idx = stream.indices(0, 80_000)
    from_small = idx < 2_000
    assert abs(from_small.sum() - 10_000) <= 1  # exactly 1/8 of draws, to within one sample
    large = idx[~from_small]
    assert len(np.unique(large)) == len(large)  # 70k draws of a 100k pool: no repeats
    small = idx[from_small]
    assert len(np.unique(small[:2_000])) == 2_000  # first pass of the small source is unique
    assert stream.unique_drawn(80_000) == 2_000 + len(large)


def test_tiny_weight_still_gets_draws():
    stream = MixtureStream([10, 10], weights=[1, 1e5], seed=0)
    idx = stream.indices(0, 300_000)
    assert 2 <= (idx < 10).sum() <= 4


def test_mixture_batches_match_direct_reads(tmp_path):
    a = make_h5(tmp_path / "a.h5", 300, seed=1)
    b = make_h5(tmp_path / "b.h5", 200, seed=2)
    mix = ImageMixture([a, b])
    idx = np.array([499, 3, 300, 3, 150, 0, 301])  # unsorted, repeated, across files
    images, labels = mix[idx]
    with h5py.File(a) as fa, h5py.File(b) as fb:
        ref = np.concatenate([fa["image"][:], fb["image"][:]])
        ref_lab = np.concatenate([fa["label"][:], fb["label"][:]])
    np.testing.assert_array_equal(images, ref[idx])
    np.testing.assert_array_equal(labels, ref_lab[idx])
    with pytest.raises(IndexError):
        mix[np.array([500])]


def test_stitched_virtual_file_reads_like_the_parts(tmp_path):
    a = make_h5(tmp_path / "a.h5", 120, seed=1)
    b = make_h5(tmp_path / "b.h5", 80, seed=2)
    (tmp_path / "sets").mkdir()
    out = tmp_path / "sets" / "all.h5"
    summary = stitch([a, b], out)
    assert summary["n"] == 200 and summary["virtual"]
    stitched, parts = ImageMixture([out]), ImageMixture([a, b])
    idx = np.random.default_rng(0).integers(0, 200, 64)
    np.testing.assert_array_equal(stitched[idx][0], parts[idx][0])
    np.testing.assert_array_equal(stitched[idx][1], parts[idx][1])


def test_parse_mixture_forms(tmp_path):
    spec = parse_mixture("real.h5:1,syn.h5:7")
    assert spec.paths == ["real.h5", "syn.h5"] and spec.weights == [1.0, 7.0]
    assert parse_mixture(["a.h5", "b.h5"]).weights is None
    (tmp_path / "m.json").write_text(json.dumps(
        {"format": "advscale-mixture", "sources": [{"path": "x.h5", "weight": 2}]}))
    spec = parse_mixture(str(tmp_path / "m.json"))
    assert spec.paths == [str(tmp_path / "x.h5")] and spec.weights == [2.0]
    with pytest.raises(AdvscaleError, match="every source"):
        parse_mixture("a.h5:1,b.h5")


def test_torch_loader_with_worker_processes(tmp_path):
    torch = pytest.importorskip("torch")
    a = make_h5(tmp_path / "a.h5", 256, seed=1)
    mix = ImageMixture([a])
    sampler = ResumableBatchSampler(MixtureStream([256], seed=0), 32, 256)
    batches = list(torch_loader(mix, sampler, num_workers=2))
    assert len(batches) == 8
    x, y = batches[0]
    assert x.dtype == torch.uint8 and x.shape == (32, 32, 32, 3) and y.dtype == torch.int64
    all_idx = np.concatenate(list(sampler))
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]),
                                  mix.labels[all_idx])


def test_cli_mix_writes_a_mixture_file(tmp_path):
    from typer.testing import CliRunner

    from advscale.cli.main import app

    a = make_h5(tmp_path / "a.h5", 50)
    b = make_h5(tmp_path / "b.h5", 30)
    out = tmp_path / "m" / "mix.json"
    r = CliRunner().invoke(app, ["data", "mix", f"{a}:1", f"{b}:3", "-o", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert [s["n"] for s in doc["sources"]] == [50, 30]
    spec = parse_mixture(str(out))
    assert ImageMixture(spec.paths).sizes == [50, 30] and spec.weights == [1.0, 3.0]
