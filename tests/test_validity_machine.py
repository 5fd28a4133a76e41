"""Machine raters: a command reads base64 PNG requests and replies 'class, confidence'."""

from __future__ import annotations

import base64
import sys
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from advscale.data import CIFAR10_CLASSES
from advscale.errors import AdvscaleError
from advscale.records import loads_all, read_records
from advscale.validity.advset import load_adv_set
from advscale.validity.machine_rater import (
    PROMPT,
    CommandRater,
    image_request,
    parse_reply,
    rate_images,
)
from advscale.validity.png import decode_png
from advscale.validity.store import LabelStore

NAMES = list(CIFAR10_CLASSES)


@pytest.mark.parametrize("reply,expected", [
    ("cat, low", (3, "low")),
    ("The image shows a small animal with pointy ears. Cat, higher", (3, "high")),
    ("I think this is an automobile.\n\nautomobile, higher.", (1, "high")),
    ("'truck', 'low'", (9, "low")),
    ("**ship**, **higher**", (8, "high")),
    ("It is a frog , high\n", (6, "high")),
    ('{"class": "dog", "confidence": "higher"}', (5, "high")),
    ('{"class": 7, "confidence": "low"}', (7, "low")),
    ("cat, medium", None),
    ("It is a pickup truck, low", (9, "low")),  # the final two words decide, as in the paper
    ("no class here, low", None),
    ("a lion, low", None),
    ("cat low", None),
    ('{"class": "lion", "confidence": "low"}', None),
    ('{"class": 10, "confidence": "low"}', None),
    ("", None),
])
def test_parse_reply(reply, expected):
    assert parse_reply(reply, NAMES) == expected


RATER_SCRIPT = textwrap.dedent("""
    import base64, json, sys
    # answers the true class (label = row % 10) on even rows, the class after it on odd rows;
    # checks the request carries a decodable PNG and the prompt
    for line in sys.stdin:
        req = json.loads(line)
        png = base64.b64decode(req["image_png_base64"])
        assert png[:8] == b"\\x89PNG\\r\\n\\x1a\\n" and "pickup" in req["prompt"]
        row = req["row"]
        cls = req["class_names"][row % 10 if row % 2 == 0 else (row + 1) % 10]
        if row == int(sys.argv[1]):
            print("no idea what this is", flush=True)
        else:
            print(f"Reasoning... {cls}, {'higher' if row % 3 else 'low'}", flush=True)
""")


@pytest.fixture
def script(tmp_path):
    p = tmp_path / "rater.py"
    p.write_text(RATER_SCRIPT)
    return p


def test_image_request_carries_the_exact_pixels(adv_h5):
    adv = load_adv_set(adv_h5)
    req = image_request(adv, 2, "adv", scale=2)
    img = decode_png(base64.b64decode(req["image_png_base64"]))
    assert np.array_equal(img[::2, ::2], adv.image_adv[2]) and img.shape == (64, 64, 3)
    assert req["prompt"] == PROMPT and req["class_names"] == NAMES and req["index"] == 102


@pytest.mark.parametrize("per_image", [False, True])
def test_rate_persistent_and_per_image_and_resume(adv_h5, tmp_path, script, per_image):
    adv = load_adv_set(adv_h5)
    out = tmp_path / "labels"
    cmd = [sys.executable, str(script), "-1"]
    versions = ["adv"] if per_image else ["adv", "clean"]  # a process per image is slower
    with LabelStore(out, adv, kind="machine") as store, CommandRater(cmd, per_image) as r:
        counts = rate_images(adv, store, "gpt", r.ask, versions=versions)
    n = 10 * len(versions)
    assert counts["n_rated"] == n and counts["n_correct"] == n // 2 and counts["n_already"] == 0
    recs = list(read_records(out / "gpt.jsonl"))
    assert all(r["rater_kind"] == "machine" for r in recs)
    adv_recs = {r["row"]: r for r in recs if r["version"] == "adv"}
    assert adv_recs[4]["correct"] and not adv_recs[3]["correct"]
    assert adv_recs[4]["confidence"] == "high" and adv_recs[3]["confidence"] == "low"
    assert adv_recs[4]["choice_name"] == "deer"
    with LabelStore(out, adv, kind="machine") as store, CommandRater(cmd, per_image) as r:
        again = rate_images(adv, store, "gpt", r.ask, versions=versions)
    assert again["n_rated"] == 0 and again["n_already"] == n


