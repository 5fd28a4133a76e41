"""Kill ``advscale train`` mid-run (SIGKILL), ``--resume``, and get the uninterrupted records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import make_h5

from advscale.records import read_records

VOLATILE = {"provenance", "run_id", "wall_s"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _cmd(out: Path, train: Path, test: Path) -> list[str]:
    return [sys.executable, "-m", "advscale", "train", "--out", str(out), "--data", str(train),
            "--eval-data", str(test), "--model", "wrn-10-1", "--samples", "128",
            "--batch-size", "16", "--lr", "0.1", "--pgd-steps", "1", "--eval-every", "32",
            "--checkpoint-every", "16", "--eval-n", "16", "--eval-steps", "1", "--seed", "5",
            "--no-progress"]


def _payloads(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in read_records(path)]


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    from safetensors.torch import load_file

    train = make_h5(tmp_path / "train.h5", 128, seed=1)
    test = make_h5(tmp_path / "test.h5", 16, seed=2)
    a, b = tmp_path / "a", tmp_path / "b"

    # the run we will kill, started first so both share the machine's load
    victim = subprocess.Popen(_cmd(b, train, test), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (b / "state.safetensors").exists():
        assert victim.poll() is None, victim.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    killed_out, _ = victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    before = len(_payloads(b / "records.jsonl")) if (b / "records.jsonl").exists() else 0
    assert before < 4, "the run finished before it could be killed"

    full = subprocess.run(_cmd(a, train, test), env=_env(), capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    resumed = subprocess.run([sys.executable, "-m", "advscale", "train", "--out", str(b),
                              "--resume", "--no-progress"],
                             env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr

    ra, rb = _payloads(a / "records.jsonl"), _payloads(b / "records.jsonl")
    assert len(ra) == 4 and [r["samples_seen"] for r in ra] == [32, 64, 96, 128]
    assert len(rb) == 4, "records were duplicated or lost across the kill"
    for x, y in zip(ra, rb, strict=True):
        assert x == y
    assert ra[-1]["final"] and rb[-1]["final"]
    # the killed run's stdout plus the resumed run's stdout cover every record once or more
    streamed = [ln for ln in (killed_out + resumed.stdout).splitlines() if ln.strip()]
    assert len(streamed) >= 4
    # same final weights, bit for bit
    wa, wb = load_file(str(a / "last.safetensors")), load_file(str(b / "last.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] == wb[k]).all(), k
    # records' run id is the one in config.json, before and after the kill
    ids = {r["run_id"] for r in read_records(b / "records.jsonl")}
    assert len(ids) == 1


def test_torn_record_line_is_dropped(tmp_path):
    from advscale.training.rundir import RunDir

    run = RunDir(tmp_path)
    run.records.write_text('{"kind":"train.eval"}\n{"kind":"tr')
    assert run.records_on_disk() == 1
    run.drop_torn_record()
    assert run.records.read_text() == '{"kind":"train.eval"}\n'


TINY_CFG = {"model": "wrn-10-1", "samples": 64, "batch_size": 32, "lr": 0.1, "pgd_steps": 1,
            "eval_every": 32, "eval_n": 16, "eval_steps": 1, "seed": 3, "progress": False}


def _flags(cfg: dict) -> list[str]:
    out = []
    for k, v in cfg.items():
        flag = "--" + k.replace("_", "-")
        out += [flag if v else "--no-" + flag[2:]] if isinstance(v, bool) else [flag, str(v)]
    return out


def _stop_after_first_checkpoint(monkeypatch) -> None:
    """Interrupt training (as Ctrl-C would) right after its first checkpoint is written."""
    from advscale.training import loop

    real = loop.save_state

    def save_then_stop(*a, **kw):
        real(*a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_state", save_then_stop)


def _same_run(a: Path, b: Path) -> None:
    from safetensors.torch import load_file

    ra, rb = _payloads(a / "records.jsonl"), _payloads(b / "records.jsonl")
    assert [r["samples_seen"] for r in ra] == [32, 64] and ra == rb
    wa, wb = load_file(str(a / "last.safetensors")), load_file(str(b / "last.safetensors"))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def test_cli_and_api_resume_each_others_runs(tmp_path, monkeypatch, one_torch_thread):
    """One run-directory rule: a run the CLI started continues through ``advscale.train`` and
    one the API started continues through ``advscale train --resume``, with the records and
    checkpoint of an uninterrupted run."""
    import pytest
    from typer.testing import CliRunner

    import advscale
    from advscale.cli.main import app

    train = str(make_h5(tmp_path / "train.h5", 64, seed=1))
    test = str(make_h5(tmp_path / "test.h5", 16, seed=2))
    ref, by_cli, by_api = tmp_path / "ref", tmp_path / "cli", tmp_path / "api"
    advscale.train(train, ref, eval_data=test, **TINY_CFG)

    with monkeypatch.context() as m:
        _stop_after_first_checkpoint(m)
        r = CliRunner().invoke(app, ["train", "--out", str(by_cli), "--data", train,
                                     "--eval-data", test, *_flags(TINY_CFG)])
        assert r.exit_code == 130, r.stderr
        with pytest.raises(KeyboardInterrupt):
            advscale.train(train, by_api, eval_data=test, **TINY_CFG)
    assert len(_payloads(by_cli / "records.jsonl")) == 1

    resumed = advscale.train(train, by_cli, resume=True)
    assert [r["samples_seen"] for r in resumed] == [64]
    r = CliRunner().invoke(app, ["train", "--out", str(by_api), "--resume", "--no-progress"])
    assert r.exit_code == 0, r.stderr
    _same_run(ref, by_cli)
    _same_run(ref, by_api)
