"""FLOP counting on the meta device: the papers' facts, the linear-in-steps count, the CLI."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import typer
from typer.testing import CliRunner

from advscale.attacks.pgd import pgd_linf
from advscale.cli.count_flops import count_flops
from advscale.errors import AdvscaleError
from advscale.records import loads_all, make_record
from advscale.training import flops as fl
from advscale.training.flops import (
    PAPER_CONSTANT,
    annotate_lines,
    constant_relative_error,
    count_training_flops,
    flops_payload,
    parse_samples,
    read_model_names,
    resolve_method,
)

runner = CliRunner()
app = typer.Typer()
app.command("count-flops")(count_flops)
app.command("other")(lambda: None)  # keep count-flops a named subcommand


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# ------------------------------------------------------------------------------------------
# The facts of the papers (Bartoldson et al. ICML 2024, appendix B and section 3.2.3)


def test_wrn_28_10_parameters_and_forward_flops():
    c = count_training_flops("wrn-28-10", "standard", 0)
    assert c.params == 36_479_194
    assert rel(c.forward_flops_per_image, 10.49e9) < 0.005
    assert rel(c.forward_multiple, 3.0) < 0.001  # forward + weight/input backward = 3 passes


def test_trades_10_costs_27_forward_passes():
    c = count_training_flops("wrn-28-10", "trades", 10)
    assert c.pgd_steps == 10 and c.loss == "trades"
    assert rel(c.forward_multiple, 27.0) < 0.001
    assert c.train_flops_per_sample == pytest.approx(27 * c.forward_flops_per_image, rel=1e-3)


def test_paper_constant_error_wrn_28_10_and_70_16():
    """7822·N·D against meta-device counts: within the paper's 1% for both models."""
    c28 = count_training_flops("wrn-28-10", "trades", 10)
    c70 = count_training_flops("wrn-70-16", "trades", 10)
    assert c70.params == 266_796_506
    e28, e70 = constant_relative_error(c28), constant_relative_error(c70, PAPER_CONSTANT)
    # counted constants: WRN-28-10 C = 7761.63, WRN-70-16 C = 7845.93 FLOPs per param-sample
    assert c28.flops_per_param_sample == pytest.approx(7761.63, abs=0.05)
    assert c70.flops_per_param_sample == pytest.approx(7845.93, abs=0.05)
    assert e28 == pytest.approx(+0.00778, abs=2e-5)  # 7822 over-counts WRN-28-10 by 0.78%
    assert e70 == pytest.approx(-0.00305, abs=2e-5)  # and under-counts WRN-70-16 by 0.31%
    assert abs(e28) < 0.01 and abs(e70) < 0.01


# ------------------------------------------------------------------------------------------
# Linear-in-steps counting equals the direct count


@pytest.mark.parametrize("loss", ["trades", "pgd-at"])
@pytest.mark.parametrize("steps", [3, 10])
def test_linear_count_equals_direct_count(loss, steps):
    direct = count_training_flops("wrn-10-1", loss, steps, method="direct")
    linear = count_training_flops("wrn-10-1", loss, steps, method="linear")
    assert linear == direct  # exact, integer FLOPs
    nominal = 2 * steps + (7 if loss == "trades" else 3)  # appendix B: 2k+7, PGD-AT 2k+3
    assert rel(direct.forward_multiple, nominal) < 0.01


def test_linear_count_fallback_two_steps_equals_direct(monkeypatch):
    """When the attack call cannot be watched, the 1- and 2-step extrapolation is used."""
    monkeypatch.setattr(fl, "_watch_attacks", lambda counter, enabled=True: _no_watch())
    fl._count_cached.cache_clear()
    try:
        fallback = count_training_flops("wrn-10-1", "trades", 7, method="linear")
    finally:
        fl._count_cached.cache_clear()
    assert fallback == count_training_flops("wrn-10-1", "trades", 7, method="direct")


@contextlib.contextmanager
def _no_watch():
    """An attack nobody watches: the real one, no calls recorded."""
    yield pgd_linf, []


def test_method_resolution_and_errors():
    assert resolve_method("trades", 10) == "linear"
    assert resolve_method("trades", 2) == "direct"
    assert resolve_method("standard", 10, "linear") == "direct"
    assert resolve_method("trades", 10, "direct") == "direct"
    with pytest.raises(AdvscaleError):
        resolve_method("trades", 10, "guess")
    with pytest.raises(ValueError, match="unknown loss"):
        count_training_flops("wrn-10-1", "mart", 10)
    with pytest.raises(AdvscaleError, match="unknown model"):
        count_training_flops("no-such-net-xyz", "standard", 0)


def test_flops_payload_fields_and_units():
    c = count_training_flops("wrn-10-1", "trades", 10)
    p = flops_payload(c, samples=1_000_000, constant=7822)
    for key in ("model", "params", "loss", "pgd_steps", "forward_flops_per_image",
                "train_flops_per_sample", "forward_multiple", "flops_per_param_sample",
                "samples", "train_flops", "convention", "counting", "constant_rel_error"):
        assert key in p
    assert p["train_flops"] == pytest.approx(1e6 * c.train_flops_per_sample)
    assert p["flops_per_param_sample"] == pytest.approx(c.train_flops_per_sample / c.params)
    assert p["constant_rel_error"] == pytest.approx((7822 - p["flops_per_param_sample"])
                                                    / p["flops_per_param_sample"])
    assert "linear" in p["counting"]
    q = flops_payload(c)
    assert q["samples"] is None and q["train_flops"] is None and "constant" not in q


