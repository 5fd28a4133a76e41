"""docs/study-cifar100-l2.md runs as written at toy sizes: CIFAR-100 (a tarball in the official
layout, made here) → a 3 × 3 PreActResNet-18 L2 grid → PGD-CW under L2 → Approach 2 → predict
→ report (issue 24)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_GUARD_S, ROOT
from test_datasets import make_cifar100_tar
from test_docs_commands import logical_lines

DOC = ROOT / "docs" / "study-cifar100-l2.md"
TINY = "--batch-size 32 --eval-n 32 --eval-steps 1 --pgd-steps 1 --no-progress"
SIZES = [
    ("for w in 16 32 64; do", "for w in 2 3 4; do"),
    ("for d in 500000 1000000 2000000; do", "for d in 32 64 96; do"),
    ("--samples $d", f"--samples $d {TINY}"),
    ("--n 10000", "--n 16 --steps 2"),
]
"""(text, replacement): the page's sizes scaled down; the commands stay as written."""


def study_script() -> str:
    """The page's one shell block with :data:`SIZES` applied."""
    text = DOC.read_text()
    body = text.split("```sh\n", 1)[1].split("```", 1)[0]
    script = "\n".join(logical_lines(body)) + "\n"
    for old, new in SIZES:
        assert old in script, f"docs/study-cifar100-l2.md no longer has {old!r}"
        script = script.replace(old, new)
    return script


@pytest.mark.slow
def test_cifar100_l2_preactresnet_study_runs_as_written(tmp_path):
    make_cifar100_tar(tmp_path / "cifar-100-python.tar.gz", n_train=200, n_test=40)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", study_script()], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert res.returncode == 0, res.stderr[-4000:]
    evals = [json.loads(ln) for p in sorted((tmp_path / "c100").glob("*/records.jsonl"))
             for ln in p.read_text().splitlines()]
    assert {e["norm"] for e in evals} == {"l2"} and {e["eps"] for e in evals} == {0.5}
    assert len({e["run_id"] for e in evals}) == 9
    assert {e["model"] for e in evals} == {"preactresnet18"}
    attacks = [json.loads(ln) for ln in (tmp_path / "c100-attacks.jsonl").read_text().split("\n")
               if ln.strip()]
    assert len(attacks) == 9 and {a["norm"] for a in attacks} == {"l2"}
    law = json.loads((tmp_path / "c100-law.json").read_text().splitlines()[0])
    assert law["kind"] == "fit" and law["params"]
    kinds = [json.loads(ln)["kind"] for ln in res.stdout.splitlines() if ln.strip()]
    assert kinds[-2:] == ["prediction", "report"]
    assert (tmp_path / "c100-report" / "report.html").is_file()
