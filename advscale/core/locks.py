"""Advisory locks: a run directory, an attack's ``--results``/``--state`` file or a labels
directory is held by one process at a time.

A lock is ``fcntl.flock`` on a small lock file that names its holder (pid, host, start time).
Taking it never waits: a second process (an overlapping cron job, a second terminal) fails at
once with one line naming the holder. The kernel drops the lock when its holder dies, even by
SIGKILL, so a stale lock file never blocks anyone; the file itself is removed on release (and
re-checked on acquire, so a file removed under a waiting opener is never locked twice).
Platforms without ``fcntl`` run unlocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from advscale.errors import AdvscaleError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]


class LockedError(AdvscaleError):
    """Another process holds the lock (exit code 75, EX_TEMPFAIL: try again later)."""

    exit_code = 75


def lock_path_for(path: str | os.PathLike[str]) -> Path:
    """The lock file of a file ``F``: ``F.lock`` beside it; of a directory: ``DIR/.lock``."""
    p = Path(path)
    return p / ".lock" if p.is_dir() else p.with_name(p.name + ".lock")


def _holder_text(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    return (f"pid {info.get('pid')} on {info.get('host', '?')} since "
            f"{info.get('started', '?')}")


def _open_locked(lock: Path, what: str) -> int:
    """Open and flock ``lock`` (creating it); the fd, or LockedError naming the holder."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"{what} is in use by {_holder_text(lock)}; wait for it to "
                              f"finish (lock file {lock})") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the file was removed by its last holder before we locked it: retry


@contextlib.contextmanager
def hold_lock(path: str | os.PathLike[str], what: str | None = None,
              lock: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Hold the advisory lock of ``path`` (a file or directory) for the body.

    ``lock``: the lock file (default :func:`lock_path_for`); ``what`` names the thing in the
    error (default the path). Raises :class:`LockedError` at once when another process holds it.
    """
    lock_file = Path(lock) if lock is not None else lock_path_for(path)
    what = what or str(path)
    if fcntl is None:  # pragma: no cover
        yield lock_file
        return
    made = [d for d in (lock_file.parent, *lock_file.parent.parents) if not d.exists()]
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(lock_file, what)
    except (FileExistsError, NotADirectoryError):
        raise AdvscaleError(f"{what}: cannot lock ({lock_file.parent} is not a directory)") \
            from None
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(info) + "\n").encode())
        yield lock_file
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_file)
        os.close(fd)  # closing the last descriptor releases the flock
        for d in made:  # folders made only for the lock, left empty: removed again
            with contextlib.suppress(OSError):
                d.rmdir()


@contextlib.contextmanager
def hold_locks(paths: list[str | os.PathLike[str] | None], what: str = "") -> Iterator[None]:
    """Hold the locks of every non-None path (in sorted order, so two holders never deadlock)."""
    unique = sorted({str(Path(p).absolute()): p for p in paths if p is not None}.items())
    with contextlib.ExitStack() as stack:
        for _, p in unique:
            stack.enter_context(hold_lock(p, f"{what} {p}".strip()))
        yield
