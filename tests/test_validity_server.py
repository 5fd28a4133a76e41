"""The rating server over real HTTP on a loopback port: answers, resume, tokens, bad requests."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_GUARD_S

from advscale.errors import AdvscaleError
from advscale.records import read_records
from advscale.validity.advset import load_adv_set
from advscale.validity.png import decode_png
from advscale.validity.server import RatingApp, make_server, rater_token, server_url
from advscale.validity.store import LabelStore


class Served:
    """A RatingApp behind a real ThreadingHTTPServer on 127.0.0.1:<free port>."""

    def __init__(self, adv_path: Path, out: Path, **kw) -> None:
        self.adv = load_adv_set(adv_path)
        self.app = RatingApp(self.adv, out, **kw)
        self.httpd = make_server(self.app, "127.0.0.1", 0, quiet=True)
        self.port = self.httpd.server_address[1]
        self.url = server_url(self.httpd)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def token(self, rater: str) -> str:
        return self.app.token(rater)

    def request(self, method, path, body=None, headers=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = {"Content-Type": "application/json"} if (body is not None or raw) else {}
        hdrs.update(headers or {})
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        ctype = resp.getheader("Content-Type") or ""
        return resp.status, (json.loads(payload) if "json" in ctype else payload)

    def answer(self, rater, item, version, cls, conf="high", token=None, **extra):
        body = {"rater": rater, "token": self.token(rater) if token is None else token,
                "item": item, "version": version, "class": cls, "confidence": conf, **extra}
        return self.request("POST", "/api/answer", body)

    def state(self, rater):
        return self.request("GET", f"/api/state?rater={rater}&token={self.token(rater)}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.app.close()


@pytest.fixture
def served(adv_h5, tmp_path):
    s = Served(adv_h5, tmp_path / "labels", batch=4, raters=["alice", "bob"])
    yield s
    s.close()


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_page_and_assets(served):
    status, page = served.request("GET", "/")
    assert status == 200 and b"Guess the perturbed image" in page and b"pickup" in page
    assert served.request("GET", "/app.js")[0] == 200
    assert served.request("GET", "/app.css")[0] == 200
    assert b"pixelated" in served.request("GET", "/app.css")[1]


def test_answers_are_appended_with_state_and_scores(served, tmp_path):
    status, st = served.state("alice")
    assert status == 200 and st["n_items"] == 10 and len(st["tabs"]) == 3
    assert st["tabs"][0]["next"] == {"item": 0, "version": "adv"} and st["current_tab"] == 0
    # item 0 is row 0: label 0, model says 1
    status, st = served.answer("alice", 0, "adv", 1, "low", response_s=2.5)
    assert status == 200 and st["answered"] == 1
    assert st["tabs"][0]["next"] == {"item": 0, "version": "clean"}
    assert st["stats"]["pairs"] == 0  # scores count finished pairs only
    status, st = served.answer("alice", 0, "clean", 0, "high")
    assert st["stats"] == {"pairs": 1, "adv_correct": 0, "adv_model_agree": 1,
                           "clean_correct": 1, "clean_model_agree": 1}
    recs = list(read_records(tmp_path / "labels" / "alice.jsonl"))
    assert [(r["row"], r["version"], r["choice"], r["confidence"]) for r in recs] == [
        (0, "adv", 1, "low"), (0, "clean", 0, "high")]
    assert recs[0]["kind"] == "validity.label" and recs[0]["rater_kind"] == "human"
    assert recs[0]["response_s"] == 2.5 and recs[0]["correct"] is False
    assert recs[0]["adv_fingerprint"] == served.adv.fingerprint and recs[0]["index"] == 100
    # another tab can be worked on independently
    assert served.answer("alice", 4, "adv", 5, "high")[0] == 200
    st = served.state("alice")[1]
    assert st["tabs"][1]["next"] == {"item": 4, "version": "clean"}
    assert st["tabs"][0]["next"] == {"item": 1, "version": "adv"} and st["current_tab"] == 0


def test_images_are_nearest_neighbour_upscaled_pngs(served):
    q = f"rater=alice&token={served.token('alice')}"
    status, png = served.request("GET", f"/api/image?{q}&item=3&version=adv")
    assert status == 200
    img = decode_png(png)
    src = served.adv.image_adv[3]
    assert img.shape == (256, 256, 3)
    assert np.array_equal(img, np.repeat(np.repeat(src, 8, 0), 8, 1))
    # the clean image is hidden until the adversarial one is answered
    assert served.request("GET", f"/api/image?{q}&item=3&version=clean")[0] == 409
    served.answer("alice", 3, "adv", 2)
    status, png = served.request("GET", f"/api/image?{q}&item=3&version=clean")
    assert status == 200 and np.array_equal(decode_png(png)[::8, ::8], served.adv.image_clean[3])


BAD_ANSWERS = [
    ({"class": 10}, 400), ({"class": -1}, 400), ({"class": "zebra"}, 400), ({"class": 1.0}, 400),
    ({"class": True}, 400), ({"class": None}, 400), ({"confidence": "medium"}, 400),
    ({"confidence": None}, 400), ({"version": "both"}, 400), ({"item": 10}, 404),
    ({"item": -1}, 404), ({"item": 10**12}, 404), ({"item": "0"}, 400), ({"item": None}, 400),
    ({"response_s": -1}, 400), ({"response_s": 1e9}, 400), ({"response_s": "1"}, 400),
    ({"extra": 1}, 400), ({"rater": "../evil"}, 400), ({"rater": "a/b"}, 400),
    ({"rater": "..", "token": "x"}, 400), ({"rater": ""}, 400), ({"rater": "x" * 65}, 400),
    ({"rater": "al ice"}, 400), ({"rater": "alice\x00"}, 400), ({"rater": ["alice"]}, 400),
    ({"token": "0" * 32}, 403), ({"token": None}, 403), ({"rater": "carol"}, 403),
]


def test_malformed_requests_get_4xx_and_never_touch_files(served, tmp_path):
    served.answer("alice", 0, "adv", 1)
    root = tmp_path
    before = _snapshot(root)
    good = {"rater": "alice", "token": served.token("alice"), "item": 1, "version": "adv",
            "class": 1, "confidence": "high"}
    for change, code in BAD_ANSWERS:
        body = dict(good, **change)
        if "rater" in change and "token" not in change:
            body["token"] = served.token("alice")
        status, resp = served.request("POST", "/api/answer", body)
        assert status == code, (change, resp)
        assert resp["status"] == code and resp["error"]
    tok = served.token("alice")
    others = [
        ("POST", "/api/answer", None, b"not json", {}, 400),
        ("POST", "/api/answer", None, b"[1, 2]", {}, 400),
        ("POST", "/api/answer", None, b"\xff\xfe", {}, 400),
        ("POST", "/api/answer", good, None, {"Content-Type": "text/plain"}, 415),
        ("POST", "/api/answer", None, b"{" + b" " * 5000 + b"}", {}, 413),
        ("POST", "/api/nothing", good, None, {}, 404),
        ("PUT", "/api/answer", good, None, {}, 405),
        ("DELETE", "/labels/alice.jsonl", None, None, {}, 405),
        ("GET", "/labels/alice.jsonl", None, None, {}, 404),
        ("GET", "/../labels/alice.jsonl", None, None, {}, 404),
        ("GET", "/api/state?rater=../alice&token=x", None, None, {}, 400),
        ("GET", "/api/state?rater=bob&token=" + tok, None, None, {}, 403),
        ("GET", f"/api/state?rater=alice&rater=bob&token={tok}", None, None, {}, 400),
        ("GET", f"/api/image?rater=alice&token={tok}&item=99&version=adv", None, None, {}, 404),
        ("GET", f"/api/image?rater=alice&token={tok}&item=x&version=adv", None, None, {}, 400),
        ("GET", f"/api/image?rater=alice&token={tok}&item=1&version=raw", None, None, {}, 400),
        ("GET", "/api/image?rater=bob&token=" + tok + "&item=1&version=adv", None, None, {}, 403),
        ("GET", "/", None, None, {"Host": "evil.example:80"}, 400),
        ("POST", "/api/join", {"rater": "../../etc"}, None, {}, 400),
        ("POST", "/api/join", {"rater": "alice"}, None, {}, 409),
        ("POST", "/api/join", {"rater": "new", "token": "x"}, None, {}, 400),
    ]
    for method, path, body, raw, headers, code in others:
        status, _ = served.request(method, path, body, headers, raw)
        assert status == code, (method, path, body, raw, headers)
    # duplicates and clean-before-adversarial are conflicts
    assert served.answer("alice", 0, "adv", 0)[0] == 409
    assert served.answer("alice", 1, "clean", 1)[0] == 409
    assert _snapshot(root) == before
    assert not any(p.name in ("evil", "etc") or ".." in p.name for p in root.rglob("*"))


def test_tokens_keep_raters_apart_and_join(adv_h5, tmp_path):
    s = Served(adv_h5, tmp_path / "labels", raters=["alice"], allow_join=True)
    try:
        assert s.answer("alice", 0, "adv", 0, token=s.token("bob"))[0] == 403
        status, resp = s.request("POST", "/api/join", {"rater": "dora"})
        assert status == 200 and resp == {"rater": "dora", "token": s.token("dora")}
        assert (tmp_path / "labels" / "dora.jsonl").read_bytes() == b""
        assert s.request("POST", "/api/join", {"rater": "dora"})[0] == 409
        assert s.request("POST", "/api/join", {"rater": "alice"})[0] == 409  # reserved
        assert s.answer("dora", 0, "adv", 3)[0] == 200
        assert s.answer("alice", 0, "adv", 0)[0] == 200
        dora = list(read_records(tmp_path / "labels" / "dora.jsonl"))
        assert [r["choice"] for r in dora] == [3]
    finally:
        s.close()
    s = Served(adv_h5, tmp_path / "labels", allow_join=False)
    try:
        assert s.request("POST", "/api/join", {"rater": "eve"})[0] == 403
        assert s.token("dora") == rater_token(s.app.secret, "dora")  # links survive restarts
        assert s.state("dora")[1]["answered"] == 1
    finally:
        s.close()
    assert oct((tmp_path / "labels" / ".secret").stat().st_mode & 0o777) == "0o600"


def test_restart_resumes_and_a_torn_last_line_is_dropped(adv_h5, tmp_path):
    out = tmp_path / "labels"
    s = Served(adv_h5, out, raters=["alice"])
    s.answer("alice", 0, "adv", 0)
    s.answer("alice", 0, "clean", 0)
    s.answer("alice", 1, "adv", 2)
    s.close()
    path = out / "alice.jsonl"
    good = path.read_bytes()
    with open(path, "ab") as f:  # a crash in the middle of writing a fourth answer
        f.write(b'{"kind":"validity.label","schema":1,"rater":"ali')
    s = Served(adv_h5, out, raters=["alice"])
    try:
        st = s.state("alice")[1]
        assert st["answered"] == 3 and st["tabs"][0]["next"] == {"item": 1, "version": "clean"}
        assert path.read_bytes() == good
        assert s.answer("alice", 1, "clean", 1)[0] == 200
        assert len(list(read_records(path))) == 4
    finally:
        s.close()


def test_store_refuses_labels_of_another_file_and_a_second_writer(adv_h5, tmp_path):
    from conftest import make_adv_h5

    out = tmp_path / "labels"
    adv = load_adv_set(adv_h5)
    with LabelStore(out, adv) as st:
        st.add("alice", 0, "adv", 0, "high")
        with pytest.raises(AdvscaleError, match=r"labels directory .* in use by pid \d+"):
            LabelStore(out, adv)  # a second writer of the directory is refused at once
    other_adv = load_adv_set(make_adv_h5(tmp_path / "other.h5", seed=1))
    with LabelStore(out, other_adv) as st, pytest.raises(AdvscaleError, match="different"):
        st.answers("alice")
    with LabelStore(out, adv, kind="machine") as st, pytest.raises(AdvscaleError, match="human"):
        st.answers("alice")


def test_cli_serve_prints_links_and_stops_cleanly(adv_h5, tmp_path):
    out = tmp_path / "labels"
    proc = subprocess.Popen(
        [sys.executable, "-m", "advscale", "validity", "serve", str(adv_h5), "--port", "0",
         "--out", str(out), "--rater", "alice", "--batch", "5", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "alice:" in line or not line:
                break
        link = re.search(r"alice: (http://127\.0\.0\.1:(\d+)/\?rater=alice&token=(\w+))",
                         "".join(lines))
        assert link, "".join(lines)
        port, token = int(link.group(2)), link.group(3)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/api/answer", json.dumps({
            "rater": "alice", "token": token, "item": 0, "version": "adv", "class": 0,
            "confidence": "high"}), {"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 0, stderr
    assert stdout == "" and "every answer given is saved" in stderr
    assert len(list(read_records(out / "alice.jsonl"))) == 1
    assert sorted(os.listdir(out)) == [".secret", "alice.jsonl"]


def test_answers_accept_class_names(served, tmp_path):
    """The answer API takes a class name (any case) as the machine-rater path does."""
    good = {"rater": "alice", "token": served.token("alice"), "item": 2, "version": "adv",
            "confidence": "high"}
    name = served.adv.class_names[3]
    status, resp = served.request("POST", "/api/answer", dict(good, **{"class": name.upper()}))
    assert status == 200, resp
    labels = (tmp_path / "labels" / "alice.jsonl").read_text().splitlines()
    assert json.loads(labels[-1])["choice"] == 3


# -- issue 28: a lab's burst of requests, early disconnects, one Host, no repeated keys ---------


def test_listen_backlog_is_sized_for_a_lab(served):
    assert served.httpd.request_queue_size >= 128


def test_300_concurrent_requests_are_all_answered(served):
    """300 clients connect at once (bounded: 300 threads, 60 s socket timeouts, 127.0.0.1)."""
    n, statuses, errors = 300, [], []
    start = threading.Barrier(n)

    def one() -> None:
        try:
            start.wait(timeout=HANG_GUARD_S)
            conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            statuses.append(resp.status)
        except Exception as e:  # noqa: BLE001 - counted
            errors.append(repr(e))

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HANG_GUARD_S)
    assert errors == [] and statuses == [200] * n, (errors[:3], len(statuses))


def test_client_disconnects_are_one_log_line_not_a_traceback(adv_h5, tmp_path, capfd):
    import socket

    logs: list[str] = []
    app = RatingApp(load_adv_set(adv_h5), tmp_path / "labels", raters=["alice"],
                    log=logs.append)
    httpd = make_server(app, "127.0.0.1", 0, quiet=False)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        for _ in range(5):  # ask for the page, then hang up at once (with a reset)
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.sendall(b"GET /app.js HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
            s.close()
        status, _ = Served.request(type("S", (), {"port": port})(), "GET", "/")
        assert status == 200  # the server keeps serving
    finally:
        httpd.shutdown()
        httpd.server_close()
        app.close()
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "BrokenPipe" not in captured.err
    assert any("disconnected" in m for m in logs), logs
    assert all("\n" not in m for m in logs)
    assert not [m for m in logs if "Error" in m and "disconnected" not in m], logs


def test_a_second_host_header_is_refused(served):
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.putrequest("GET", "/", skip_host=True)
    conn.putheader("Host", f"127.0.0.1:{served.port}")
    conn.putheader("Host", "evil.example")
    conn.endheaders()
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 400 and "Host" in body["error"]


def test_repeated_json_keys_are_refused(served):
    tok = served.token("alice")
    raw = ('{"rater": "alice", "token": "TOK", "item": 0, "version": "adv", "class": 1, '
           '"confidence": "high", "rater": "bob"}').replace("TOK", tok)
    status, body = served.request("POST", "/api/answer", raw=raw.encode())
    assert status == 400 and "repeated JSON key 'rater'" in body["error"]
    status, _ = served.request("POST", "/api/join", raw=b'{"rater": "x", "rater": "y"}')
    assert status == 400
