"""advscale attack CLI: resume after a kill, results idempotency, globs, shards/merge, errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_GUARD_S
from typer.testing import CliRunner

from advscale.records import loads_all

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def invoke(*args: str):
    from advscale.cli.main import app

    return CliRunner().invoke(app, ["attack", *map(str, args)])


def records(result) -> list[dict]:
    assert result.exit_code == 0, result.stderr
    return loads_all(result.stdout, "stdout")


def strip(rec: dict) -> dict:
    """A record without what legitimately differs between two runs: provenance and timing."""
    return {k: v for k, v in rec.items() if k not in ("provenance", "wall_s")}


def pgd_args(test_h5: Path, *extra: str, n: int = 16, chunk: int = 4, steps: int = 2):
    return ["--data", test_h5, "--attack", "pgd-cw", "--eps", "1/255", "--steps", str(steps),
            "--n", str(n), "--chunk-size", str(chunk), "--batch-size", "4", "--device", "cpu",
            *extra]


def test_killed_run_resumes_to_identical_record(tiny_ckpt, cifar_h5, tmp_path):
    """SIGKILL an attack after its first chunk; the re-run finishes the rest and its record
    and adversarial file equal an uninterrupted run's."""
    from advscale.attacks.advfile import read_adv_file

    test_h5 = cifar_h5["test"]
    state, adv = tmp_path / "state.jsonl", tmp_path / "adv.h5"
    args = [str(tiny_ckpt), *map(str, pgd_args(test_h5, n=32, chunk=8, steps=60)),
            "--state", str(state), "--save-adv", str(adv)]
    cmd = [sys.executable, "-m", "advscale", "attack", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if state.is_file() and state.read_text().endswith("\n"):
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    out, _ = p.communicate()
    assert p.returncode == -signal.SIGKILL, "the attack finished before it could be killed"
    assert out == b""  # no final record
    done = loads_all(state.read_text(), str(state))
    assert 1 <= len(done) < 4 and all(r["kind"] == "attack.chunk" for r in done)
    assert not adv.exists(), "no half-written output"

    resumed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=HANG_GUARD_S)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    (rec,) = loads_all(resumed.stdout, "stdout")
    chunks = loads_all(state.read_text(), str(state))
    assert sorted(r["chunk"] for r in chunks) == [0, 1, 2, 3]  # each chunk once

    clean = records(invoke(*args[:-4], "--state", tmp_path / "s2.jsonl", "--save-adv",
                           tmp_path / "adv2.h5"))[0]
    assert strip(rec) == strip(clean)
    assert rec["kind"] == "attack" and rec["chunks"] == 4 and rec["n"] == 32
    a, b = read_adv_file(adv), read_adv_file(tmp_path / "adv2.h5")
    for k in ("index", "label", "pred_clean", "pred_adv", "image_clean", "image_adv",
              "success"):
        assert np.array_equal(a[k], b[k]), k
    assert a["attack"] == b["attack"]
    assert not Path(f"{state}.adv").exists(), "per-chunk copies are removed once ADV.h5 is whole"


def test_results_file_skips_evaluated_checkpoints(tiny_ckpt, cifar_h5, tmp_path):
    """A glob of run dirs gives one record each; re-running with --results evaluates nothing
    new; other settings or --force do."""
    import torch

    from advscale.models import create_model
    from advscale.models.checkpoint import save_model_checkpoint

    runs = tmp_path / "runs"
    (runs / "a").mkdir(parents=True)
    shutil.copy(tiny_ckpt, runs / "a" / "last.safetensors")
    torch.manual_seed(1)
    save_model_checkpoint(runs / "b" / "last.safetensors", create_model("wrn-10-1"),
                          {"model": "wrn-10-1", "run_id": "b", "samples_seen": 0})
    (runs / "c").mkdir()  # a run that has not written a checkpoint yet
    results = tmp_path / "results.jsonl"
    args = [f"{runs}/*", *pgd_args(cifar_h5["test"]), "--results", results]

    first = invoke(*args)
    recs = records(first)
    assert [r["run_id"] for r in recs] == ["tiny", "b"]
    assert "skipping" in first.stderr and "runs/c" in first.stderr
    assert len(loads_all(results.read_text())) == 2

    again = invoke(*args)
    assert records(again) == recs  # the stored records, nothing recomputed
    assert again.stderr.count("already evaluated") == 2
    assert len(loads_all(results.read_text())) == 2

    more = records(invoke(*args[:-2], "--steps", "3", "--results", results))
    assert [r["steps"] for r in more] == [3, 3]
    assert len(loads_all(results.read_text())) == 4
    forced = invoke(*args, "--force")
    assert "already evaluated" not in forced.stderr
    assert [strip(r) for r in records(forced)] == [strip(r) for r in recs]


