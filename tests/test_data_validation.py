"""No silent data, one validator, bounded memory (issue 28 items 3 and 4, data side).

The malformed image files of ``test_corpus.BAD_H5`` that only a check of the storage, the
attributes or the labels catches (a stitched part removed, external storage cut short, labels
outside the named classes, 0×0 images, a corrupt ``class_names``, ...) are run through every
command that reads an image file *as its data*: ``train --data``, ``train --eval-data``,
``attack --data`` with a real checkpoint and ``gen-synthetic fit-gaussian``. Each gives one
``advscale: error:`` line naming the file and leaves nothing behind. A file declaring 10⁹ rows
is read under ``RLIMIT_AS`` in a subprocess: only the rows asked for are read.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import HANG_GUARD_S, make_h5
from test_corpus import BAD_H5, assert_clean_error, untrained_checkpoint

from advscale.data.layout import summarize
from advscale.data.reader import ImageMixture, stitch
from advscale.errors import AdvscaleError

DATA_CASES = sorted(
    ["label-negative", "label-past-names", "zero-by-zero", "not-square", "class-names-object",
     "class-names-corrupt", "class-names-numbers", "num-classes-disagrees", "mean-corrupt",
     "std-zero", "attr-compound", "count-empty", "never-written", "chunks-missing",
     "stitched-part-missing", "stitched-part-short", "external-missing", "external-short"])
TINY = ["--model", "wrn-10-1", "--pgd-steps", "1", "--eval-n", "4", "--eval-steps", "1",
        "--batch-size", "8", "--samples", "16", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-data")
    (root / "h5").mkdir()
    for name in DATA_CASES:
        BAD_H5[name](root / "h5" / f"{name}.h5")
    make_h5(root / "good.h5", 16)
    untrained_checkpoint(root / "ckpt.safetensors")
    return root


COMMANDS = {
    "train-data": lambda f, o: ["train", "--out", str(o / "run"), "--data", str(f),
                                "--eval-data", str(o / "good.h5"), *TINY],
    "train-eval": lambda f, o: ["train", "--out", str(o / "run"), "--data", str(o / "good.h5"),
                                "--eval-data", str(f), *TINY],
    "attack": lambda f, o: ["attack", str(o / "ckpt.safetensors"), "--data", str(f), "--attack",
                            "pgd-cw", "--steps", "1", "--n", "4", "--device", "cpu"],
    "gen-fit-gaussian": lambda f, o: ["gen-synthetic", "fit-gaussian", str(f), "-o",
                                      str(o / "g.safetensors")],
    "data-info": lambda f, o: ["data", "info", str(f)],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", DATA_CASES)
def test_every_reader_refuses_with_one_line_naming_the_file(bad, command, case):
    f = bad / "h5" / f"{case}.h5"
    msg = assert_clean_error(COMMANDS[command](f, bad), bad,
                             (bad / "run", bad / "g.safetensors"))
    assert f"{case}.h5" in msg or f"{case}.raw" in msg or f"{case}-parts" in msg, msg


def test_stitched_then_removed_part_is_named_by_attack_train_and_info(tmp_path):
    """The issue's reproducer: ``data stitch a.h5 b.h5 -o s.h5; rm b.h5; attack --data s.h5``."""
    a, b = make_h5(tmp_path / "a.h5", 32), make_h5(tmp_path / "b.h5", 32, seed=1)
    stitch([a, b], tmp_path / "s.h5")
    assert summarize(tmp_path / "s.h5")["n"] == 64
    b.unlink()
    ckpt = untrained_checkpoint(tmp_path / "ckpt.safetensors")
    for argv in (["data", "info", str(tmp_path / "s.h5")],
                 ["attack", str(ckpt), "--data", str(tmp_path / "s.h5"), "--n", "64",
                  "--attack", "pgd-cw", "--steps", "1", "--device", "cpu"],
                 ["train", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "s.h5"),
                  "--eval-data", str(a), *TINY],
                 ["data", "mix", f"{tmp_path / 's.h5'}:1", "-o", str(tmp_path / "m.json")]):
        msg = assert_clean_error(argv, tmp_path, (tmp_path / "run", tmp_path / "m.json"))
        assert "b.h5" in msg and "missing" in msg, msg


def test_a_stitched_file_moved_with_its_parts_still_reads(tmp_path):
    parts = tmp_path / "d"
    parts.mkdir()
    a, b = make_h5(parts / "a.h5", 8), make_h5(parts / "b.h5", 8, seed=1)
    stitch([a, b], parts / "s.h5")
    parts.rename(tmp_path / "moved")
    mix = ImageMixture([tmp_path / "moved" / "s.h5"])
    with h5py.File(tmp_path / "moved" / "b.h5") as f:
        assert np.array_equal(mix[np.arange(8, 16)][0], f["image"][:])


