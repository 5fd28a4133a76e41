"""Progress lines of ``advscale attack``: per chunk, and per stage of a staged attack
(AutoAttack), with images still robust, elapsed time and a rough ETA.

Lines go to ``logging.getLogger(__name__)`` at INFO (the CLI shows them on stderr, one line per
step; ``-q`` silences them). The ETA extrapolates the elapsed time over the fraction of work
done, counting a chunk's stages as equal parts of it (AutoAttack's stages differ in cost, so the
ETA is rough until a chunk has finished). Units: seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


def _fmt_s(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s`` or ``2 h 03 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class Progress:
    """Progress of one checkpoint's evaluation over ``chunks`` chunks to attack now."""

    def __init__(self, name: str, attack: str, chunks: int, total_chunks: int) -> None:
        self.name, self.attack = name, attack
        self.chunks, self.total_chunks = max(1, chunks), total_chunks
        self.done = 0
        self.t0 = time.perf_counter()

    def _times(self, fraction: float) -> str:
        elapsed = time.perf_counter() - self.t0
        if fraction <= 0:
            return f"elapsed {_fmt_s(elapsed)}"
        eta = elapsed * (1 - fraction) / fraction
        return f"elapsed {_fmt_s(elapsed)}, ETA ~{_fmt_s(max(eta, 0.0))}"

    def stage_reporter(self, chunk: int) -> Callable[[str, int, int, int, int], None]:
        """The ``progress`` callback of chunk ``chunk``'s attack:
        ``(stage, stage_number, stages, still_robust, images)``."""

        def report(stage: str, k: int, stages: int, still: int, images: int) -> None:
            fraction = (self.done + k / max(stages, 1)) / self.chunks
            logger.info("advscale attack: %s: %s chunk %d/%d stage %d/%d %s: %d/%d still robust, "
                        "%s", self.name, self.attack, chunk + 1, self.total_chunks, k, stages,
                        stage, still, images, self._times(fraction))

        return report

    def chunk_done(self, chunk: int, start: int, stop: int, clean: int, robust: int,
                   wall_s: float) -> None:
        """One line per finished chunk (every attack)."""
        self.done += 1
        logger.info("advscale attack: %s: %s chunk %d/%d (images %d..%d): clean %d/%d, robust "
                    "%d/%d, %.1f s; %s", self.name, self.attack, chunk + 1, self.total_chunks,
                    start, stop - 1, clean, stop - start, robust, stop - start, wall_s,
                    self._times(self.done / self.chunks))