def test_shards_merge_to_unsharded_record(tiny_ckpt, cifar_h5, tmp_path):
    base = [tiny_ckpt, *pgd_args(cifar_h5["test"], n=20, chunk=4)]
    whole = records(invoke(*base))[0]
    parts = []
    for i in range(3):
        r = invoke(*base, "--shard", f"{i}/3")
        recs = records(r)
        assert all(x["kind"] == "attack.chunk" for x in recs)
        assert [x["chunk"] for x in recs] == list(range(i, 5, 3))
        p = tmp_path / f"s{i}.jsonl"
        p.write_text(r.stdout)
        parts.append(p)
    merged = records(invoke("--merge", *parts, "--results", tmp_path / "res.jsonl"))
    assert len(merged) == 1 and strip(merged[0]) == strip(whole)
    assert len(loads_all((tmp_path / "res.jsonl").read_text())) == 1

    bad = invoke("--merge", parts[0], parts[2])
    assert bad.exit_code != 0
    assert "missing 2 of 5 chunks: 1, 4" in bad.stderr


def _one_error_line(result, *needles: str) -> None:
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("advscale: error: "), result.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_input_gives_one_error_line(tiny_ckpt, cifar_h5, tmp_path, tiny_h5):
    import torch
    from safetensors.torch import save_file

    from advscale.models import create_model
    from advscale.models.checkpoint import save_model_checkpoint

    test_h5 = cifar_h5["test"]
    junk = tmp_path / "junk.safetensors"
    junk.write_text("not a checkpoint")
    _one_error_line(invoke(junk, "--data", test_h5), "not a safetensors checkpoint")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    _one_error_line(invoke(foreign, "--data", test_h5), "not an advscale checkpoint")
    _one_error_line(invoke(tmp_path / "missing.safetensors", "--data", test_h5),
                    "no such checkpoint")
    c100 = tmp_path / "c100.safetensors"
    save_model_checkpoint(c100, create_model("wrn-10-1", num_classes=100),
                          {"model": "wrn-10-1", "num_classes": 100})
    _one_error_line(invoke(c100, "--data", test_h5, "--attack", "pgd-cw", "--n", "4"),
                    "100", "10 classes")
    for eps in ("8/0", "-1", "0", "1.5", "abc"):
        _one_error_line(invoke(tiny_ckpt, "--data", test_h5, f"--eps={eps}"), "eps")
    _one_error_line(invoke(tiny_ckpt, "--data", test_h5, "--attack", "fgsm"),
                    "unknown --attack 'fgsm'", "aa-standard", "pgd-cw")
    _one_error_line(invoke(tiny_ckpt, "--data", test_h5, "--steps", "10"), "fixed settings")
    _one_error_line(invoke(tiny_ckpt, "--data", tiny_h5, "--n", "500"), "exceeds")
    _one_error_line(invoke(tiny_ckpt), "--data")
    _one_error_line(invoke(tiny_ckpt, "--data", test_h5, "--shard", "3/2"), "--shard")
    _one_error_line(invoke(tiny_ckpt, c100, "--data", test_h5, "--save-adv", tmp_path / "a.h5"),
                    "one checkpoint")
    _one_error_line(invoke(tiny_ckpt, "--data", tmp_path / "nope.h5"), "no such file")
    _one_error_line(invoke(tiny_ckpt, "--data", test_h5, "--device", "cuda:7"), "device")
    assert not (tmp_path / "a.h5").exists()


def test_pgd_record_does_not_depend_on_batch_or_chunk_size(tiny_ckpt, cifar_h5):
    """The random start of image i comes from (seed, i): other batches and chunks, same numbers
    (the settings key still tells the two evaluations apart)."""
    a = records(invoke(tiny_ckpt, *pgd_args(cifar_h5["test"], n=12, chunk=4)))[0]
    b = records(invoke(tiny_ckpt, *pgd_args(cifar_h5["test"], "--batch-size", "5", n=12,
                                            chunk=12)))[0]
    assert (a["chunks"], b["chunks"]) == (3, 1) and a["settings_key"] != b["settings_key"]
    for k in ("clean_correct", "robust_correct", "per_attack_robust"):
        assert a[k] == b[k], k
    assert a["adv_loss"] == pytest.approx(b["adv_loss"], rel=1e-5)


def test_state_file_torn_line_policy(tmp_path):
    """The state file follows advscale.core.jsonl: a torn last line is skipped and cut off
    before the next append; a corrupt complete line is an error naming file and line."""
    from advscale.attacks.statefile import StateFile, find_result
    from advscale.errors import AdvscaleError
    from advscale.records import dumps

    def chunk(c: int) -> dict:  # only what StateFile reads (not a whole, valid record)
        return {"kind": "attack.chunk", "schema": 1, "settings_key": "k", "chunk": c}

    path = tmp_path / "state.jsonl"
    path.write_text(dumps(chunk(0)) + "\n" + dumps(chunk(1))[:25])
    notes: list[str] = []
    st = StateFile(path, notes.append)
    assert list(st.done("k")) == [0] and len(notes) == 1 and "unfinished" in notes[0]
    st.append(chunk(2))
    assert [r["chunk"] for r in loads_all(path.read_text())] == [0, 2]
    path.write_text("{not json\n" + dumps(chunk(0)) + "\n")
    with pytest.raises(AdvscaleError, match=r"state.jsonl:1.*fresh --state"):
        st.done("k")
    results = tmp_path / "results.jsonl"
    final = {"kind": "attack", "schema": 1, "settings_key": "k", "robust_acc": 0.5}
    results.write_text(dumps(final) + "\n" + dumps(final)[:30])
    assert find_result(results, "k")["robust_acc"] == 0.5
    assert find_result(results, "other") is None and find_result(None, "k") is None
