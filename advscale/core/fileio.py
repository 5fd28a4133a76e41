"""Atomic file writes: a temp file beside the target, renamed into place on success.

A crash, a Ctrl-C or an exception leaves either the old file or no file, never half a file.
Temp files are named ``.<target name>.<pid>.<random><suffix>``; a SIGKILL can leave one behind,
and the next write of the same target removes those whose process is gone (stale ones), so
nothing accumulates. :func:`refuse_overwrite_of_inputs` guards commands whose output could be
one of their inputs (compared by device and inode, so links and other spellings are caught).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from advscale.errors import AdvscaleError

_TEMP_RE = re.compile(r"\.(\d+)\.[^.]+$")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


pid_alive = _pid_alive
"""Whether process ``pid`` is alive (a stale temp file's or build folder's writer is not)."""


def remove_stale_temps(target: str | os.PathLike[str], suffix: str = ".tmp") -> list[Path]:
    """Delete temp files of earlier writes of ``target`` whose writing process is gone.

    Only names this module makes (``.<name>.<pid>.<random><suffix>``) are considered, and a temp
    file of a live process (a concurrent writer) is left alone. Returns the paths removed.
    """
    target = Path(target)
    prefix = f".{target.name}."
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        m = _TEMP_RE.fullmatch("." + name[len(prefix):len(name) - len(suffix)])
        if m is None or _pid_alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def refuse_overwrite_of_inputs(
    outputs: Iterable[str | os.PathLike[str] | None],
    inputs: Iterable[str | os.PathLike[str] | None],
    what: str = "input",
) -> None:
    """Raise AdvscaleError when an output path is the same file as an input (same inode).

    Call it before touching anything; ``None`` entries and missing files are ignored.
    """
    ins = {}
    for i in inputs:
        if i is None:
            continue
        ident = _identity(i)
        if ident is not None:
            ins.setdefault(ident, i)
    for o in outputs:
        if o is None:
            continue
        ident = _identity(o)
        if ident is not None and ident in ins:
            raise AdvscaleError(
                f"{o}: is the same file as the {what} {ins[ident]}; refusing to overwrite an "
                "input (write the output elsewhere)"
            )


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``target`` on success.

    The temp file is removed if the body raises (including KeyboardInterrupt). An OS error
    creating, writing (the temp file) or renaming it is one AdvscaleError naming ``target``
    and the cause (read-only directory, no space, a parent that is a file, ...).
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(target, suffix)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=suffix,
                                   dir=target.parent)
        os.close(fd)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
        raise AdvscaleError(f"{target}: cannot write ({blocker or target.parent} is not a "
                            "directory)") from None
    except OSError as e:
        raise AdvscaleError(f"{target}: cannot write ({os_cause(e)})") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _set_final_mode(tmp_path, target)
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(e, OSError) and _about_target(e, tmp_path, target):
            raise AdvscaleError(f"{target}: could not write ({os_cause(e)}); any previous "
                                "file there is intact") from None
        raise


_UMASK: list[int] = []


def current_umask() -> int:
    """The process's umask (read once: from /proc on Linux, else by setting and restoring it)."""
    if not _UMASK:
        try:
            with open("/proc/self/status") as f:
                line = next(x for x in f if x.startswith("Umask:"))
            _UMASK.append(int(line.split()[1], 8))
        except (OSError, StopIteration, ValueError, IndexError):
            mask = os.umask(0o022)
            os.umask(mask)
            _UMASK.append(mask)
    return _UMASK[0]


def created_file_mode(target: str | os.PathLike[str]) -> int:
    """The mode a written file gets: the replaced file's, else 0o666 less the umask, as any
    file the user creates (temp files start at 0o600, which a lab group could not read)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except (OSError, ValueError):
        return 0o666 & ~current_umask()


def _set_final_mode(tmp: Path, target: Path) -> None:
    with contextlib.suppress(OSError):
        if tmp.is_file():
            os.chmod(tmp, created_file_mode(target))


_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}


def _about_target(e: OSError, tmp: Path, target: Path) -> bool:
    """Whether an OS error in an atomic write is about writing the target (not an input)."""
    if e.filename is not None:
        return os.fsdecode(e.filename) in (str(tmp), str(target))
    return e.errno in _STORAGE_ERRNOS or "No space left" in str(e)


def os_cause(e: OSError) -> str:
    """A short cause of an OS error: its errno's text, else the first line of its message."""
    if e.errno == errno.ENOSPC:
        return "no space left on the device"
    if e.strerror:
        return e.strerror
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


@contextlib.contextmanager
def atomic_write(target: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Open a temp file for writing (text by default) and rename it onto ``target`` on success."""
    with atomic_path(target) as tmp:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    if sys.platform.startswith("win"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (read in 1 MiB chunks), e.g. ``sha256`` or ``md5``."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file: the provenance hash of checkpoints, data and weights files."""
    return file_digest(path, "sha256")
