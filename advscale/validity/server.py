"""The rating web application of the human study (Figure 16 of Bartoldson et al. 2024).

A standard-library ``ThreadingHTTPServer`` serves one page and a small JSON API. The images of
the study (by default the rows of the adversarial-image file that fooled the model) are split in
tabs of ``batch`` images; for each image the rater picks one of the classes and a confidence
(``low`` / ``high``) first for the adversarial image, then for its clean original. Every answer
is appended to the rater's own labels file (:mod:`advscale.validity.store`) before the request
returns, so a closed browser or a killed server loses nothing and the page resumes at the first
unanswered image.

Raters and access. Each rater has an id (``[A-Za-z0-9_-]{1,64}``) and a personal token, an HMAC
of the id under a secret kept in ``DIR/.secret`` (mode 0600, created on first use, so links
survive restarts). Raters named on the command line get their links printed on stderr; others
may pick a new, unused id on the start page (unless joining is disabled) and get a link back.
A request without the right token for its rater id is refused (403), so no rater can read or
write another rater's answers. The server never serves files by path: the only files it writes
are ``DIR/<rater>.jsonl`` and ``DIR/.secret``.

API (all JSON answers carry ``Cache-Control: no-store``):

* ``GET /`` the page; ``GET /app.js``, ``GET /app.css`` its script and style.
* ``GET /api/state?rater=R&token=T`` progress, tabs, the next image of each tab, running scores.
* ``GET /api/image?rater=R&token=T&item=I&version=adv|clean`` the image as a PNG, upscaled with
  nearest-neighbour; the clean image only after the adversarial one was answered.
* ``POST /api/answer`` JSON ``{"rater", "token", "item", "version", "class", "confidence",
  "response_s"}``; answers 200 with the new state, 400 malformed, 403 bad token, 404 unknown
  item, 409 already answered or clean before adversarial, 413 too large, 415 not JSON.
* ``POST /api/join`` JSON ``{"rater"}``: registers a new id, answers ``{"rater", "token"}``;
  429 over :data:`JOINS_PER_MINUTE` new raters a minute, 403 once :data:`MAX_RATERS` exist.

Hostile input gets a 4xx, never a traceback: bodies are decoded with bounded nesting and number
size, more than :data:`MAX_QUERY_FIELDS` query fields is a 400, and the labels store keeps at
most a few dozen rater files open (LRU), so no number of joins exhausts file descriptors.
Adversarial pixels that are NaN or outside [0, 1] are reported on the log at start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from advscale.core.jsonl import loads_bounded
from advscale.errors import AdvscaleError
from advscale.validity.advset import AdvSet
from advscale.validity.png import MAX_SCALE, encode_png
from advscale.validity.store import LabelError, LabelStore, check_rater_id

MAX_BODY = 4096
LISTEN_BACKLOG = 256
"""Pending connections the kernel queues (socketserver's default is 5: a lab's burst of page
loads got no answer)."""
"""Largest accepted request body, bytes."""
MAX_QUERY_FIELDS = 10
"""Most query-string fields a request may carry (more: 400)."""
MAX_RATERS = 1000
"""Most rater files a labels directory may hold before joining is refused (403)."""
JOINS_PER_MINUTE = 30
"""Most new raters the server registers per minute (more: 429)."""

SECRET_FILE = ".secret"
LOOPBACK = ("127.0.0.1", "localhost")
_ANSWER_KEYS = {"rater", "token", "item", "version", "class", "confidence", "response_s"}
_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/index.html": ("index.html", "text/html; charset=utf-8"),
           "/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/app.css": ("app.css", "text/css; charset=utf-8")}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def load_secret(directory: str | os.PathLike[str]) -> bytes:
    """The server secret of a labels directory, created (mode 0600) on first use."""
    path = Path(directory) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes().strip()
        if len(data) < 32:
            msg = f"{path}: secret is too short; delete it to make a new one"
            raise AdvscaleError(msg) from None
        return data
    data = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as f:
        f.write(data + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return data


def rater_token(secret: bytes, rater: str) -> str:
    """The personal token of ``rater``: 32 hex digits of HMAC-SHA256(secret, rater id)."""
    check_rater_id(rater)
    return hmac.new(secret, b"rater:" + rater.encode(), hashlib.sha256).hexdigest()[:32]


def web_asset(name: str) -> bytes:
    """A file of the page (``index.html``, ``app.js``, ``app.css``) from the installed package."""
    return resources.files("advscale.validity").joinpath("web", name).read_bytes()


class HttpError(Exception):
    """An HTTP error answer with a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RatingApp:
    """The state behind the server: images, the labels store, raters and their tokens.

    ``directory`` holds ``<rater>.jsonl`` files and the secret; ``raters`` are ids reserved for
    people given a printed link; ``allow_join`` lets new raters pick an unused id on the page.
    ``batch`` is the number of images a tab; ``scale`` the nearest-neighbour upscaling factor.
    """

    def __init__(
        self,
        adv: AdvSet,
        directory: str | os.PathLike[str],
        *,
        batch: int = 100,
        raters: Iterable[str] = (),
        allow_join: bool = True,
        include_unfooled: bool = False,
        scale: int = 8,
        log: Callable[[str], None] | None = None,
        max_raters: int = MAX_RATERS,
        joins_per_minute: int = JOINS_PER_MINUTE,
    ) -> None:
        if adv.image_adv is None or adv.image_clean is None:
            raise AdvscaleError("the rating server needs the images: load with images=True")
        if batch < 1:
            raise AdvscaleError(f"batch {batch} must be at least 1", field="batch")
        if not 1 <= scale <= MAX_SCALE:
            raise AdvscaleError(f"scale {scale} must be between 1 and {MAX_SCALE}", field="scale")
        self.adv = adv
        self.items = [int(r) for r in adv.study_rows(include_unfooled)]
        if not self.items:
            raise AdvscaleError(f"{adv.path}: no images to rate (none fooled the model)")
        self.batch = batch
        self.scale = scale
        self.allow_join = allow_join
        self.reserved = {check_rater_id(r) for r in raters}
        self.log = log or (lambda msg: None)
        self.store = LabelStore(directory, adv, rows=self.items, kind="human", log=self.log)
        self.secret = load_secret(directory)
        self._join_lock = threading.Lock()
        self.max_raters = int(max_raters)
        self.joins_per_minute = int(joins_per_minute)
        self._joins: deque[float] = deque()
        if adv.invalid_pixels:
            rows = ", ".join(str(r) for r in adv.invalid_rows[:10])
            self.log(f"advscale validity: warning: {adv.path}: {adv.invalid_pixels} adversarial "
                     f"pixel values are NaN or outside [0, 1] (rows {rows}"
                     f"{', ...' if len(adv.invalid_rows) > 10 else ''}); they are shown "
                     "clipped, which is not the image the model saw")

    # -- access -------------------------------------------------------------------------------

    def token(self, rater: str) -> str:
        return rater_token(self.secret, rater)

    def authenticate(self, rater: Any, token: Any) -> str:
        """The rater id if ``token`` is its token; HttpError 400/403 otherwise."""
        try:
            rater = check_rater_id(rater)
        except LabelError as e:
            raise HttpError(400, str(e)) from None
        if not isinstance(token, str) or not hmac.compare_digest(token, self.token(rater)):
            raise HttpError(403, "unknown rater or wrong token: open your personal link")
        return rater

    def join(self, rater: Any) -> dict[str, Any]:
        """Register a new rater id and return its token (409 if the id is taken)."""
        if not self.allow_join:
            raise HttpError(403, "joining is disabled on this server: ask for a personal link")
        try:
            rater = check_rater_id(rater)
        except LabelError as e:
            raise HttpError(400, str(e)) from None
        with self._join_lock:
            if rater in self.reserved or self.store.exists(rater):
                raise HttpError(409, f"rater id {rater!r} is taken: open your personal link")
            now = time.monotonic()
            while self._joins and now - self._joins[0] > 60:
                self._joins.popleft()
            if len(self._joins) >= self.joins_per_minute:
                raise HttpError(429, "too many new raters this minute: try again shortly")
            if len(self.store.raters()) >= self.max_raters:
                raise HttpError(403, f"this study is full ({self.max_raters} raters)")
            self._joins.append(now)
            self.store.create(rater)
        self.log(f"advscale validity: new rater {rater}")
        return {"rater": rater, "token": self.token(rater)}

    # -- study state --------------------------------------------------------------------------

    def item_row(self, item: Any) -> int:
        if isinstance(item, bool) or not isinstance(item, int):
            raise HttpError(400, "item must be an integer")
        if not 0 <= item < len(self.items):
            raise HttpError(404, f"item {item} is outside 0..{len(self.items) - 1}")
        return self.items[item]

    def state(self, rater: str) -> dict[str, Any]:
        """Progress of ``rater``: tabs with their next image, and running accuracies."""
        answers = self.store.answers(rater)
        adv = self.adv
        tabs = []
        pairs = adv_ok = adv_model = clean_ok = clean_model = 0
        for start in range(0, len(self.items), self.batch):
            stop = min(start + self.batch, len(self.items))
            nxt = None
            done = 0
            for item in range(start, stop):
                row = self.items[item]
                a, c = answers.get((row, "adv")), answers.get((row, "clean"))
                if a is not None and c is not None:
                    done += 1
                    pairs += 1
                    adv_ok += bool(a["correct"])
                    adv_model += bool(a["agrees_with_model"])
                    clean_ok += bool(c["correct"])
                    clean_model += bool(c["agrees_with_model"])
                elif nxt is None:
                    nxt = {"item": item, "version": "adv" if a is None else "clean"}
            tabs.append({"tab": len(tabs), "start": start, "stop": stop, "done": done,
                         "next": nxt})
        current = next((t["tab"] for t in tabs if t["next"] is not None), None)
        return {
            "rater": rater,
            "n_items": len(self.items),
            "batch": self.batch,
            "class_names": adv.class_names,
            "image_px": int(adv.image_adv.shape[1]) * self.scale,
            "answered": len(answers),
            "total": 2 * len(self.items),
            "tabs": tabs,
            "current_tab": current,
            "stats": {"pairs": pairs, "adv_correct": adv_ok, "adv_model_agree": adv_model,
                      "clean_correct": clean_ok, "clean_model_agree": clean_model},
        }

    def image(self, rater: str, item: Any, version: Any) -> bytes:
        """PNG bytes of one image of the study (clean only once the adversarial is answered)."""
        row = self.item_row(item)
        if version not in ("adv", "clean"):
            raise HttpError(400, "version must be adv or clean")
        if version == "clean" and (row, "adv") not in self.store.answers(rater):
            raise HttpError(409, "answer the adversarial image before seeing the clean one")
        pixels = (self.adv.image_adv if version == "adv" else self.adv.image_clean)[row]
        return encode_png(pixels, self.scale)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate and store one answer; returns the rater's new state."""
        extra = set(body) - _ANSWER_KEYS
        if extra:
            raise HttpError(400, f"unknown field(s): {', '.join(sorted(extra))}")
        rater = self.authenticate(body.get("rater"), body.get("token"))
        row = self.item_row(body.get("item"))
        try:
            self.store.add(rater, row, body.get("version"), body.get("class"),
                           body.get("confidence"), response_s=body.get("response_s"))
        except LabelError as e:
            raise HttpError(e.status, str(e)) from None
        return self.state(rater)

    def close(self) -> None:
        self.store.close()


