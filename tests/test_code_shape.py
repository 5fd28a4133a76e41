"""Small functions and modules: no function over 80 lines and no module over 500 lines unless
ARCHITECTURE.md lists it with a reason."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80
MAX_MODULE_LINES = 500


def listed_exceptions() -> set[str]:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Exceptions to the size rules", 1)[1]
    return set(re.findall(r"^- `([^`]+::[A-Za-z_0-9.]+)`", section, re.M))


def long_functions() -> set[str]:
    out = set()
    for p in sorted((ROOT / "advscale").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.end_lineno - node.lineno + 1 > MAX_LINES:
                    out.add(f"{p.relative_to(ROOT)}::{node.name}")
    return out


def test_no_long_functions_beyond_the_listed_ones():
    extra = long_functions() - listed_exceptions()
    assert not extra, f"functions over {MAX_LINES} lines (split them or list them): {extra}"


def test_listed_exceptions_are_real():
    """The list does not keep names of functions that were since shortened or removed."""
    stale = listed_exceptions() - long_functions()
    assert not stale, f"ARCHITECTURE.md lists functions that are no longer long: {stale}"


def listed_modules() -> set[str]:
    section = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8").split(
        "## Exceptions to the size rules", 1)[1]
    return set(re.findall(r"^- module `([^`]+\.py)`", section, re.M))


def long_modules() -> set[str]:
    return {str(p.relative_to(ROOT)) for p in sorted((ROOT / "advscale").rglob("*.py"))
            if len(p.read_text(encoding="utf-8").splitlines()) > MAX_MODULE_LINES}


def test_no_long_modules_beyond_the_listed_ones():
    extra = long_modules() - listed_modules()
    assert not extra, f"modules over {MAX_MODULE_LINES} lines (split them or list them): {extra}"
    stale = listed_modules() - long_modules()
    assert not stale, f"ARCHITECTURE.md lists modules that are no longer long: {stale}"
