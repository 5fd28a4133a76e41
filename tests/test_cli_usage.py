"""Usage mistakes give exactly one ``advscale: error:`` line and a non-zero exit, each.

The corpus: an unknown option and a bad value for every command, missing arguments, and the
misleading cases of issue 19 (a query-less ``predict``, ``train --resume`` on a missing
directory, a left-out ``--samples``, a typo'd preset, model, attack or field). Plus: outputs are
refused without ``--force``, created files follow the umask, and a closed-form preset query
loads neither torch nor scipy.optimize.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
import typer.main
from conftest import HANG_GUARD_S

from advscale.cli.main import app, main
from advscale.core.fileio import atomic_write
from advscale.laws.presets import NOTEBOOK_APPROACH2
from advscale.laws.simulate import simulate_runs


def _paths() -> list[tuple[str, ...]]:
    out = []

    def walk(cmd: object, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", {})
        if path and (not subs or getattr(cmd, "invoke_without_command", False)):
            out.append(path)
        for name, sub in subs.items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return out


def run_main(argv: list[str], monkeypatch, capsys, stdin: str = "") -> tuple[int, str, str]:
    """Run the console entry point in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["advscale", *argv])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


def assert_one_error(code: int, err: str, contains: str = "") -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("advscale: error:")]
    assert code != 0, err
    assert len(errors) == 1, err
    assert contains.lower() in errors[0].lower(), errors[0]


@pytest.mark.parametrize("path", _paths(), ids=" ".join)
def test_unknown_option_is_one_line(path, monkeypatch, capsys):
    code, _, err = run_main([*path, "--no-such-option"], monkeypatch, capsys)
    assert_one_error(code, err, "no such option")
    assert len(err.splitlines()) == 1, err


BAD_VALUES = {
    ("train",): ["--out", "r", "--samples", "many"],
    ("attack",): ["ckpt", "--batch-size", "x"],
    ("count-flops",): ["--pgd-steps", "ten"],
    ("energy",): ["--utilization", "high"],
    ("fit",): ["-a", "2", "--bootstrap", "lots"],
    ("predict",): ["--law", "debenedetti2024", "--flops", "big"],
    ("report",): ["r.jsonl", "--out"],
    ("data", "import"): ["x.tar.gz", "-o", "o.h5", "--num-classes", "ten"],
    ("data", "info"): [],
    ("data", "mix"): ["a.h5:1"],
    ("data", "stitch"): ["a.h5"],
    ("gen-synthetic",): ["--steps", "few"],
    ("gen-synthetic", "fit-gaussian"): ["train.h5", "--components", "some"],
    ("gen-synthetic", "stitch"): [],
    ("gen-synthetic", "fid"): ["g.h5"],
    ("gen-synthetic", "export"): ["--pkl", "x.pkl"],
    ("gen-synthetic", "train-denoiser"): ["d.h5", "-o", "r", "--kimg", "lots"],
    ("records", "import"): [],
    ("records", "table"): ["--output"],
    ("records", "export"): ["r.jsonl", "--number-forward-passes", "two"],
    ("validity", "serve"): ["adv.h5", "--port", "http"],
    ("validity", "score"): ["labels/"],
    ("validity", "rate"): ["adv.h5", "--rater", "ann"],
    ("model", "list"): ["a", "b"],
    ("model", "import"): ["x.pt"],
    ("model", "info"): [],
}


def test_the_bad_value_corpus_covers_every_command():
    assert set(BAD_VALUES) == set(_paths())


@pytest.mark.parametrize("path", sorted(BAD_VALUES), ids=" ".join)
def test_bad_value_or_missing_argument_is_one_line(path, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main([*path, *BAD_VALUES[path]], monkeypatch, capsys)
    assert_one_error(code, err)


MISTAKES = [
    (["predict", "--law", "debenedetti2024"], "no queries"),
    (["predict", "--law", "bartoldson2024-aproach2", "--flops", "1e20"],
     "did you mean bartoldson2024-approach2"),
    (["train", "--out", "missing-run", "--resume"], "holds no run to continue"),
    (["train", "--out", "new-run", "--data", "train.h5", "--eval-data", "test.h5"],
     "needs --samples"),
    (["attack", "ckpt", "--data", "test.h5", "--attack", "pgd-cv"], "did you mean pgd-cw"),
    (["count-flops", "--model", "wrn-28-1O"], "did you mean"),
    (["fit", "-a", "2", "records.jsonl"], "parms"),
    (["nosuch"], "no such command"),
    (["fti"], "did you mean 'fit'"),
]


@pytest.mark.parametrize("argv,contains", MISTAKES, ids=lambda v: " ".join(v)[:40]
                         if isinstance(v, list) else None)
def test_misleading_cases_name_the_problem(argv, contains, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    if "records.jsonl" in argv:
        recs = simulate_runs(dict(NOTEBOOK_APPROACH2), fids=[0.0], noise=0.0)
        (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        argv = [*argv, "--filter", "parms > 1"]
    if argv[0] == "attack":
        (tmp_path / "test.h5").write_bytes(b"")
        (tmp_path / "ckpt").mkdir()
    code, _, err = run_main(argv, monkeypatch, capsys)
    assert_one_error(code, err, contains)


def test_data_import_refuses_an_existing_output_without_force(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out.h5").write_bytes(b"precious")
    code, _, err = run_main(["data", "import", "x.tar.gz", "-o", "out.h5"], monkeypatch, capsys)
    assert_one_error(code, err, "--force")
    assert (tmp_path / "out.h5").read_bytes() == b"precious"


def test_created_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.json") as f:
            f.write("{}")
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
        os.chmod(tmp_path / "a.json", 0o640)  # a rewrite keeps the file's own mode
        with atomic_write(tmp_path / "a.json") as f:
            f.write("{}")
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_a_closed_form_preset_query_imports_no_torch_and_no_scipy_optimize():
    code = (
        "import sys, io, contextlib\n"
        "sys.argv = ['advscale', 'predict', '--law', 'bartoldson2024-approach2', '--flops',"
        " '1e25', '--accuracy']\n"
        "from advscale.cli.main import main\n"
        "buf = io.StringIO()\n"
        "try:\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        main()\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "assert 'n_opt' in buf.getvalue()\n"
        "print(sorted(m for m in ('torch', 'scipy.optimize', 'sklearn', 'matplotlib', 'h5py')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=HANG_GUARD_S, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_completion_script_is_offered(monkeypatch, capsys):
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    code, out, err = run_main(["--show-completion", "bash"], monkeypatch, capsys)
    assert code == 0 and "complete" in out, err


def test_library_notes_go_through_one_handler_that_q_and_v_set(monkeypatch, capsys):
    """Library notes are logging records; the CLI shows them as ``advscale CMD: message``
    lines on stderr, ``-q`` hides them (warnings only), and the handler is gone afterwards."""
    import logging

    code, out, err = run_main(["count-flops", "--model", "wrn-10-1"], monkeypatch, capsys)
    assert code == 0 and out.count("\n") == 1
    assert "advscale count-flops: wrn-10-1: N=77,850" in err
    code, out, err = run_main(["count-flops", "-q", "--model", "wrn-10-1"], monkeypatch, capsys)
    assert code == 0 and out.count("\n") == 1 and err == ""
    root = logging.getLogger("advscale")
    assert not root.handlers and root.propagate
