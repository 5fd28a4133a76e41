"""Machine raters: a user-supplied command labels the images, as GPT-4 did in the paper.

advscale never calls an online service itself. ``advscale validity rate --command CMD`` sends
each image to CMD as one JSON line on its standard input::

    {"row": 17, "index": 4711, "version": "adv", "image_mime": "image/png",
     "image_png_base64": "iVBORw0...", "prompt": "I will give you an image ...",
     "class_names": ["airplane", ...]}

and reads the reply from its standard output. A reply is either a JSON object
``{"class": "dog" | 5, "confidence": "low" | "high"}`` or free text whose final two words are
``{class}, {confidence}`` (the format the paper asked GPT-4 for; ``higher`` means ``high``).

Two ways to run CMD: by default it is started once and kept running, one request line in, one
reply line out (good for a model held in memory); with ``per_image`` it is started afresh for
each image, its whole standard output is the reply (good for a small script around an HTTP API).
CMD is split like a shell would (``shlex``) but not run by a shell: use ``sh -c '...'`` for pipes.
"""

from __future__ import annotations

import base64
import json
import queue
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from advscale.errors import AdvscaleError
from advscale.validity.advset import AdvSet
from advscale.validity.png import encode_png
from advscale.validity.store import LabelStore

PROMPT = (
    "I will give you an image that contains one of 10 classes. The 10 classes are [airplane, "
    "automobile (but not truck or pickup truck), bird, cat, deer, dog, frog, horse, ship, and "
    "truck (but not pickup truck)]. Your reply to the image will tell me which of the 10 classes "
    "the image contains. Feel free to reason about the contents of the image, but the final two "
    "words of your response must be in the following format: '{class}, {confidence}'. 'class' "
    "must be one of the 10 classes. 'confidence' must be 'low' or 'higher' -- only say 'low' if "
    "you think it is unlikely that you have identified the correct class."
)
"""The GPT-4 prompt of the paper (Bartoldson et al. 2024, Figure 17), sent with every image."""



def prompt_for(class_names: Sequence[str]) -> str:
    """The paper's prompt for CIFAR-10's classes; for any other class list, the same prompt
    naming those classes (CIFAR-100, SVHN, an image folder)."""
    from advscale.data import CIFAR10_CLASSES

    if list(class_names) == list(CIFAR10_CLASSES):
        return PROMPT
    k, names = len(class_names), ", ".join(class_names)
    return (f"I will give you an image that contains one of {k} classes. The {k} classes are "
            f"[{names}]. Your reply to the image will tell me which of the {k} classes the image "
            "contains. Feel free to reason about the contents of the image, but the final two "
            "words of your response must be in the following format: '{class}, {confidence}'. "
            f"'class' must be one of the {k} classes. 'confidence' must be 'low' or 'higher' -- "
            "only say 'low' if you think it is unlikely that you have identified the correct "
            "class.")


BAD_REPLY_POLICIES = ("error", "abstain", "skip")
_CONF = {"low": "low", "high": "high", "higher": "high"}
_TAIL = re.compile(r"([^,]*?)\s*,\s*['\"`*]*\s*(low|higher|high)\W*\Z", re.IGNORECASE)


def parse_reply(text: str, class_names: Sequence[str]) -> tuple[int, str] | None:
    """The (class id, confidence) of a reply, or None when it does not follow the format."""
    text = text.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            return _from_json(obj, class_names)
    m = _TAIL.search(text)
    if m is None:
        return None
    head = re.sub(r"[^a-z0-9 _-]", " ", m.group(1).lower()).strip()
    best = None
    for i, name in enumerate(class_names):
        n = name.lower()
        if head == n or head.endswith(" " + n):
            if best is None or len(n) > len(class_names[best]):
                best = i
    if best is None:
        return None
    return best, _CONF[m.group(2).lower()]


def _from_json(obj: dict[str, Any], class_names: Sequence[str]) -> tuple[int, str] | None:
    cls, conf = obj.get("class"), obj.get("confidence")
    if not isinstance(conf, str) or conf.lower() not in _CONF:
        return None
    lowered = [c.lower() for c in class_names]
    if isinstance(cls, int) and not isinstance(cls, bool) and 0 <= cls < len(class_names):
        return cls, _CONF[conf.lower()]
    if isinstance(cls, str) and cls.strip().lower() in lowered:
        return lowered.index(cls.strip().lower()), _CONF[conf.lower()]
    return None


