"""The one output discipline of every command that writes a file or a folder.

* :func:`check_output`: an output that is (or links to: symlink, hard link, another spelling of
  the same inode) one of the command's inputs is refused, always; an existing output is refused
  unless ``force``. Call it before anything is read or written.
* Files are then written atomically (:func:`advscale.core.fileio.atomic_write`), so a failure
  leaves the old file or none.
* :func:`output_dir`: a folder output (the report) is built in a temporary sibling and swapped
  into place on success; a non-empty folder advscale did not make is refused even with
  ``force``, and on failure nothing new is left.
* :func:`removed_on_failure`: a path made by the body is removed again when the body fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from advscale.core.fileio import os_cause, pid_alive, refuse_overwrite_of_inputs
from advscale.errors import AdvscaleError

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
OWNER_MARK = ".advscale-output"
"""The file that marks a folder as made by advscale (a report folder it may replace)."""


def _is_stdout(path: PathLike | None) -> bool:
    return path is None or str(path) == "-"


def check_output(output: PathLike | None, inputs: Iterable[PathLike | None] = (), *,
                 force: bool = False) -> None:
    """Refuse ``output`` when it is one of ``inputs`` (by inode) or exists without ``force``.

    ``None`` and ``-`` (stdout) pass; inputs that are ``None``, ``-`` or missing are ignored.
    """
    if _is_stdout(output):
        return
    ins = [i for i in inputs if not _is_stdout(i) and os.path.exists(i)]  # type: ignore[arg-type]
    refuse_overwrite_of_inputs([output], ins)
    if os.path.lexists(output) and not force:  # type: ignore[arg-type]
        raise AdvscaleError(f"{output} already exists; overwrite it with force", field="force")


def check_outputs(outputs: Iterable[PathLike | None], inputs: Iterable[PathLike | None] = (),
                  *, force: bool = False) -> None:
    """:func:`check_output` for each output; outputs must also differ from each other."""
    outs = [o for o in outputs if not _is_stdout(o)]
    ins = list(inputs)
    for i, o in enumerate(outs):
        check_output(o, ins, force=force)
        refuse_overwrite_of_inputs([o], outs[:i], what="other output")


@contextlib.contextmanager
def removed_on_failure(path: PathLike) -> Iterator[Path]:
    """Yield ``path``; if it did not exist before and the body raises, remove what was made."""
    p = Path(path)
    existed = os.path.lexists(p)
    try:
        yield p
    except BaseException:
        if not existed:
            _remove(p)
        raise


def _remove(p: Path) -> None:
    with contextlib.suppress(OSError):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def looks_like_a_file(path: PathLike) -> bool:
    """Whether a folder name looks like a file's (``report.html``, ``out.json``)."""
    suffix = Path(path).suffix.lower()
    return suffix in {".html", ".htm", ".json", ".jsonl", ".png", ".pdf", ".csv", ".txt", ".svg"}


def check_output_dir(out: Path, force: bool) -> bool:
    """Whether ``out`` exists (as a folder that may be replaced); raise when it may not."""
    if not os.path.lexists(out):
        return False
    if not out.is_dir() or out.is_symlink():
        raise AdvscaleError(f"{out}: exists and is not a folder; choose another output folder",
                            field="out")
    entries = [e.name for e in os.scandir(out)]
    if not entries:
        return True
    if OWNER_MARK not in entries and not _earlier_report(out, entries):
        raise AdvscaleError(f"{out}: a non-empty folder advscale did not make; choose a new "
                            "or empty folder (advscale never deletes files it did not write)",
                            field="out")
    if not force:
        raise AdvscaleError(f"{out} already exists; replace it with force", field="force")
    return True


def _earlier_report(out: Path, entries: list[str]) -> bool:
    """A report folder of an advscale from before the mark: report.html and PNG figures only."""
    return "report.html" in entries and all(
        (out / e).is_file() and Path(e).suffix in (".html", ".png") for e in entries)


@contextlib.contextmanager
def output_dir(out: PathLike, *, force: bool = False,
               inputs: Iterable[PathLike | None] = ()) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``out``; on success it replaces ``out``.

    ``out`` may be missing, an empty folder, or (with ``force``) a folder advscale made; its
    old contents (stale figures included) go as a whole. On failure the temporary folder is
    removed and ``out`` is as it was. An input inside ``out`` is refused.
    """
    out = Path(out)
    if looks_like_a_file(out):
        log.warning("%s looks like a file name; it is written as a folder (%s/report.html)",
                    out, out)
    exists = check_output_dir(out, force)
    if exists:
        real = out.resolve()
        for i in inputs:
            if not _is_stdout(i) and real in Path(i).resolve().parents:  # type: ignore[arg-type]
                raise AdvscaleError(f"{out}: holds the input {i}; replacing the folder would "
                                    "delete it (write the output elsewhere)", field="out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_builds(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=out.parent))
    except OSError as e:
        raise AdvscaleError(f"{out}: cannot write ({os_cause(e)})", field="out") from None
    try:
        (tmp / OWNER_MARK).write_text("made by advscale; replaced as a whole by the next run "
                                      "with force\n", encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        _swap_in(tmp, out, exists)
    except BaseException:
        _remove(tmp)
        raise


def _remove_stale_builds(out: Path) -> None:
    """Remove build folders of ``out`` (``.<name>.<pid>.*.tmp``) left by a killed process."""
    prefix = f".{out.name}."
    for entry in os.scandir(out.parent):
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp") and entry.is_dir()):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            _remove(Path(entry.path))


def _umask() -> int:
    from advscale.core.fileio import current_umask

    return current_umask()


def _swap_in(tmp: Path, out: Path, exists: bool) -> None:
    """Put ``tmp`` in ``out``'s place: the old folder is moved aside, then removed."""
    if not exists:
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.old.", suffix=".tmp",
                                dir=out.parent))
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    _remove(old)
