"""Training progress on stderr: a rich bar on a terminal, else plain lines through logging."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from advscale.core.logs import log_line

logger = logging.getLogger("advscale.training.loop")


def _log(msg: str) -> None:
    log_line(logger, msg)


SHORT_RUN_STEPS = 20
"""Fewer optimizer steps than this get a warning (:meth:`TrainingSession._warn_short_schedule`)."""


def warn_short_schedule(samples: int, batch_size: int, warmup: float, steps: int,
                        log: Callable[[str], None]) -> None:
    """Warn when the budget is only a few optimizer steps: the one-cycle schedule cannot rise
    and fall, and the loss average is first taken after ``log_every`` steps."""
    if steps >= SHORT_RUN_STEPS:
        return
    rise = int(warmup * steps)
    log(f"advscale train: warning: samples {samples:,} at batch_size {batch_size:,} is only "
        f"{steps} optimizer step(s) ({rise} rising): the one-cycle learning-rate schedule "
        "cannot complete a cycle; raise samples or lower batch_size for a real run")


def crossed(before: int, after: int, every: int | None) -> bool:
    """Whether ``(before, after]`` contains a multiple of ``every`` (never for 0/None)."""
    return bool(every) and after // every > before // every


class Bar:
    """Progress on stderr: a rich bar on a terminal, else a plain line at most once a minute."""

    LINE_EVERY_S = 60.0

    def __init__(self, total: int, done: int) -> None:

        self.total = total
        console = Console(stderr=True)
        self.p = None
        self.last_line = time.perf_counter()
        self.first = True
        if console.is_terminal:
            self.p = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                              console=console, transient=True)
            self.task = self.p.add_task("train", total=total, completed=done, info="")
            self.p.start()

    def advance(self, done: int, loss: float, lr: float) -> None:
        """Show ``done`` samples; ``loss`` is the running mean (nan before the first one is
        taken, shown as pending, never as ``nan``); a plain line at the first step, then at
        most once a minute."""
        shown = f"loss {loss:.4f}" if math.isfinite(loss) else "loss pending"
        info = f"{shown} lr {lr:.4g}"
        if self.p is not None:
            self.p.update(self.task, completed=done, info=info)
        elif (self.first or time.perf_counter() - self.last_line >= self.LINE_EVERY_S):
            self.first = False
            self.last_line = time.perf_counter()
            _log(f"advscale train: {done:,}/{self.total:,} samples, {info}")

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()