def test_bad_replies_error_abstain_or_skip(adv_h5, tmp_path, script):
    adv = load_adv_set(adv_h5)
    out = tmp_path / "labels"
    cmd = [sys.executable, str(script), "3"]  # no usable answer for row 3
    with LabelStore(out, adv, kind="machine") as store, CommandRater(cmd) as r:
        with pytest.raises(AdvscaleError, match="row 3"):
            rate_images(adv, store, "gpt", r.ask)
    assert [x["row"] for x in read_records(out / "gpt.jsonl")] == [0, 1, 2]
    with LabelStore(out, adv, kind="machine") as store, CommandRater(cmd) as r:
        counts = rate_images(adv, store, "gpt", r.ask, on_bad_reply="skip",
                             versions=["adv", "clean"])
    assert counts["n_skipped"] == 2 and counts["n_bad_reply"] == 1  # row 3 and its clean image
    rows = [(x["row"], x["version"]) for x in read_records(out / "gpt.jsonl")]
    assert (3, "adv") not in rows and (3, "clean") not in rows and len(rows) == 3 + 3 + 12
    with LabelStore(out, adv, kind="machine") as store, CommandRater(cmd) as r:
        counts = rate_images(adv, store, "gpt", r.ask, on_bad_reply="abstain")
    assert counts["n_rated"] == 1
    last = list(read_records(out / "gpt.jsonl"))[-1]
    assert last["row"] == 3 and last["choice"] is None and last["correct"] is False
    assert "no idea" in last["reply"]


def test_command_failures_are_clear_errors(adv_h5, tmp_path):
    adv = load_adv_set(adv_h5)
    req = image_request(adv, 0, "adv")
    with CommandRater([sys.executable, "-c", "import sys; sys.exit(3)"]) as r:
        with pytest.raises(AdvscaleError, match="exited"):
            r.ask(req)
    with CommandRater([sys.executable, "-c", "import sys; sys.exit(3)"], per_image=True) as r:
        with pytest.raises(AdvscaleError, match="status 3"):
            r.ask(req)
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    with CommandRater(slow, timeout_s=0.5) as r, pytest.raises(AdvscaleError, match="no reply"):
        r.ask(req)
    with pytest.raises(AdvscaleError, match="cannot run"):
        CommandRater(str(tmp_path / "missing-program")).ask(req)


def test_rate_cli_then_score_with_a_human(adv_h5, tmp_path, script):
    from advscale.cli.validity import app

    out = tmp_path / "labels"
    cmd = f"{sys.executable} {script} -1"
    res = CliRunner().invoke(app, ["rate", str(adv_h5), "--command", cmd, "--rater", "gpt4",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    (rec,) = loads_all(res.stdout)
    assert rec["kind"] == "validity.rate" and rec["n_rated"] == 10 and rec["n_correct"] == 5
    adv = load_adv_set(adv_h5)
    with LabelStore(out, adv) as store:  # a human: right with high confidence on rows 1 and 2
        for row in range(10):
            store.add("ann", row, "adv", row % 10 if row in (1, 2) else (row + 1) % 10,
                      "high" if row in (1, 2) else "low")
    res = CliRunner().invoke(app, ["score", str(out), "--adv", str(adv_h5)])
    assert res.exit_code == 0, res.output
    *images, summary = loads_all(res.stdout)
    status = [im["status"] for im in images]
    # even rows: gpt4 right, ann wrong -> 1 correct, no human high -> ann agrees with model
    # (1 of 1 human) -> deceptive; row 2: ann right with high confidence -> valid;
    # row 1: ann right (high) -> valid; other odd rows: nobody right -> deceptive
    assert status == ["deceptive", "valid", "valid"] + ["deceptive"] * 7
    assert summary["n_machine_raters"] == 1 and summary["n_human_raters"] == 1
    res = CliRunner().invoke(app, ["rate", str(adv_h5), "--command", cmd, "--rater", "../x"])
    assert res.exit_code != 0 and "rater id" in res.output
    res = CliRunner().invoke(app, ["rate", str(adv_h5), "--command", cmd, "--rater", "ann",
                                   "--out", str(out)])
    assert res.exit_code != 0 and "human rater" in res.output
