"""Issue 28: one process at a time on a run directory, an attack log, a labels directory; a
failed new run leaves nothing that blocks the same command again; a full disk leaves no file.

The overlapping-runs tests start real ``advscale train`` processes (wrn-10-1, 16-32 images,
one PGD step) the way two cron jobs would.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HANG_GUARD_S, ROOT, make_h5
from test_corpus import assert_clean_error, run_main, untrained_checkpoint

from advscale.core.locks import LockedError, hold_lock
from advscale.errors import AdvscaleError

ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


# -- the lock -----------------------------------------------------------------------------------


def test_a_second_holder_fails_at_once_naming_the_first(tmp_path):
    target = tmp_path / "res.jsonl"
    with hold_lock(target, "results file") as lock:
        info = json.loads(lock.read_text())
        assert info["pid"] == os.getpid()
        with pytest.raises(LockedError, match=rf"results file is in use by pid {os.getpid()} "
                                              r"on .* since \d{4}-"):
            with hold_lock(target, "results file"):
                pass
    assert not lock.exists()  # released: the lock file is gone
    with hold_lock(target):  # and the next holder gets it
        pass


def test_a_stale_lock_file_of_a_killed_holder_blocks_nobody(tmp_path):
    d = tmp_path / "labels"
    d.mkdir()
    (d / ".lock").write_text('{"pid": 999999, "host": "gone", "started": "then"}')
    with hold_lock(d, lock=d / ".lock"):
        pass


def test_lock_folders_made_only_for_the_lock_are_removed(tmp_path):
    with hold_lock(tmp_path / "new" / "deeper" / "state.jsonl"):
        assert (tmp_path / "new" / "deeper").is_dir()
    assert not (tmp_path / "new").exists()


# -- attack: --results / --state held by one process --------------------------------------------


def test_attack_refuses_a_results_file_in_use(tmp_path):
    data = make_h5(tmp_path / "d.h5", 8)
    ckpt = untrained_checkpoint(tmp_path / "c.safetensors")
    results = tmp_path / "res.jsonl"
    with hold_lock(results, "attack output " + str(results)):
        msg = assert_clean_error(["attack", str(ckpt), "--data", str(data), "--results",
                                  str(results), "--attack", "pgd-cw", "--steps", "1", "--n", "4",
                                  "--device", "cpu"], tmp_path)
    assert f"in use by pid {os.getpid()}" in msg
    assert not results.exists()


# -- train: overlapping runs, a failed start --------------------------------------------------


def _train(out: Path, data: Path, samples: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "advscale", "train", "--data", str(data), "--eval-data",
            str(data), "--model", "wrn-10-1", "--samples", str(samples), "--batch-size", "8",
            "--pgd-steps", "1", "--eval-every", "16", "--checkpoint-every", "8", "--eval-n", "8",
            "--eval-steps", "1", "--no-progress", "--device", "cpu", "--seed", "1", "--out",
            str(out), *extra]


def _wait_for_holder(lock: Path, pid: int, proc: subprocess.Popen) -> None:
    """Until ``pid`` holds ``lock`` (bounded by the first process finishing)."""
    while proc.poll() is None:
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    pytest.fail(f"the first run ended before holding the lock: {proc.stderr.read()}")


def _overlap(first: list[str], second: list[str], run: Path) -> tuple[int, str, int]:
    a = subprocess.Popen(first, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        _wait_for_holder(run / ".lock", a.pid, a)
        b = subprocess.run(second, env=ENV, capture_output=True, text=True, timeout=HANG_GUARD_S)
    finally:
        out_a, err_a = a.communicate(timeout=HANG_GUARD_S)
    assert a.returncode == 0, err_a
    return b.returncode, b.stderr, len([ln for ln in out_a.splitlines() if ln.strip()])


def _evaluations(run: Path) -> list[int]:
    lines = (run / "records.jsonl").read_text().splitlines()
    return [json.loads(ln)["samples_seen"] for ln in lines if ln.strip()]


def test_two_overlapping_new_runs_one_runs_the_other_fails_at_once(tmp_path):
    data = make_h5(tmp_path / "d.h5", 32)
    run = tmp_path / "R"
    code, err, n_out = _overlap(_train(run, data, 48), _train(run, data, 48), run)
    assert code != 0 and err.count("advscale: error:") == 1, err
    assert "in use by pid" in err or "already exists" in err, err
    seen = _evaluations(run)
    assert len(seen) == len(set(seen)) == n_out  # each evaluation once


def test_two_overlapping_resumes_one_runs_the_other_fails_at_once(tmp_path):
    data = make_h5(tmp_path / "d.h5", 32)
    run = tmp_path / "R"
    longer = ("--eval-every", "256")
    first = subprocess.Popen(_train(run, data, 1024, *longer), env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    while first.poll() is None and not (run / "state.safetensors").is_file():
        time.sleep(0.05)
    first.kill()  # a cron job killed after its first checkpoint
    first.wait(timeout=HANG_GUARD_S)
    assert (run / "state.safetensors").is_file(), first.stderr.read()
    resume = [*_train(run, data, 1024, *longer), "--resume"]
    code, err, _ = _overlap(resume, resume, run)
    assert code == 75 and err.count("advscale: error:") == 1, (code, err)
    assert f"run directory {run} is in use by pid" in err
    seen = _evaluations(run)
    assert len(seen) == len(set(seen)), seen


def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_no_directory(tmp_path,
                                                                            monkeypatch):
    from advscale.training.config import TrainConfig

    data = make_h5(tmp_path / "d.h5", 16)
    run = tmp_path / "R"
    argv = _train(run, data, 16)[3:]
    msg = assert_clean_error([*argv[:2], str(tmp_path / "missing.h5"), *argv[3:]], tmp_path)
    assert "missing.h5" in msg and not run.exists()

    def full_disk(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(TrainConfig, "save", full_disk)
    msg = assert_clean_error(argv, tmp_path)
    assert "no space left" in msg.lower() and not run.exists()
    run.mkdir()  # an empty directory given by the user stays, empty
    assert_clean_error(argv, tmp_path)
    assert run.is_dir() and list(run.iterdir()) == []
    monkeypatch.undo()
    code, _, err = run_main(argv)  # the same command now simply runs
    assert code == 0, err


# -- a full disk never leaves a new file --------------------------------------------------------


def test_a_full_disk_on_a_new_state_file_leaves_no_file(tmp_path, monkeypatch):
    from advscale.records import append_record

    state = tmp_path / "aa.state"

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(AdvscaleError, match="cannot append"):
        append_record(state, {"kind": "attack.chunk", "schema": 1, "chunk": 0})
    assert not state.exists()
