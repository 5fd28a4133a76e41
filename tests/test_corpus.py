"""A bad-input corpus across the commands: every case is one clean error, nothing else.

Each case runs the real entry point (``advscale.cli.main.main``) in this process and asserts:
exactly one ``advscale: error:`` line on stderr and no traceback, a non-zero exit, nothing on
stdout (no partial output), no output file left behind, and every input byte-for-byte untouched.
The corpus covers malformed JSONL (every reader), malformed HDF5 image and adversarial files,
bad npz imports, environment faults (read-only directory, a parent that is a file) and usage
errors; ``test_corpus_size`` keeps it at 100 cases or more.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import make_adv_h5, make_h5

from advscale.cli.main import main

# -- the bad inputs -----------------------------------------------------------------------------

GOOD_RECORD = ('{"kind":"train.eval","schema":1,"provenance":{},"run_id":"r","params":1000,'
               '"samples_seen":10,"adv_loss":1.0}')

BAD_JSONL: dict[str, bytes] = {
    "invalid-utf8": b'{"kind":"fit","x":"\xff\xfe"}\n',
    "binary": bytes(range(256)) * 4,
    "deep-nesting": b'{"kind":"fit","x":' + b"[" * 5000 + b"]" * 5000 + b"}\n",
    "deep-nesting-torn": b"[" * 4096,
    "huge-int": b'{"kind":"fit","x":' + b"9" * 5000 + b"}\n",
    "1e400": b'{"kind":"fit","x":1e400}\n',
    "nan": b'{"kind":"fit","x":NaN}\n',
    "not-an-object": b"[1, 2, 3]\n",
    "no-kind": b'{"schema":1}\n',
    "newer-schema": b'{"kind":"fit","schema":99}\n',
    "corrupt-middle": (GOOD_RECORD + '\n{"kind": "train.ev\n' + GOOD_RECORD + "\n").encode(),
    "truncated-json": b'{"kind":"fit","params":{"a":1\n',
}
"""Malformed JSONL files; every reader must reject each one with one line."""


def _h5(path: Path, image=None, label=None, attrs=None) -> Path:
    with h5py.File(path, "w") as f:
        if image is not None:
            f.create_dataset("image", data=image)
        if label is not None:
            f.create_dataset("label", data=label)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return path


def _img(n=8, shape=(32, 32, 3)):
    return np.zeros((n, *shape), np.uint8)


BAD_H5 = {
    "channels-first": lambda p: _h5(p, _img(8, (3, 32, 32)), np.zeros(8, np.int64)),
    "length-mismatch": lambda p: _h5(p, _img(8), np.zeros(5, np.int64)),
    "count-abc": lambda p: _h5(p, _img(8), np.zeros(8, np.int64), {"count": "abc"}),
    "count-negative": lambda p: _h5(p, _img(8), np.zeros(8, np.int64), {"count": -5}),
    "count-too-big": lambda p: _h5(p, _img(8), np.zeros(8, np.int64), {"count": 99}),
    "format-newer": lambda p: _h5(p, _img(8), np.zeros(8, np.int64), {"format_version": 99}),
    "format-text": lambda p: _h5(p, _img(8), np.zeros(8, np.int64), {"format_version": "v1"}),
    "float-labels": lambda p: _h5(p, _img(8), np.zeros(8, np.float32)),
    "float-images": lambda p: _h5(p, np.zeros((8, 32, 32, 3), np.float32), np.zeros(8, int)),
    "no-label": lambda p: _h5(p, _img(8)),
    "label-negative": lambda p: _h5(p, _img(8), np.array([0, 1, -1, 2, 3, 4, 5, 6])),
    "label-past-names": lambda p: _h5(p, _img(8), np.arange(8), {"class_names": '["a", "b"]'}),
    "zero-by-zero": lambda p: _h5(p, _img(8, (0, 0, 3)), np.zeros(8, np.int64)),
    "not-square": lambda p: _h5(p, _img(8, (32, 16, 3)), np.zeros(8, np.int64)),
    "class-names-object": lambda p: _h5(p, _img(8), np.zeros(8, int), {"class_names": '{"a":1}'}),
    "class-names-corrupt": lambda p: _h5(p, _img(8), np.zeros(8, int), {"class_names": "[abc"}),
    "class-names-numbers": lambda p: _h5(p, _img(8), np.zeros(8, int), {"class_names": "[1, 2]"}),
    "num-classes-disagrees": lambda p: _h5(p, _img(8), np.zeros(8, int),
                                           {"class_names": '["a", "b"]', "num_classes": 10}),
    "mean-corrupt": lambda p: _h5(p, _img(8), np.zeros(8, int), {"mean": "[0.5, 0.5"}),
    "std-zero": lambda p: _h5(p, _img(8), np.zeros(8, int), {"std": "[0.2, 0, 0.2]"}),
    "attr-compound": lambda p: _h5(p, _img(8), np.zeros(8, int),
                                   {"class_names": np.zeros(2, dtype=[("a", "i4"), ("b", "f4")])}),
    "count-empty": lambda p: _h5(p, _img(8), np.zeros(8, int), {"count": h5py.Empty("f")}),
    "never-written": lambda p: _never_written(p),
    "chunks-missing": lambda p: _never_written(p, chunked=True),
    "stitched-part-missing": lambda p: _stitched(p, "missing"),
    "stitched-part-short": lambda p: _stitched(p, "short"),
    "external-missing": lambda p: _external(p, "missing"),
    "external-short": lambda p: _external(p, "short"),
    "not-hdf5": lambda p: (p.write_bytes(b"this is not an HDF5 file\n" * 10), p)[1],
    "empty-file": lambda p: (p.write_bytes(b""), p)[1],
}
"""Malformed HDF5 image files (``data/layout.py`` must name each problem, file still open)."""


def _never_written(p: Path, chunked: bool = False) -> Path:
    """Rows declared valid (``count``) in a contiguous dataset that was never written, or in a
    chunked one of which only the first row's chunk was."""
    with h5py.File(p, "w") as f:
        img = f.create_dataset("image", shape=(8, 32, 32, 3), dtype=np.uint8,
                               chunks=(1, 32, 32, 3) if chunked else None)
        if chunked:
            img[0] = 1
        f.create_dataset("label", data=np.zeros(8, np.int64))
        f.attrs["count"] = 8
    return p


