"""Issue 28/29: one output discipline for every command that writes, and streams and signals.

* no command overwrites its input (same path, symlink, hard link), every writing command has
  ``--force`` and refuses an existing output without it (driven by the CLI's command tree);
* ``report -o DIR`` owns its folder (refuses a foreign one, replaces its own atomically, keeps no
  stale figure, leaves nothing on failure, warns when DIR looks like a file);
* ``fit`` refuses non-finite values and fits, numeric warnings are one line;
* a closed or broken stdout and a Ctrl-C are one line and the documented exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_GUARD_S, ROOT, make_adv_h5, make_h5
from test_corpus import assert_clean_error, run_main, snapshot

from advscale.core.outputs import OWNER_MARK, check_output, output_dir
from advscale.errors import AdvscaleError
from advscale.laws.presets import PRESETS
from advscale.laws.simulate import simulate_runs
from advscale.records import dumps

ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def _records(path: Path, loss: float | None = None) -> Path:
    recs = simulate_runs(PRESETS["bartoldson2024-approach2-rounded"]["params"],
                         n_values=[6e6, 1.2e7, 2.5e7, 5e7], d_values=[5e6, 1e7, 2e7],
                         fids=[1.0], noise=0.002, seed=2, curve_points=2)
    for r in recs:
        if loss is not None:
            r["adv_loss"] = loss
    path.write_text("".join(dumps(r) + "\n" for r in recs))
    return path


# -- the discipline itself ---------------------------------------------------------------------


def test_check_output_refuses_inputs_by_any_name_and_existing_files_without_force(tmp_path):
    src = tmp_path / "in.h5"
    src.write_bytes(b"data")
    os.link(src, tmp_path / "hard.h5")
    os.symlink(src, tmp_path / "soft.h5")
    for out in (src, tmp_path / "hard.h5", tmp_path / "soft.h5", tmp_path / "." / "in.h5"):
        with pytest.raises(AdvscaleError, match="same file as the input"):
            check_output(out, [src], force=True)
    other = tmp_path / "old.json"
    other.write_text("{}")
    with pytest.raises(AdvscaleError, match="already exists; overwrite it with force"):
        check_output(other, [src])
    check_output(other, [src], force=True)
    check_output("-", [src])
    check_output(tmp_path / "new.json", [src, "-", None])
    assert src.read_bytes() == b"data"


# -- the four commands that overwrote their input, and records import ---------------------------


def test_commands_never_overwrite_their_input(tmp_path):
    a = make_h5(tmp_path / "a.h5", 8)
    good = _records(tmp_path / "good.jsonl")
    adv = make_adv_h5(tmp_path / "adv.h5")
    labels = tmp_path / "labels"
    labels.mkdir()
    os.symlink(a, tmp_path / "link.h5")
    cases = [
        ["data", "mix", f"{a}:1", "-o", str(a), "--force"],
        ["data", "mix", f"{a}:1", "-o", str(tmp_path / "link.h5"), "--force"],
        ["fit", str(good), "-a", "1", "-B", "0", "-o", str(good)],
        ["fit", str(good), "-a", "1", "-B", "0", "-o", str(good), "--force"],
        ["records", "table", str(good), "-o", str(good)],
        ["records", "table", str(good), "-o", str(good), "--force"],
        ["validity", "score", str(labels), "--adv", str(adv), "-o", str(adv)],
        ["validity", "score", str(labels), "--adv", str(adv), "-o", str(adv), "--force"],
    ]
    for argv in cases:
        msg = assert_clean_error(argv, tmp_path)
        assert "same file as the input" in msg, (argv, msg)


def test_records_import_refuses_an_existing_output_without_force(tmp_path):
    from test_tables import debenedetti_rows, write_csv

    table = write_csv(tmp_path / "results.csv", debenedetti_rows())
    out = tmp_path / "recs.jsonl"
    out.write_text("keep me\n")
    msg = assert_clean_error(["records", "import", str(table), "-o", str(out)], tmp_path)
    assert "already exists; overwrite it with --force" in msg and out.read_text() == "keep me\n"
    code, _, err = run_main(["records", "import", str(table), "-o", str(out), "--force"])
    assert code == 0, err
    assert out.read_text() != "keep me\n"


# -- every command that writes a file has --force (driven by the command tree) -----------------

OUTPUT_PARAMS = {"out", "output", "save_adv", "run_dir", "save_ref_stats"}
NO_FORCE = {
    "train": "a run directory is never replaced: --resume continues it",
    "gen-synthetic train-denoiser": "a run directory, resumed by default",
    "energy": "-o appends one record to a JSONL log",
    "validity serve": "the labels directory is appended to (one file per rater)",
    "validity rate": "the labels directory is appended to (one file per rater)",
}
"""Commands whose output is appended to or continued, never replaced, and why."""

FORCE_CASES = {
    "data import": ["data", "import", "x.npz", "-o", "{out}"],
    "data mix": ["data", "mix", "x.h5:1", "-o", "{out}"],
    "data stitch": ["data", "stitch", "x.h5", "-o", "{out}"],
    "gen-synthetic": ["gen-synthetic", "--data", "x.h5", "-n", "4", "-o", "{out}"],
    "gen-synthetic fit-gaussian": ["gen-synthetic", "fit-gaussian", "x.h5", "-o", "{out}"],
    "gen-synthetic stitch": ["gen-synthetic", "stitch", "x.h5", "-o", "{out}"],
    "gen-synthetic export": ["gen-synthetic", "export", "--pkl", "x.pkl", "--edm-code", "x",
                             "-o", "{out}"],
    "gen-synthetic fid": ["gen-synthetic", "fid", "x.h5", "--ref", "y.h5", "--save-ref-stats",
                          "{out}"],
    "fit": ["fit", "x.jsonl", "-a", "1", "-o", "{out}"],
    "records import": ["records", "import", "x.csv", "-o", "{out}"],
    "records table": ["records", "table", "x.jsonl", "-o", "{out}"],
    "records export": ["records", "export", "x.jsonl", "-o", "{out}"],
    "validity score": ["validity", "score", "x", "--adv", "x.h5", "-o", "{out}"],
    "model import": ["model", "import", "x.pt", "-o", "{out}"],
    "report": ["report", "x.jsonl", "-o", "{out}"],
    "attack": None,  # --save-adv: test_attack_refuses_the_adversarial_file_of_another_run
}


def _commands():
    import typer.main

    from advscale.cli.main import app

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            if cmd.callback is not None and path and cmd.invoke_without_command:
                yield path, cmd
            for name, sub in subs.items():
                yield from walk(sub, [*path, name])
        else:
            yield path, cmd

    root = typer.main.get_command(app)
    return {" ".join(p): c for p, c in walk(root, [])}


def test_every_writing_command_has_force_or_a_reason():
    writing = {}
    for name, cmd in _commands().items():
        params = {p.name for p in cmd.params}
        if params & OUTPUT_PARAMS:
            writing[name] = "force" in params
    assert set(writing) == set(FORCE_CASES) | set(NO_FORCE), sorted(writing)
    missing = [n for n, has in writing.items() if not has and n not in NO_FORCE]
    assert not missing, missing


@pytest.mark.parametrize("name", [n for n, a in FORCE_CASES.items() if a is not None])
def test_every_writing_command_refuses_an_existing_output(tmp_path, name):
    out = tmp_path / ("out-dir" if name == "report" else "existing.out")
    if name == "report":
        out.mkdir()
        (out / OWNER_MARK).write_text("")
    else:
        out.write_text("precious\n")
    argv = [a.replace("{out}", str(out)) for a in FORCE_CASES[name]]
    msg = assert_clean_error(argv, tmp_path)
    assert "already exists;" in msg and "it with --force" in msg, msg


# -- report -o DIR ------------------------------------------------------------------------------


def test_report_owns_its_folder(tmp_path, monkeypatch):
    from advscale.report import command

    recs = _records(tmp_path / "r.jsonl")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    for force in ([], ["--force"]):  # a folder it did not make is never replaced
        msg = assert_clean_error(["report", str(recs), "-o", str(foreign), *force], tmp_path)
        assert "did not make" in msg

    out = tmp_path / "rep"
    code, _, err = run_main(["report", str(recs), "-o", str(out)])
    assert code == 0, err
    (out / "stale.png").write_bytes(b"old figure")
    before = snapshot(tmp_path)
    assert "already exists" in assert_clean_error(["report", str(recs), "-o", str(out)],
                                                  tmp_path)

    def boom(*a, **k):
        raise AdvscaleError("disk trouble")

    monkeypatch.setattr(command, "build_report", boom)  # a failure mid-way leaves all as it was
    assert_clean_error(["report", str(recs), "-o", str(out), "--force"], tmp_path)
    assert snapshot(tmp_path) == before
    monkeypatch.undo()
    code, _, err = run_main(["report", str(recs), "-o", str(out), "--force"])
    assert code == 0, err
    assert not (out / "stale.png").exists() and (out / "report.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_report_warns_when_out_looks_like_a_file(tmp_path, caplog):
    with output_dir(tmp_path / "deb-report.html") as tmp:
        (tmp / "report.html").write_text("<html>")
    assert "looks like a file name" in caplog.text
    assert (tmp_path / "deb-report.html" / "report.html").is_file()


def test_output_dir_refuses_a_folder_holding_an_input(tmp_path):
    out = tmp_path / "rep"
    with output_dir(out) as tmp:
        (tmp / "x").write_text("1")
    (out / "records.jsonl").write_text("{}")
    with pytest.raises(AdvscaleError, match="holds the input"), \
            output_dir(out, force=True, inputs=[out / "records.jsonl"]):
        pass
    assert (out / "records.jsonl").is_file()


# -- fit: numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("approach", ["1", "2"])
def test_fit_refuses_values_too_large_to_fit(tmp_path, approach):
    huge = _records(tmp_path / "huge.jsonl", loss=1e308)
    msg = assert_clean_error(["fit", str(huge), "-a", approach, "-B", "0",
                              "--no-paper-exclusion"], tmp_path)
    assert "not finite or too large" in msg


def test_a_non_finite_fit_is_refused():
    from advscale.laws.finite import check_finite_fit

    check_finite_fit({"r2": 0.9, "rmse": 0.1, "params": {"A": 1.0}, "stats": {"n": 3}})
    with pytest.raises(AdvscaleError, match="r2 nan, rmse inf"):
        check_finite_fit({"r2": float("nan"), "rmse": float("inf"), "params": {"A": 1.0}})


def test_numeric_warnings_are_one_line(capsys):
    from advscale.cli.common import handle_errors

    @handle_errors
    def noisy() -> float:
        x = np.array([1e308, 1e308])
        return float((x * 10)[0] + (x * 10)[1])

    assert noisy() == float("inf")
    err = capsys.readouterr().err
    assert err.count("advscale: warning: overflow") == 1 and "np.array" not in err


# -- streams and signals ------------------------------------------------------------------------


def _run_closed_stdout(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "advscale", *argv], cwd=cwd, env=ENV,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: os.close(1), timeout=HANG_GUARD_S)


def test_closed_stdout_is_one_line_and_exit_141(tmp_path):
    good = _records(tmp_path / "good.jsonl")
    h5 = make_h5(tmp_path / "a.h5", 8)
    cases = [
        ["model", "list"],
        ["data", "info", str(h5)],
        ["fit", str(good), "-a", "1", "-B", "0"],
        ["records", "table", str(good)],
        ["predict", "--law", "bartoldson2024-approach2", "--n", "1e7", "--d", "1e7"],
    ]
    for argv in cases:
        before = snapshot(tmp_path)
        p = _run_closed_stdout(argv, tmp_path)
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("advscale: error:")]
        assert p.returncode == 141 and len(errors) == 1, (argv, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr and "stdout is closed" in errors[0]
        assert snapshot(tmp_path) == before


def test_every_command_with_a_closed_stdout_is_one_line_and_exit_141(tmp_path):
    """Each command of the tree (its help, what it prints before reading any input) and the
    root's --help and --version, with stdout closed."""
    for argv in [["--help"], ["--version"], *([*n.split(), "--help"] for n in _commands())]:
        p = _run_closed_stdout(argv, tmp_path)
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("advscale: error:")]
        assert p.returncode == 141 and len(errors) == 1, (argv, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr


def test_a_reader_that_goes_away_is_one_line_and_exit_141(tmp_path):
    for argv in (["model", "list"], ["--version"], ["fit", "--help"]):
        p = subprocess.Popen([sys.executable, "-m", "advscale", *argv], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdout.close()  # `| head -0`
        err = p.stderr.read()
        p.wait(timeout=HANG_GUARD_S)
        assert p.returncode == 141, (argv, err)
        assert "Traceback" not in err and err.count("advscale: error:") == 1


def test_every_command_has_the_error_boundary():
    from advscale.cli.common import handle_errors

    marker = handle_errors(lambda: None).__code__
    for name, cmd in _commands().items():
        fn, codes = cmd.callback, []
        while fn is not None:
            codes.append(getattr(fn, "__code__", None))
            fn = getattr(fn, "__wrapped__", None)
        assert marker in codes, name


SIGINT_CASES = [
    ["records", "table", "{good}", "-o", "{tmp}/t.csv"],
    ["validity", "score", "{labels}", "--adv", "{adv}", "-o", "{tmp}/s.jsonl"],
    ["data", "import", "{npz}", "-o", "{tmp}/i.h5"],
]


@pytest.mark.parametrize("case", SIGINT_CASES, ids=[" ".join(c[:2]) for c in SIGINT_CASES])
def test_ctrl_c_at_any_moment_is_one_line_and_130(tmp_path, case):
    good = _records(tmp_path / "good.jsonl")
    adv = make_adv_h5(tmp_path / "adv.h5")
    from advscale.validity.advset import load_adv_set
    from advscale.validity.store import LabelStore

    with LabelStore(tmp_path / "labels", load_adv_set(adv)) as st:
        st.add("alice", 0, "adv", 0, "high")
    npz = tmp_path / "x.npz"
    np.savez(npz, image=np.zeros((64, 32, 32, 3), np.uint8), label=np.arange(64) % 10)
    fill = {"{good}": good, "{adv}": adv, "{labels}": tmp_path / "labels", "{npz}": npz,
            "{tmp}": tmp_path}
    argv = [a for a in case]
    for k, v in fill.items():
        argv = [a.replace(k, str(v)) for a in argv]
    before = snapshot(tmp_path)
    for delay in (0.3, 0.6, 1.0):  # while importing, parsing, or working
        p = subprocess.Popen([sys.executable, "-m", "advscale", *argv], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=HANG_GUARD_S)
        assert "Traceback" not in err, (delay, err)
        if p.returncode == -signal.SIGINT and not err:
            continue  # the signal came before the interpreter was up: the OS's own exit
        if p.returncode != 0:  # else it finished first: then its output is whole
            assert p.returncode == 130, (delay, p.returncode, err)
            assert err.count("advscale: error:") == 1, err
        after = snapshot(tmp_path)
        assert {k: v for k, v in after.items() if k in before} == before, "an input changed"
        new = set(after) - set(before)  # at most the whole output (interrupted after its rename)
        assert new <= {Path(argv[-1]).name}, (delay, new)
        for f in tmp_path.glob("[tsi].*"):
            f.unlink()


def test_a_killed_report_build_is_cleaned_by_the_next_run(tmp_path):
    stale = tmp_path / ".rep.999999.abcd.tmp"  # pid 999999: gone
    stale.mkdir()
    (stale / "half.png").write_bytes(b"x")
    live = tmp_path / f".rep.{os.getpid()}.live.tmp"  # a concurrent build: left alone
    live.mkdir()
    with output_dir(tmp_path / "rep") as tmp:
        (tmp / "report.html").write_text("<html>")
    assert not stale.exists() and live.is_dir() and (tmp_path / "rep" / "report.html").is_file()


def test_attack_refuses_the_adversarial_file_of_another_run(tmp_path):
    from test_corpus import untrained_checkpoint

    data = make_h5(tmp_path / "d.h5", 8)
    ckpt = untrained_checkpoint(tmp_path / "c.safetensors")
    adv = tmp_path / "adv.h5"
    base = ["attack", str(ckpt), "--data", str(data), "--attack", "pgd-cw", "--steps", "1",
            "--n", "4", "--device", "cpu", "--save-adv", str(adv)]
    code, _, err = run_main([*base, "--eps", "1/255"])
    assert code == 0, err
    code, _, err = run_main([*base, "--eps", "1/255"])  # the same evaluation again: fine
    assert code == 0, err
    msg = assert_clean_error([*base, "--eps", "2/255"], tmp_path)
    assert "holds other images" in msg and "with --force" in msg
    code, _, err = run_main([*base, "--eps", "2/255", "--force"])
    assert code == 0, err