def test_labels_past_the_model_classes_and_the_named_classes_agree(tmp_path):
    """train and attack refuse the same file: labels are checked against the class names."""
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["image"] = np.zeros((8, 32, 32, 3), np.uint8)
        f["label"] = np.arange(8) % 4
        f.attrs["class_names"] = json.dumps(["a", "b", "c"])
    with pytest.raises(AdvscaleError, match="label 3 at row 3 is outside the 3 named"):
        _ = ImageMixture([tmp_path / "x.h5"]).labels
    from advscale.attacks.inputs import load_test_data

    with pytest.raises(AdvscaleError, match="label 3 at row 3 is outside the 3 named"):
        load_test_data(tmp_path / "x.h5", 8)


def test_mixture_reads_only_the_rows_asked_for(tmp_path):
    make_h5(tmp_path / "t.h5", 100)
    mix = ImageMixture([tmp_path / "t.h5"], max_rows=16)
    assert len(mix) == 16 and len(mix.labels) == 16
    assert mix.sources[0]._image_array(str(tmp_path / "t.h5")).shape[0] == 16


def _huge(path: Path, rows: int = 10**9, size: int = 8) -> Path:
    """A valid file declaring ``rows`` 8×8 images (a sparse file: only 16 rows written)."""
    with h5py.File(path, "w") as f:
        img = f.create_dataset("image", shape=(rows, size, size, 3), dtype=np.uint8)
        lab = f.create_dataset("label", shape=(rows,), dtype=np.uint8)
        img[:16] = np.arange(16 * size * size * 3, dtype=np.int64).reshape(16, size, size, 3) % 256
        lab[:16] = np.arange(16) % 10
        f.attrs.update({"count": rows, "format_version": 2, "source": "test",
                        "class_names": json.dumps([str(i) for i in range(10)])})
    return path


def _small(path: Path, n: int = 32, size: int = 8) -> Path:
    from advscale.data.layout import ImageFileWriter

    with ImageFileWriter(path, n, source="test", class_names=[str(i) for i in range(10)],
                         image_shape=(size, size, 3)) as w:
        w.write(np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                np.arange(n) % 10)
    return path


AS_LIMIT = 6 << 30
"""Address space for the bounded-memory subprocess (6 GiB; the unbounded read needed > 9 GiB
for the labels alone)."""


def _run_limited(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({AS_LIMIT}, {AS_LIMIT}))
        sys.argv = ["advscale", *{argv!r}]
        from advscale.cli.main import main
        main()
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=HANG_GUARD_S)


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_AS"), reason="needs RLIMIT_AS")
def test_eval_n_reads_only_its_rows_of_a_billion_row_file_under_rlimit_as(tmp_path):
    huge = _huge(tmp_path / "huge.h5")
    train = _small(tmp_path / "train.h5")
    r = _run_limited(["train", "--out", str(tmp_path / "run"), "--data", str(train),
                      "--eval-data", str(huge), *TINY], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(r.stdout.splitlines()[-1])
    assert rec["eval_n"] == 4
    r = _run_limited(["data", "mix", f"{huge}:1", "-o", str(tmp_path / "m.json")], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "m.json").read_text())["sources"][0]["n"] == 10**9
    r = _run_limited(["data", "info", str(huge)], tmp_path)  # labels counted in bounded blocks
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads(r.stdout)
    assert info["n"] == 10**9 and sum(info["class_counts"]) == 10**9
    assert info["class_counts"][1] == 2 and info["pixel_stats_rows"] == 10_000


def test_a_model_that_cannot_take_the_image_size_is_one_line(tmp_path):
    train = _small(tmp_path / "t.h5", size=1)
    msg = assert_clean_error(["train", "--out", str(tmp_path / "run"), "--data", str(train),
                              "--eval-data", str(train), *TINY], tmp_path, (tmp_path / "run",))
    assert "does not accept 1x1 images" in msg


def test_declared_rows_past_the_end_of_the_file_are_refused_before_reading(tmp_path):
    path = _huge(tmp_path / "h.h5", rows=10**6, size=1)
    with h5py.File(path) as f:
        end = f["label"].id.get_offset() + 10**6
    os.truncate(path, end - 10)  # cut into the label rows: the file ends before them
    with pytest.raises(AdvscaleError, match=r"h\.h5: .*(truncated|file ends)") as e:
        summarize(path)  # HDF5's own end-of-file check, else the declared-rows check
    assert "\n" not in str(e.value)


def test_an_unknown_undecodable_attribute_reads_as_null(tmp_path):
    """Readers ignore fields they do not know (docs/formats.md): data info shows it as null."""
    make_h5(tmp_path / "x.h5", 8)
    with h5py.File(tmp_path / "x.h5", "a") as f:
        f.attrs["vendor_blob"] = np.zeros(2, dtype=[("a", "i4"), ("b", "f4")])
        f.attrs["vendor_empty"] = h5py.Empty("f")
    s = summarize(tmp_path / "x.h5")
    assert s["attrs"]["vendor_blob"] is None and s["attrs"]["vendor_empty"] is None
    json.dumps(s)
