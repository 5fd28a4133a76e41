"""``advscale train`` end to end on CPU: CIFAR-10 records that validate, bad input, faults."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import make_h5
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.errors import AdvscaleError
from advscale.records import loads_all, read_records

runner = CliRunner()
TINY = ["--model", "wrn-10-1", "--pgd-steps", "1", "--eval-n", "16", "--eval-steps", "1",
        "--batch-size", "32", "--lr", "0.1", "--no-progress"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("small")
    return {"train": make_h5(d / "train.h5", 128, seed=1), "test": make_h5(d / "test.h5", 32, 2)}


def _documented_fields() -> set[str]:
    from test_train_units import _documented_train_eval_fields

    return set(_documented_train_eval_fields())


def test_train_cifar10_records_validate(cifar_h5, tmp_path):
    """The acceptance run: wrn-10-1, 2048 CIFAR-10 samples, TRADES with 2 PGD steps."""
    from advscale.models.checkpoint import load_for_eval
    from advscale.records import validate

    out = tmp_path / "run"
    r = runner.invoke(app, [
        "train", "--out", str(out), "--data", str(cifar_h5["train"]),
        "--eval-data", str(cifar_h5["test"]), "--model", "wrn-10-1", "--samples", "2048",
        "--pgd-steps", "2", "--batch-size", "256", "--lr", "0.2", "--eval-n", "64",
        "--eval-every", "1024", "--eval-steps", "10", "--seed", "1",
    ])
    assert r.exit_code == 0, r.stderr
    recs = loads_all(r.stdout)
    assert [x["kind"] for x in recs] == ["train.eval", "train.eval"]
    documented = _documented_fields()
    for rec in recs:
        validate(rec)
        payload = set(rec) - {"kind", "schema", "provenance"}
        assert payload <= documented, payload - documented
        assert rec["provenance"]["seed"] == 1 and rec["provenance"]["config"]["samples"] == 2048
    first, last = recs
    assert (first["step"], first["samples_seen"], first["final"]) == (4, 1024, False)
    assert (last["step"], last["samples_seen"], last["final"]) == (8, 2048, True)
    assert last["samples_unique"] == 2048  # 50,000 images: nothing drawn twice
    assert last["params"] == 77_850 and last["loss"] == "trades" and last["pgd_steps"] == 2
    assert last["eval_n"] == 64 and last["eval_attack"] == "pgd-cw-10"
    assert last["data"][0]["source"] == "cifar10-train" and last["fid"] is None
    assert last["train_flops"] == pytest.approx(2048 * last["train_flops_per_sample"])
    assert first["run_id"] == last["run_id"]
    assert last["wall_s"] > first["wall_s"] > 0
    assert math.isfinite(last["train_loss"]) and last["adv_loss"] > 0
    # stdout and the run directory agree; the checkpoint loads for `attack`
    on_disk = list(read_records(out / "records.jsonl"))
    assert [json.dumps(x, sort_keys=True) for x in on_disk] == \
        [json.dumps(x, sort_keys=True) for x in recs]
    model, meta = load_for_eval(out)
    assert meta["samples_seen"] == 2048 and meta["run_id"] == last["run_id"]
    assert meta["model"] == "wrn-10-1" and not model.training
    assert json.loads((out / "config.json").read_text())["run_id"] == last["run_id"]
    assert "step 8" in r.stderr  # human log on stderr


def test_timm_model_and_weighted_mixture(small, tmp_path):
    """A non-WRN timm model trains too; a weighted mixture reports per-source FIDs."""
    from advscale.data.layout import ImageFileWriter

    syn = tmp_path / "syn.h5"
    rng = np.random.default_rng(3)
    with ImageFileWriter(syn, 64, source="synthetic", class_names=[str(i) for i in range(10)],
                         attrs={"quality_metric": "fid", "quality_value": 3.5, "fid": 3.5}) as w:
        w.write(rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), np.arange(64) % 10)
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--data", f"{small['train']}:1,{syn}:3",
            "--eval-data", str(small["test"]), "--samples", "64", "--eval-every", "0",
            *TINY, "--model", "resnet10t", "--loss", "pgd-at"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.stderr
    (rec,) = loads_all(r.stdout)
    assert rec["model"] == "resnet10t" and rec["activation"] is None and rec["beta"] == 0.0
    assert [d["weight"] for d in rec["data"]] == [1.0, 3.0]
    assert [d["fid"] for d in rec["data"]] == [None, 3.5]
    assert rec["fid"] == 3.5 and rec["train_flops"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "no-such-net"], "unknown --model"),
        (["--eps", "0"], "eps"),
        (["--eps", "2"], "eps"),
        (["--eps", "eight"], "eps"),
        (["--num-classes", "5"], "labels span 0..9"),
        (["--loss", "mart"], "unknown --loss"),
    ],
)
def test_bad_options(small, tmp_path, extra, message):
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--out", str(out), "--data", str(small["train"]),
                            "--eval-data", str(small["test"]), "--samples", "32", *TINY, *extra])
    assert r.exit_code == 2
    assert r.stderr.startswith("advscale: error:") and message in r.stderr, r.stderr
    assert r.stdout == ""
    assert not (out / "config.json").exists()


def test_wrong_shape_dataset(small, tmp_path):
    from advscale.data.layout import ImageFileWriter

    bad = tmp_path / "bad.h5"
    with ImageFileWriter(bad, 8, source="test", class_names=[str(i) for i in range(10)],
                         image_shape=(28, 28, 3)) as w:
        w.write(np.zeros((8, 28, 28, 3), np.uint8), np.arange(8))
    for data, evald in ((bad, small["test"]), (small["train"], bad)):
        r = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), "--data", str(data),
                                "--eval-data", str(evald), "--samples", "32", *TINY])
        assert r.exit_code == 2 and "28×28×3" in r.stderr and "32×32×3" in r.stderr, r.stderr
    r = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), "--data", "missing.h5",
                            "--eval-data", str(small["test"]), "--samples", "32", *TINY])
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_never_reuses_or_deletes_a_directory(small, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    keep = out / "notes.txt"
    keep.write_text("mine")
    base = ["train", "--out", str(out), "--data", str(small["train"]),
            "--eval-data", str(small["test"]), "--samples", "32", *TINY]
    r = runner.invoke(app, base)
    assert r.exit_code == 2 and "already exists" in r.stderr
    r = runner.invoke(app, [*base, "--resume"])
    assert r.exit_code == 2 and "nothing to resume" in r.stderr
    assert keep.read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_resume_of_finished_run_and_changed_settings(small, tmp_path):
    out = tmp_path / "run"
    base = ["train", "--out", str(out), "--data", str(small["train"]),
            "--eval-data", str(small["test"]), "--samples", "64", "--eval-every", "0", *TINY]
    assert runner.invoke(app, base).exit_code == 0
    again = runner.invoke(app, ["train", "--out", str(out), "--resume"])
    assert again.exit_code == 0 and again.stdout == "" and "already complete" in again.stderr
    changed = runner.invoke(app, ["train", "--out", str(out), "--resume", "--samples", "128"])
    assert changed.exit_code == 2 and "samples=128" in changed.stderr
    assert len(list(read_records(out / "records.jsonl"))) == 1


def test_non_finite_loss_stops_and_keeps_last_checkpoint(small, tmp_path, monkeypatch):
    from advscale.training import losses
    from advscale.training.config import TrainConfig
    from advscale.training.loop import train

    real = losses.LOSSES["trades"]
    calls = {"n": 0}

    def explode_later(*a, **kw):
        out = real(*a, **kw)
        if a[1].device.type == "meta":  # the FLOP counter's step, not a training step
            return out
        calls["n"] += 1
        if calls["n"] > 2:  # steps 3, 4: NaN
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setitem(losses.LOSSES, "trades", explode_later)
    cfg = TrainConfig(data=str(small["train"]), eval_data=str(small["test"]), samples=128,
                      model="wrn-10-1", pgd_steps=1, batch_size=32, lr=0.1, eval_n=16,
                      eval_steps=1, eval_every=64, progress=False)
    out = tmp_path / "run"
    with pytest.raises(AdvscaleError, match=r"non-finite.*last good checkpoint \(step 2\)"):
        train(cfg, out, stdout=open(tmp_path / "stdout.jsonl", "w"))  # noqa: SIM115
    from advscale.training.state import read_state

    _, meta = read_state(out)
    assert meta["counters"]["step"] == 2
    assert len(list(read_records(out / "records.jsonl"))) == 1


def test_disk_full_on_checkpoint_keeps_previous(small, tmp_path, monkeypatch):
    import errno

    from advscale.core import stfile
    from advscale.training import state as state_mod
    from advscale.training.config import TrainConfig
    from advscale.training.loop import train

    real_save = stfile.save_file
    calls = {"n": 0}

    def fill_disk(tensors, filename, metadata):
        calls["n"] += "advscale_train_state" in metadata
        if calls["n"] == 2 and "advscale_train_state" in metadata:
            Path(filename).write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(tensors, filename, metadata)

    monkeypatch.setattr(stfile, "save_file", fill_disk)
    cfg = TrainConfig(data=str(small["train"]), eval_data=str(small["test"]), samples=128,
                      model="wrn-10-1", pgd_steps=1, batch_size=32, lr=0.1, eval_n=16,
                      eval_steps=1, eval_every=64, progress=False)
    out = tmp_path / "run"
    with pytest.raises(AdvscaleError,
                       match="(disk full|no space left).*previous file there is intact"):
        train(cfg, out, stdout=open(tmp_path / "stdout.jsonl", "w"))  # noqa: SIM115
    _, meta = state_mod.read_state(out)
    assert meta["counters"]["step"] == 2  # the first checkpoint, whole
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_init_from_a_published_checkpoint(small, tmp_path):
    """`train --init` starts from imported weights (architecture and mean/std from the file),
    recorded in config and records; a contradicting --model is one error line."""
    import torch
    from test_import import DMWRN, _randomise

    from advscale.core.fileio import file_sha256
    from advscale.models.checkpoint import load_for_eval

    mean, std = (0.5, 0.4, 0.3), (0.2, 0.3, 0.4)
    src = _randomise(DMWRN(10, 1), 3)
    state = dict(src.state_dict(), mean=torch.tensor(mean).view(3, 1, 1),
                 std=torch.tensor(std).view(3, 1, 1))  # RobustBench-style buffers
    pt = tmp_path / "published.pt"
    torch.save(state, pt)
    out = tmp_path / "ft"
    args = ["train", "--out", str(out), "--data", str(small["train"]), "--eval-data",
            str(small["test"]), "--samples", "32", "--init", str(pt), "--pgd-steps", "1",
            "--eval-n", "16", "--eval-steps", "1", "--batch-size", "32", "--lr", "1e-12",
            "--no-progress"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    rec = loads_all(r.stdout)[-1]
    assert rec["model"] == "wrn-10-1" and rec["init"] == str(pt)
    assert rec["init_sha256"] == file_sha256(pt)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["init"] == str(pt) and cfg["model_kwargs"]["mean"] == pytest.approx(mean)
    tuned, meta = load_for_eval(out)  # the run's checkpoint keeps the source's normalisation
    assert meta["mean"] == pytest.approx(mean) and meta["std"] == pytest.approx(std)
    imported, _ = load_for_eval(pt)
    for name, w in imported.state_dict().items():  # lr ~ 0: the weights barely moved
        if w.dtype.is_floating_point and "running" not in name:
            assert torch.allclose(tuned.state_dict()[name], w, atol=1e-6), name
    bad = runner.invoke(app, [*args[:2], str(tmp_path / "other"), *args[3:], "--model",
                              "wrn-16-1"])
    assert bad.exit_code != 0 and "contradicts --init" in bad.output


def test_samples_accepts_scientific_notation(small, tmp_path):
    r = runner.invoke(app, ["train", "--out", str(tmp_path / "r"), "--data", str(small["train"]),
                            "--eval-data", str(small["test"]), "--samples", "3.2e1", *TINY])
    assert r.exit_code == 0, r.output
    assert loads_all(r.stdout)[-1]["samples_seen"] == 32
    bad = runner.invoke(app, ["train", "--out", str(tmp_path / "b"), "--data",
                              str(small["train"]), "--samples", "1.5", *TINY])
    assert bad.exit_code != 0 and "whole" in bad.output
