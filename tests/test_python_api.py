"""docs/python-api.md's examples run, in order, in one namespace, on tiny data made here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_h5

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def doc_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_doc_has_examples_for_every_api_function():
    import advscale
    from advscale import api

    code = "\n".join(doc_examples())
    assert set(api.FAMILIES) | {"read_records"} == set(advscale.API)
    for name in advscale.API:
        assert f"advscale.{name}(" in code, f"docs/python-api.md has no example of {name}"
        assert getattr(advscale, name).__doc__, f"advscale.{name} has no docstring"


def test_doc_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_h5(tmp_path / "train.h5", 256, seed=1, source="cifar10-train")
    make_h5(tmp_path / "test.h5", 64, seed=2, source="cifar10-test")
    namespace: dict = {"__name__": "docs_python_api"}
    for i, block in enumerate(doc_examples()):
        try:
            exec(compile(block, f"docs/python-api.md[block {i + 1}]", "exec"), namespace)
        except Exception as e:  # name the block that failed
            raise AssertionError(f"docs/python-api.md block {i + 1} failed: {e!r}") from e


def test_import_advscale_imports_no_torch():
    code = ("import sys, advscale, advscale.api, advscale.cli.main; "
            "[getattr(advscale, name) for name in advscale.API]; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