def _stitched(p: Path, how: str) -> Path:
    """``data stitch a.h5 b.h5 -o p``, then b.h5 removed (or replaced by a shorter file)."""
    from advscale.data.reader import stitch

    parts = p.parent / f"{p.stem}-parts"
    parts.mkdir()
    a, b = make_h5(parts / "a.h5", 8), make_h5(parts / "b.h5", 8, seed=1)
    stitch([a, b], p)
    b.unlink()
    if how == "short":
        make_h5(b, 3)
    return p


def _external(p: Path, how: str) -> Path:
    """``image`` in HDF5 external raw storage that is missing or shorter than declared."""
    raw = p.parent / f"{p.stem}.raw"
    raw.write_bytes(bytes(8 * 32 * 32 * 3 if how == "missing" else 5 * 32 * 32 * 3))
    with h5py.File(p, "w") as f:
        f.create_dataset("image", shape=(8, 32, 32, 3), dtype=np.uint8,
                         external=[(str(raw), 0, 8 * 32 * 32 * 3)])
        f.create_dataset("label", data=np.zeros(8, np.int64))
    if how == "missing":
        raw.unlink()
    return p


def _npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


BAD_NPZ = {
    "zero-rows": lambda p: _npz(p, image=_img(0), label=np.zeros(0, np.int64)),
    "channels-first": lambda p: _npz(p, image=_img(4, (3, 32, 32)), label=np.zeros(4, int)),
    "length-mismatch": lambda p: _npz(p, image=_img(4), label=np.zeros(3, np.int64)),
    "float-labels": lambda p: _npz(p, image=_img(4), label=np.zeros(4, np.float32)),
    "label-range": lambda p: _npz(p, image=_img(4), label=np.full(4, 12, np.int64)),
    "no-image": lambda p: _npz(p, label=np.zeros(4, np.int64)),
    "truncated": lambda p: (p.write_bytes(_npz(p, image=_img(64), label=np.zeros(64, int))
                                          .read_bytes()[:5000]), p)[1],
    "not-zip": lambda p: (p.write_bytes(b"PK\x03\x04 nonsense" * 50), p)[1],
}


# -- the runner ---------------------------------------------------------------------------------