def test_parse_samples_and_model_files():
    assert parse_samples("5e7") == 50_000_000
    assert parse_samples("50_000") == 50_000
    assert parse_samples(None) is None
    for bad in ("lots", "-1", "1.5", "inf"):
        with pytest.raises(AdvscaleError):
            parse_samples(bad)
    names = list(read_model_names(["wrn-28-10  # the classic", "", "wrn-70-16, wrn-10-1"]))
    assert names == ["wrn-28-10", "wrn-70-16", "wrn-10-1"]


# ------------------------------------------------------------------------------------------
# --annotate


def _train_eval(**fields):
    base = {"run_id": "r1", "model": "wrn-10-1", "activation": "silu", "loss": "trades",
            "pgd_steps": 10, "samples_seen": 4096, "robust_acc": 0.5, "final": False}
    base.update(fields)
    return make_record("train.eval", base, command="advscale train", check=False)  # partial


def test_annotate_fills_missing_fields_and_passes_everything_else_through():
    c = count_training_flops("wrn-10-1", "trades", 10)
    unknown = '{"kind": "mystery",  "schema": 1, "x": [1, 2,3]}\n'  # odd spacing kept
    given = _train_eval(params=7, train_flops_per_sample=10.0, train_flops=None)
    original = _train_eval()
    lines = [
        unknown,
        json.dumps(original) + "\n",
        "\n",
        json.dumps(given) + "\n",
        json.dumps(_train_eval(loss="standard", pgd_steps=None, samples_seen=None)),
        json.dumps(make_record("fit", {"model": "x", "loss": 0.5}, check=False)) + "\n",  # not one
    ]
    out = io.StringIO()
    seen, changed = annotate_lines(lines, out)
    assert (seen, changed) == (5, 3)
    text = out.getvalue().splitlines(keepends=True)
    assert text[0] == unknown and text[2] == "\n" and text[5] == lines[5]
    recs = loads_all(out.getvalue())
    filled = recs[1]
    assert filled["params"] == c.params
    assert filled["train_flops_per_sample"] == c.train_flops_per_sample
    assert filled["train_flops"] == pytest.approx(4096 * c.train_flops_per_sample)
    for key, value in original.items():  # every original field, order and provenance kept
        assert filled[key] == value
    assert list(filled)[: len(original)] == list(original)
    # fields already present are kept; only the missing train_flops is derived from them
    assert recs[2]["params"] == 7 and recs[2]["train_flops_per_sample"] == 10.0
    assert recs[2]["train_flops"] == pytest.approx(40960.0)
    std = recs[3]
    assert std["train_flops_per_sample"] == count_training_flops("wrn-10-1", "standard", 0)\
        .train_flops_per_sample
    assert std["samples_seen"] is None and "train_flops" not in std


def test_annotate_errors_name_the_line():
    with pytest.raises(AdvscaleError, match="<stdin>:2"):
        annotate_lines(['{"kind": "a"}\n', "{not json\n"], io.StringIO())
    bad_model = json.dumps(_train_eval(model="no-such-net-xyz"))
    with pytest.raises(AdvscaleError, match="<stdin>:1.*no-such-net-xyz"):
        annotate_lines([bad_model], io.StringIO())
    no_steps = json.dumps(_train_eval(pgd_steps=None))
    with pytest.raises(AdvscaleError, match="pgd_steps"):
        annotate_lines([no_steps], io.StringIO())


# ------------------------------------------------------------------------------------------
# CLI


def test_cli_several_models_one_record_each(tmp_path):
    models = tmp_path / "models.txt"
    models.write_text("# small ones\nwrn-16-1\n")
    r = runner.invoke(app, ["count-flops", "--model", "wrn-10-1", "--models-file", str(models),
                            "--samples", "1e6", "--check-constant", "7822"])
    assert r.exit_code == 0, r.output
    recs = loads_all(r.stdout)
    assert [x["model"] for x in recs] == ["wrn-10-1", "wrn-16-1"]
    for rec in recs:
        assert rec["kind"] == "flops"
        assert rec["samples"] == 1_000_000
        assert rec["train_flops"] == pytest.approx(1e6 * rec["train_flops_per_sample"])
        assert rec["constant"] == 7822.0 and isinstance(rec["constant_rel_error"], float)
        assert rec["provenance"]["config"]["loss"] == "trades"
    assert "wrn-10-1: N=" in r.stderr  # the human summary goes to stderr only


def test_cli_annotate_reads_stdin():
    line = json.dumps(_train_eval()) + "\n"
    r = runner.invoke(app, ["count-flops", "--annotate"], input='{"kind":"x"}\n' + line)
    assert r.exit_code == 0, r.output
    out = r.stdout.splitlines(keepends=True)
    assert out[0] == '{"kind":"x"}\n'
    assert loads_all(out[1])[0]["train_flops"] > 0
    assert "annotated 1 of 2" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give --model"),
        (["--model", "no-such-net-xyz", "--loss", "standard"], "unknown --model"),
        (["--model", "wrn-10-1", "--loss", "mart"], "unknown loss"),
        (["--model", "wrn-10-1", "--samples", "many"], "--samples"),
        (["--model", "wrn-10-1", "--method", "guess"], "--method"),
        (["--models-file", "/no/such/file.txt"], "no such models file"),
        (["--annotate", "--model", "wrn-10-1"], "--annotate"),
    ],
)
def test_cli_bad_input_is_one_line_error(args, message):
    r = runner.invoke(app, ["count-flops", *args])
    assert r.exit_code != 0
    assert r.stdout == ""
    assert "advscale: error:" in r.stderr and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