class _Handler(BaseHTTPRequestHandler):
    server_version = "advscale-validity"
    sys_version = ""
    app: RatingApp
    allowed_hosts: frozenset[str] | None
    quiet: bool

    # -- plumbing -----------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if not self.quiet:  # request lines without the query string (it carries the token)
            msg = re.sub(r"\?\S*", "", format % args)
            self.app.log(f"{self.address_string()} {msg}")

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message, "status": status})

    def _check_host(self) -> None:
        if len(self.headers.get_all("Host") or []) > 1:
            raise HttpError(400, "more than one Host header")
        if self.allowed_hosts is None:
            return
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self.allowed_hosts:
            raise HttpError(400, "unexpected Host header")

    def _dispatch(self, fn: Callable[[], None]) -> None:
        try:
            self._check_host()
            fn()
        except HttpError as e:
            self._error(e.status, str(e))
        except AdvscaleError as e:  # e.g. a labels file locked by another process
            self._error(500, str(e))
        except ConnectionError:  # the client left: nobody to answer (logged by the server)
            self.close_connection = True
            raise
        except (OSError, ValueError, RecursionError, MemoryError) as e:  # never a traceback
            self.app.log(f"advscale validity: {self.command} {urlsplit(self.path).path}: "
                         f"{type(e).__name__}: {' '.join(str(e).split())[:200]}")
            self.close_connection = True
            self._error(500, "internal error; the server logged it")

    # -- methods ------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch(self._post)

    def _not_allowed(self) -> None:
        self._error(405, f"method {self.command} not allowed")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

    def _get(self) -> None:
        url = urlsplit(self.path)
        if url.path in _STATIC:
            name, ctype = _STATIC[url.path]
            extra = {"Content-Security-Policy": _CSP, "X-Frame-Options": "DENY"}
            self._send(200, web_asset(name), ctype, extra)
            return
        try:
            query = parse_qs(url.query, keep_blank_values=True, strict_parsing=False,
                             max_num_fields=MAX_QUERY_FIELDS)
        except ValueError:
            raise HttpError(400, f"more than {MAX_QUERY_FIELDS} query fields") from None
        if any(len(v) != 1 for v in query.values()):
            raise HttpError(400, "repeated query parameter")
        q = {k: v[0] for k, v in query.items()}
        if url.path == "/api/state":
            rater = self.app.authenticate(q.get("rater"), q.get("token"))
            self._json(200, self.app.state(rater))
        elif url.path == "/api/image":
            rater = self.app.authenticate(q.get("rater"), q.get("token"))
            try:
                item = int(q.get("item", ""))
            except ValueError:
                raise HttpError(400, "item must be an integer") from None
            png = self.app.image(rater, item, q.get("version"))
            self._send(200, png, "image/png")
        elif url.path == "/favicon.ico":
            self._send(204, b"", "text/plain")
        else:
            raise HttpError(404, "not found")

    def _post(self) -> None:
        url = urlsplit(self.path)
        if url.path not in ("/api/answer", "/api/join"):
            raise HttpError(404, "not found")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise HttpError(415, "send application/json")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise HttpError(411, "Content-Length required") from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise HttpError(413, f"request body over {MAX_BODY} bytes")
        raw = self.rfile.read(length)
        try:
            text = raw.decode("utf-8")
            body = loads_bounded(text, "body")
            if isinstance(body, dict):  # bounded already: this parse only looks for repeats
                json.loads(text, object_pairs_hook=_unique_keys)
        except (UnicodeDecodeError, AdvscaleError):
            raise HttpError(400, "body is not valid JSON") from None
        except _DuplicateKey as e:
            raise HttpError(400, f"repeated JSON key {e.args[0]!r}") from None
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        if url.path == "/api/join":
            if set(body) - {"rater"}:
                raise HttpError(400, "join takes only a rater id")
            self._json(200, self.app.join(body.get("rater")))
        else:
            self._json(200, self.app.answer(body))


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


