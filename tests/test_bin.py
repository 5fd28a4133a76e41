"""Every executable in bin/ answers --help with exit 0 and says what it is."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import HANG_GUARD_S

BIN = Path(__file__).resolve().parents[1] / "bin"
SCRIPTS = sorted(p for p in BIN.iterdir() if p.is_file())


def test_bin_has_scripts():
    assert {"advscale", "advscale-reevaluate"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help(script):
    assert os.access(script, os.X_OK), f"{script} is not executable"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                         timeout=HANG_GUARD_S)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.strip().splitlines()) >= 3
