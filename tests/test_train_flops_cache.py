"""``advscale train --resume`` reuses the FLOPs-per-sample count kept in the training state."""

from __future__ import annotations

import pytest
from conftest import make_h5
from typer.testing import CliRunner

from advscale.cli.main import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_resume_does_not_count_flops_again(tmp_path, monkeypatch):
    from advscale.training import flops
    from advscale.training.state import read_state

    train, test = make_h5(tmp_path / "train.h5", 64, seed=1), make_h5(tmp_path / "t.h5", 16, 2)
    out = tmp_path / "run"
    real, calls = flops.count_training_flops, []

    def counting(*a, **kw):
        calls.append(a)
        return real(*a, **kw)

    monkeypatch.setattr(flops, "count_training_flops", counting)
    r = CliRunner().invoke(app, [
        "train", "--out", str(out), "--data", str(train), "--eval-data", str(test),
        "--samples", "32", "--model", "wrn-10-1", "--pgd-steps", "1", "--eval-n", "16",
        "--eval-steps", "1", "--batch-size", "32", "--eval-every", "0", "--no-progress"])
    assert r.exit_code == 0, r.stderr
    assert len(calls) == 1
    meta = read_state(out)[1]
    assert meta["flops"]["per_sample"] > 0
    assert meta["flops"]["key"][:3] == ["wrn-10-1", "trades", 1]  # model, loss, pgd_steps
    again = CliRunner().invoke(app, ["train", "--out", str(out), "--resume"])
    assert again.exit_code == 0, again.stderr
    assert len(calls) == 1  # the resume read the count from the state
