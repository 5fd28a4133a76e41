"""Helpers shared by the subcommands: error handling, stderr console, option parsing.

Nothing here imports torch; subcommands import heavy modules inside their functions.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

import typer

from advscale.errors import AdvscaleError

F = TypeVar("F", bound=Callable[..., Any])


def err(message: str) -> None:
    """Write one human line to stderr (stdout is for data only)."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``advscale: error: MESSAGE`` on stderr and return a typer.Exit to raise."""
    first = " ".join(str(message).split("\n")[0].split())
    err(f"advscale: error: {first}")
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn AdvscaleError (and Ctrl-C) in a command into one stderr line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AdvscaleError as e:
            raise fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except BrokenPipeError:  # e.g. `advscale ... | head`
            raise typer.Exit(0) from None

    return wrapper  # type: ignore[return-value]


def parse_fraction(text: str, name: str = "value") -> float:
    """Parse ``8/255``, ``0.031`` or ``2e-3`` into a float; AdvscaleError when malformed."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise AdvscaleError(f"{name} {text!r} is not a number or fraction like 8/255") from None
    return value


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parse ``--shard i/k`` (0-based i < k) into (i, k); None means (0, 1)."""
    if text is None:
        return 0, 1
    try:
        i_s, k_s = text.split("/")
        i, k = int(i_s), int(k_s)
    except ValueError:
        raise AdvscaleError(f"--shard {text!r} must look like i/k, e.g. 0/4") from None
    if not (k >= 1 and 0 <= i < k):
        raise AdvscaleError(f"--shard {text!r} needs 0 <= i < k")
    return i, k
