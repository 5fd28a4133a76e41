"""``advscale train`` under ``torchrun --nproc_per_node=2`` (DDP, gloo, CPU): one set of records."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import HANG_GUARD_S, make_h5

from advscale.records import loads_all, read_records


def test_ddp_two_gloo_processes(tmp_path):
    from advscale.records import validate

    train = make_h5(tmp_path / "train.h5", 128, seed=1)
    test = make_h5(tmp_path / "test.h5", 16, seed=2)
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "advscale", "train", "--out", str(out), "--data", str(train),
           "--eval-data", str(test), "--model", "wrn-10-1", "--samples", "96",
           "--batch-size", "32", "--lr", "0.1", "--pgd-steps", "1", "--eval-every", "64",
           "--eval-n", "16", "--eval-steps", "1", "--seed", "2", "--no-progress"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert p.returncode == 0, p.stderr[-3000:]
    recs = loads_all(p.stdout)
    # one set of records: rank 1 writes nothing
    assert [r["samples_seen"] for r in recs] == [64, 96]
    assert [r["step"] for r in recs] == [2, 3]  # the global batch of 32 is preserved
    assert [r["final"] for r in recs] == [False, True]
    for r in recs:
        validate(r)
        assert r["world_size"] == 2 and r["batch_size"] == 32
    assert len({r["run_id"] for r in recs}) == 1
    assert len(list(read_records(out / "records.jsonl"))) == 2
    assert p.stderr.count("advscale train: step") == 2  # logs from rank 0 only
    assert (out / "last.safetensors").is_file() and (out / "state.safetensors").is_file()
    assert sorted(x.name for x in out.iterdir()) == [
        "config.json", "last.safetensors", "records.jsonl", "state.safetensors"]