def run_main(argv: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    """Run ``advscale ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old_argv, old_stdin = sys.argv, sys.stdin
    sys.argv = ["advscale", *argv]
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as e:
                code = e.code
    finally:
        sys.argv, sys.stdin = old_argv, old_stdin
    return (code if isinstance(code, int) else 1), out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_clean_error(argv: list[str], root: Path, outputs: tuple[Path, ...] = (),
                       stdin: bytes = b"", streaming: bool = False) -> str:
    """Run a case; assert one error line, non-zero exit, no stdout, untouched inputs.

    ``streaming``: a filter that answers line by line (``predict --queries``) may have printed
    the answers to the good lines before the bad one.
    """
    before = snapshot(root)
    code, out, err = run_main(argv, stdin)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("advscale: error: ")]
    assert code != 0, (argv, err)
    assert "Traceback" not in err, (argv, err)
    assert len(errors) == 1, (argv, err)
    assert streaming or out == "", (argv, out[:300])
    assert snapshot(root) == before, (argv, "an input changed or an output appeared")
    for o in outputs:
        assert not o.exists() or o.is_dir(), (argv, o)
    return errors[0]


# -- the cases ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "jsonl").mkdir()
    for name, data in BAD_JSONL.items():
        (root / "jsonl" / f"{name}.jsonl").write_bytes(data)
    (root / "h5").mkdir()
    for name, make in BAD_H5.items():
        make(root / "h5" / f"{name}.h5")
    (root / "npz").mkdir()
    for name, make in BAD_NPZ.items():
        make(root / "npz" / f"{name}.npz")
    make_h5(root / "good.h5", 20)
    make_adv_h5(root / "adv.h5")
    _npz(root / "good.npz", image=_img(4), label=np.arange(4))
    (root / "a-file").write_bytes(b"x")
    untrained_checkpoint(root / "ckpt.safetensors")
    return root


def untrained_checkpoint(path: Path) -> Path:
    """A freshly initialised wrn-10-1 checkpoint (attack needs one to reach its JSONL files)."""
    import torch

    from advscale.models import create_model
    from advscale.models.checkpoint import save_model_checkpoint

    torch.manual_seed(0)
    model = create_model("wrn-10-1", num_classes=10)
    save_model_checkpoint(path, model, {"model": "wrn-10-1", "activation": "silu",
                                        "num_classes": 10, "run_id": "corpus",
                                        "samples_seen": 0})
    return path


ATTACK_FAST = ["--attack", "pgd-cw", "--steps", "1", "--n", "4", "--device", "cpu"]
JSONL_COMMANDS = {
    "fit": lambda f, o: ["fit", str(f), "-a", "2", "-B", "0"],
    "predict-law": lambda f, o: ["predict", "--law", str(f), "--n", "1e6", "--d", "1e6"],
    "predict-queries": lambda f, o: ["predict", "--law", "bartoldson2024-approach2",
                                     "--queries", str(f)],
    "validity-score": lambda f, o: ["validity", "score", str(f), "--adv", str(o / "adv.h5")],
    "attack-merge": lambda f, o: ["attack", "--merge", str(f)],
    "attack-results": lambda f, o: ["attack", str(o / "ckpt.safetensors"), *ATTACK_FAST,
                                    "--data", str(o / "good.h5"), "--results", str(f)],
    "attack-state": lambda f, o: ["attack", str(o / "ckpt.safetensors"), *ATTACK_FAST,
                                  "--data", str(o / "good.h5"), "--state", str(f)],
    "report": lambda f, o: ["report", str(f), "-o", str(o / "out-report")],
}


@pytest.mark.parametrize("command", sorted(JSONL_COMMANDS))
@pytest.mark.parametrize("bad", sorted(BAD_JSONL))
def test_bad_jsonl(corpus, command, bad):
    argv = JSONL_COMMANDS[command](corpus / "jsonl" / f"{bad}.jsonl", corpus)
    if command in ("attack-results", "attack-state", "validity-score") and \
            bad == "deep-nesting-torn":
        pytest.skip("a torn unparsable last line is recovered by design, not an error")
    assert_clean_error(argv, corpus, (corpus / "out-report",),
                       streaming=command == "predict-queries")


H5_COMMANDS = {
    "data-info": lambda f, o: ["data", "info", str(f)],
    "data-stitch": lambda f, o: ["data", "stitch", str(o / "good.h5"), str(f), "-o",
                                 str(o / "out-stitch.h5")],
    "data-mix": lambda f, o: ["data", "mix", f"{f}:1", "-o", str(o / "out-mix.json")],
    "attack-data": lambda f, o: ["attack", "no-such.safetensors", "--data", str(f)],
    "train-data": lambda f, o: ["train", "--out", str(o / "out-run"), "--data", str(f),
                                "--model", "wrn-10-1", "--samples", "16", "--no-progress"],
    "validity-adv": lambda f, o: ["validity", "score", str(o / "jsonl" / "no-kind.jsonl"),
                                  "--adv", str(f)],
}


@pytest.mark.parametrize("command", sorted(H5_COMMANDS))
@pytest.mark.parametrize("bad", sorted(BAD_H5))
def test_bad_hdf5(corpus, command, bad):
    argv = H5_COMMANDS[command](corpus / "h5" / f"{bad}.h5", corpus)
    assert_clean_error(argv, corpus, (corpus / "out-stitch.h5", corpus / "out-mix.json",
                                      corpus / "out-run"))


@pytest.mark.parametrize("bad", sorted(BAD_NPZ))
def test_bad_npz_import(corpus, bad):
    out = corpus / "out-import.h5"
    msg = assert_clean_error(["data", "import", str(corpus / "npz" / f"{bad}.npz"), "-o",
                              str(out)], corpus, (out,))
    assert f"{bad}.npz" in msg


def _env_cases(o: Path) -> list[tuple[list[str], tuple[Path, ...]]]:
    good, npz, afile = str(o / "good.h5"), str(o / "good.npz"), o / "a-file"
    rec, adv = str(o / "jsonl" / "no-kind.jsonl"), str(o / "adv.h5")
    cases = [
        (["data", "import", npz, "-o", npz], ()),
        (["data", "import", npz, "-o", str(afile / "x.h5")], ()),
        (["data", "import", npz, "-o", str(o / "npz")], ()),
        (["data", "stitch", good, "-o", good], ()),
        (["data", "stitch", good, "-o", str(afile / "s.h5")], ()),
        (["data", "mix", f"{good}:1", "-o", str(afile / "m.json")], ()),
        (["attack", "x.safetensors", "--data", good, "--save-adv", good], ()),
        (["attack", "x.safetensors", "--data", good, "--state", good], ()),
        (["attack", "x.safetensors", "--data", good, "--results", good], ()),
        (["attack", "x.safetensors", "--data", good, "--results", str(o / "jsonl")], ()),
        (["train", "--out", str(afile), "--data", good, "--samples", "16"], ()),
        (["fit", str(o / "jsonl" / "no-kind.jsonl"), "-a", "2", "-o", str(afile / "f.json")],
         ()),
        (["validity", "score", str(o / "jsonl"), "--adv", str(o / "adv.h5")], ()),
        (["data", "info", str(o / "missing.h5")], ()),
        (["data", "info", str(o / "h5")], ()),
        # issue 28: commands that overwrote their input, and an existing output without --force
        (["data", "mix", f"{good}:1", "-o", good, "--force"], ()),
        (["fit", rec, "-a", "1", "-o", rec, "--force"], ()),
        (["records", "table", rec, "-o", rec, "--force"], ()),
        (["validity", "score", str(o / "jsonl"), "--adv", adv, "-o", adv, "--force"], ()),
        (["records", "import", str(afile), "-o", good], ()),
    ]
    if Path("/sys/kernel").is_dir() and not os.access("/sys/kernel", os.W_OK | os.X_OK) or (
            Path("/sys/kernel").is_dir() and not _can_create("/sys/kernel")):
        cases.append((["data", "import", npz, "-o", "/sys/kernel/advscale-x.h5"], ()))
        cases.append((["data", "stitch", good, "-o", "/sys/kernel/advscale-s.h5"], ()))
    return cases


def _can_create(directory: str) -> bool:
    try:
        fd = os.open(os.path.join(directory, ".advscale-probe"), os.O_CREAT | os.O_WRONLY)
    except OSError:
        return False
    os.close(fd)
    os.unlink(os.path.join(directory, ".advscale-probe"))
    return True


def test_environment_faults(corpus):
    for argv, outputs in _env_cases(corpus):
        assert_clean_error(argv, corpus, outputs)


USAGE = [
    ["nosuch"],
    ["train", "--bogus"],
    ["data", "import"],
    ["attack", "--eps", "abc", "x", "--data", "y"],
    ["predict", "--law", "bartoldson2024-approach2", "--n", "abc"],
    ["fit"],
]


@pytest.mark.parametrize("argv", USAGE, ids=[" ".join(a) for a in USAGE])
def test_usage_errors_are_one_line(corpus, argv):
    assert_clean_error(argv, corpus)


def test_corpus_size():
    n = (len(BAD_JSONL) * len(JSONL_COMMANDS) - 2 + len(BAD_H5) * len(H5_COMMANDS)
         + len(BAD_NPZ) + len(_env_cases(Path("/nonexistent"))) + len(USAGE))
    assert n >= 100, n
    json.dumps({"cases": n})