class _Server(ThreadingHTTPServer):
    """The threading server with a lab-sized listen backlog and one-line error logs."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One log line per failed connection (never a traceback on stderr)."""
        import sys

        e = sys.exc_info()[1]
        handler = self.RequestHandlerClass
        if getattr(handler, "quiet", False) or not hasattr(handler, "app"):
            return
        who = client_address[0] if isinstance(client_address, tuple) else client_address
        if isinstance(e, ConnectionError | TimeoutError):
            handler.app.log(f"advscale validity: {who}: client disconnected before the answer "
                            "was sent")
        else:
            handler.app.log(f"advscale validity: {who}: {type(e).__name__}: "
                            f"{' '.join(str(e).split())[:200]}")


def make_server(
    app: RatingApp, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False
) -> ThreadingHTTPServer:
    """An HTTP server for ``app`` bound to ``host:port`` (port 0 picks a free port).

    On a loopback host, requests whose ``Host`` header is not that loopback address (or
    ``localhost``) with the bound port are refused, which defeats DNS-rebinding pages.
    """
    allowed: frozenset[str] | None = None
    try:
        httpd = _Server((host, port), _Handler)
    except OSError as e:
        raise AdvscaleError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    real_port = httpd.server_address[1]
    if host in LOOPBACK:
        allowed = frozenset(f"{h}:{real_port}" for h in LOOPBACK)
    handler = type("Handler", (_Handler,), {"app": app, "allowed_hosts": allowed,
                                             "quiet": quiet})
    httpd.RequestHandlerClass = handler
    return httpd


def server_url(httpd: ThreadingHTTPServer) -> str:
    """``http://host:port/`` of a running server."""
    host, port = httpd.server_address[:2]
    host = f"[{host}]" if ":" in str(host) else host
    return f"http://{host}:{port}/"


def rater_link(base_url: str, rater: str, token: str) -> str:
    """The personal link of a rater."""
    return f"{base_url}?rater={rater}&token={token}"
