"""Fuzz the JSONL readers (hypothesis, bounded): mutated files give records or one clean error.

Every reader of JSONL (records, the append-only log under its torn-line policy, run tables,
law files, prediction queries, validity labels) gets mutated copies of a good file: bytes
flipped, inserted or cut, brackets nested deep, huge integers, ``1e400``, NaN, invalid UTF-8.
The only exception allowed out is AdvscaleError (one line at the CLI); ``test_fuzz_report``
counts tracebacks over a fixed corpus too, for the closing note.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from advscale.core.jsonl import append_line, read_log
from advscale.errors import AdvscaleError
from advscale.laws.law import Law, load_law_doc
from advscale.laws.predict import iter_queries
from advscale.records import loads_all, read_records
from advscale.records.runs import iter_tagged
from advscale.validity.store import read_label_file

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

GOOD = (
    b'{"kind":"train.eval","schema":1,"provenance":{"seed":0},"run_id":"a","params":1000,'
    b'"samples_seen":64,"adv_loss":1.25,"clean_acc":0.5}\n'
    b'{"kind":"fit","schema":1,"form":"approach2","params":{"E":0.4,"A":1.5,"alpha":0.3,'
    b'"B":2.0,"beta":0.3},"n":5,"d":1e6,"fid":0}\n'
    b'{"kind":"validity.label","schema":1,"rater":"r","row":1,"version":"adv"}\n'
)
NASTY = [b"[" * 3000, b"9" * 5000, b"1e400", b"-1e999", b"NaN", b"Infinity", b"\xff\xfe",
         b"\xed\xa0\x80", b'"\\ud800"', b"\x00", b"\n", b"{", b"}", b'"', b"\\", b"{}" * 50,
         b'{"kind":' + b"[" * 200, b"]" * 100, b'{"a":1}', b"\r\n", b"\t" * 10]


def _mutate(data: bytes, rng: random.Random, steps: int) -> bytes:
    b = bytearray(data)
    for _ in range(steps):
        op = rng.randrange(4)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[pos:pos] = rng.choice(NASTY)
        elif op == 2:
            del b[pos:pos + rng.randrange(1, 40)]
        else:
            b = b[:pos]
    return bytes(b)


def _readers(path: Path) -> list:
    return [
        lambda: list(read_records(path)),
        lambda: read_log(path).items,
        lambda: list(iter_tagged(path)),
        lambda: Law(load_law_doc(str(path))),
        lambda: list(iter_queries(str(path))),
        lambda: read_label_file(path).records,
        lambda: loads_all(path.read_bytes().decode("utf-8", "replace")),
        lambda: list(read_records("-", stdin=io.TextIOWrapper(io.BytesIO(path.read_bytes()),
                                                              encoding="utf-8"))),
    ]


def _check_all(path: Path, data: bytes) -> int:
    """Run every reader on ``data``; return the number of clean errors (tracebacks raise)."""
    path.write_bytes(data)
    clean = 0
    for read in _readers(path):
        try:
            read()
        except AdvscaleError as e:
            assert "\n" not in str(e).strip(), str(e)
            clean += 1
    return clean


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 6))
def test_mutated_jsonl_gives_records_or_one_clean_error(tmp_path, seed, steps):
    data = _mutate(GOOD, random.Random(seed), steps)
    _check_all(tmp_path / "fuzz.jsonl", data)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_random_bytes_give_a_clean_error(tmp_path, data):
    _check_all(tmp_path / "bytes.jsonl", data)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_appending_after_any_garbage_tail_never_raises_but_clean(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "log.jsonl"
    path.write_bytes(_mutate(GOOD, rng, 3))
    try:
        append_line(path, '{"kind":"x","schema":1}')
        items = read_log(path).items
    except AdvscaleError:
        return  # a corrupt complete line in the middle: a clean error, the file kept
    assert items[-1] == {"kind": "x", "schema": 1}


def test_fuzz_report(tmp_path):
    """500 mutated files through every reader: the count of tracebacks is 0."""
    rng = random.Random(18)
    cases = tracebacks = clean = 0
    for _ in range(500):
        data = _mutate(GOOD, rng, rng.randrange(1, 6))
        cases += 1
        try:
            clean += _check_all(tmp_path / "f.jsonl", data)
        except Exception:  # noqa: BLE001 - counting what escapes
            tracebacks += 1
    print(f"fuzz: {cases} files x {len(_readers(tmp_path))} readers, {clean} clean errors, "
          f"{tracebacks} tracebacks")
    assert tracebacks == 0
