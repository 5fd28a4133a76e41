"""Small functions: none over 80 lines unless ARCHITECTURE.md lists it with a reason."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80


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