class CommandRater:
    """Runs the user's command and exchanges one request/reply per image (see module doc).

    ``timeout_s`` bounds each reply, seconds. Use as a context manager to stop the process.
    """

    def __init__(
        self, command: str | Sequence[str], per_image: bool = False, timeout_s: float = 300.0
    ) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise AdvscaleError("command is empty", field="command")
        self.per_image = per_image
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None:
            try:
                self._proc = subprocess.Popen(
                    self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                    encoding="utf-8", bufsize=1,
                )
            except OSError as e:
                raise AdvscaleError(f"cannot run rater command {self.argv[0]!r}: {e}") from None
            threading.Thread(target=self._read, args=(self._proc,), daemon=True).start()
        return self._proc

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def ask(self, request: dict[str, Any]) -> str:
        """Send one request; return the reply text (AdvscaleError on exit, error or timeout)."""
        line = json.dumps(request) + "\n"
        if self.per_image:
            try:
                done = subprocess.run(self.argv, input=line, capture_output=True, text=True,
                                      encoding="utf-8", timeout=self.timeout_s)
            except OSError as e:
                raise AdvscaleError(f"cannot run rater command {self.argv[0]!r}: {e}") from None
            except subprocess.TimeoutExpired:
                msg = f"rater command gave no reply in {self.timeout_s:g} s"
                raise AdvscaleError(msg) from None
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-1:] or [""]
                raise AdvscaleError(
                    f"rater command exited with status {done.returncode}: {tail[0][:200]}"
                )
            return done.stdout
        proc = self._start()
        try:
            assert proc.stdin is not None
            proc.stdin.write(line)
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise AdvscaleError(f"rater command exited (status {proc.poll()})") from None
        try:
            reply = self._lines.get(timeout=self.timeout_s)
        except queue.Empty:
            self._stop(proc, grace_s=0)  # a late reply would answer the wrong image
            self._proc = None
            raise AdvscaleError(f"rater command gave no reply in {self.timeout_s:g} s") from None
        if reply is None:
            raise AdvscaleError(f"rater command exited (status {proc.wait()}) without replying")
        return reply

    def close(self) -> None:
        """Close the command's input and wait briefly for it to end (then terminate it)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            self._stop(proc, grace_s=10)

    @staticmethod
    def _stop(proc: subprocess.Popen[str], grace_s: float) -> None:
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=grace_s)
            return
        except (OSError, subprocess.TimeoutExpired):
            pass
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> CommandRater:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def image_request(
    adv: AdvSet, row: int, version: str, scale: int = 1, prompt: str = PROMPT
) -> dict[str, Any]:
    """The JSON request for one image: PNG (upscaled ``scale`` x, nearest) as base64."""
    assert adv.image_adv is not None and adv.image_clean is not None
    pixels = (adv.image_adv if version == "adv" else adv.image_clean)[row]
    return {
        "row": int(row),
        "index": int(adv.index[row]),
        "version": version,
        "image_mime": "image/png",
        "image_png_base64": base64.b64encode(encode_png(pixels, scale)).decode("ascii"),
        "prompt": prompt,
        "class_names": list(adv.class_names),
    }


def rate_images(
    adv: AdvSet,
    store: LabelStore,
    rater: str,
    ask: Callable[[dict[str, Any]], str],
    *,
    versions: Iterable[str] = ("adv",),
    rows: Iterable[int] | None = None,
    scale: int = 1,
    prompt: str = PROMPT,
    on_bad_reply: str = "error",
    log: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Ask ``ask`` about every unanswered study image and append the answers to ``store``.

    ``versions`` are ``adv`` (the paper's GPT-4 rated only those) and/or ``clean``. A reply not
    in the format stops the run (``error``), is stored as an abstention counted wrong
    (``abstain``), or is left unanswered for a later run (``skip``). Returns counts.
    """
    if on_bad_reply not in BAD_REPLY_POLICIES:
        raise AdvscaleError(f"on_bad_reply must be one of {', '.join(BAD_REPLY_POLICIES)}",
                            field="on_bad_reply")
    versions = [v for v in ("adv", "clean") if v in set(versions)]
    if not versions:
        raise AdvscaleError("versions must name adv and/or clean", field="versions")
    rows = [int(r) for r in (adv.study_rows() if rows is None else rows)]
    if prompt == PROMPT:  # the default prompt names the file's classes
        prompt = prompt_for(adv.class_names)
    log = log or (lambda msg: None)
    done = store.answers(rater)
    todo = [(r, v) for r in rows for v in versions if (r, v) not in done]
    counts = {"n_requests": len(rows) * len(versions), "n_already": len(rows) * len(versions)
              - len(todo), "n_rated": 0, "n_correct": 0, "n_bad_reply": 0, "n_skipped": 0}
    answered = set(done)
    for i, (row, version) in enumerate(todo):
        if version == "clean" and (row, "adv") not in answered:
            counts["n_skipped"] += 1  # its adversarial image was skipped: keep the order
            continue
        reply = ask(image_request(adv, row, version, scale, prompt))
        parsed = parse_reply(reply, adv.class_names)
        if parsed is None:
            counts["n_bad_reply"] += 1
            snippet = " ".join(reply.split())[-120:]
            if on_bad_reply == "error":
                raise AdvscaleError(
                    f"row {row} ({version}): reply does not end in 'class, confidence': "
                    f"{snippet!r} (see on_bad_reply)", field="on_bad_reply")
            log(f"row {row} ({version}): unparsable reply {snippet!r} ({on_bad_reply})")
            if on_bad_reply == "skip":
                counts["n_skipped"] += 1
                continue
            choice, conf = None, None
        else:
            choice, conf = parsed
        rec = store.add(rater, row, version, choice, conf, reply=reply, allow_abstain=True)
        answered.add((row, version))
        counts["n_rated"] += 1
        counts["n_correct"] += bool(rec["correct"])
        if progress is not None:
            progress(i + 1, len(todo))
    return counts
