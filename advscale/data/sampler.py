"""Sampling without replacement over huge mixtures, with an O(1) exactly-resumable state.

A pass over ``n`` items is a keyed pseudo-random permutation (a 4-round Feistel network with
cycle walking), so nothing of size ``n`` is ever materialised: a 100M-image mixture costs no
memory, and the whole state of a stream is one integer, the number of samples drawn.

Two modes:

* **union** (no weights): the sources are concatenated and each pass is one permutation of the
  union, so every index is drawn exactly once per pass.
* **weighted** (a weight per source): draws are split among sources in exact proportion to
  the weights (within one sample per block of ``block`` draws); each source runs through its
  own passes, so an image repeats only after its source is exhausted.

The stream does not depend on the batch size or the number of DDP ranks: global position ``t``
always maps to the same index, and ranks take disjoint slices of each global batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (a fast, well-mixed hash)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x


def _key(*parts: int) -> int:
    """Derive a 64-bit key from integers (seed, source, pass, ...)."""
    h = np.uint64(0x9E3779B97F4A7C15)
    for p in parts:
        h = _mix64(np.asarray([h ^ np.uint64(p & 0xFFFFFFFFFFFFFFFF)], dtype=np.uint64))[0]
    return int(h)


def feistel_permute(positions: np.ndarray, n: int, keys: np.ndarray | int) -> np.ndarray:
    """Apply the keyed permutation of ``range(n)`` to ``positions`` (one key per element or one
    for all): for a fixed key, positions ``0..n-1`` map to every element of ``range(n)`` once.
    """
    x = np.asarray(positions, dtype=np.uint64)
    if x.size and int(x.max()) >= n:
        raise IndexError("position outside the permutation's range")
    bits = max(2, int(n - 1).bit_length())
    half = np.uint64((bits + 1) // 2)
    mask = np.uint64((1 << int(half)) - 1)
    k = np.broadcast_to(np.asarray(keys, dtype=np.uint64), x.shape)
    round_keys = [_mix64(k ^ np.uint64(0x632BE59BD9B4E019 * (r + 1) & 0xFFFFFFFFFFFFFFFF))
                  for r in range(4)]

    def encrypt(v: np.ndarray, sel: np.ndarray | slice) -> np.ndarray:
        left, right = v >> half, v & mask
        for rk in round_keys:
            left, right = right, left ^ (_mix64(right ^ rk[sel]) & mask)
        return (left << half) | right

    y = encrypt(x, slice(None))
    out = np.flatnonzero(y >= np.uint64(n))
    while out.size:  # cycle walking: re-encrypt until back inside range(n)
        y[out] = encrypt(y[out], out)
        out = out[y[out] >= np.uint64(n)]
    return y.astype(np.int64)


class FeistelPermutation:
    """A keyed bijection of ``range(n)``, evaluated on arrays of positions."""

    def __init__(self, n: int, key: int) -> None:
        if n < 1:
            raise ValueError("permutation of an empty range")
        self.n, self.key = int(n), np.uint64(key)

    def __call__(self, positions: np.ndarray | Sequence[int]) -> np.ndarray:
        return feistel_permute(np.asarray(positions), self.n, self.key)


class MixtureStream:
    """The deterministic sample stream over sources of the given ``sizes``.

    ``indices(t0, t1)`` returns the global indices (offsets into the concatenated sources) drawn
    at stream positions ``t0..t1-1``. ``weights=None`` is union mode; otherwise weighted mode.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float] | None = None,
        seed: int = 0,
        block: int = 1024,
    ) -> None:
        self.sizes = [int(s) for s in sizes]
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError("every source needs at least one sample")
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.total = int(self.offsets[-1])
        self.seed = int(seed)
        self.weights = None if weights is None else [float(w) for w in weights]
        if self.weights is not None:
            if len(self.weights) != len(self.sizes):
                raise ValueError("one weight per source")
            if min(self.weights) <= 0:
                raise ValueError("weights must be positive")
            fr = [Fraction(w) for w in self.weights]
            tot = sum(fr)
            cum = [Fraction(0)]
            for f in fr:
                cum.append(cum[-1] + f / tot)
            cum[-1] = Fraction(1)
            self._cum = cum
            pmin = min(fr) / tot
            # a block of size >= 2/pmin gives every source at least one draw per block
            self.block = max(int(block), int(np.ceil(2 / float(pmin))))
        else:
            self.block = int(block)

    def _draw_source(self, source: int, start: int, count: int) -> np.ndarray:
        """Items ``start..start+count-1`` of a source's own stream (pass after pass).

        Pass ``e`` of source ``s`` is the permutation keyed by (seed, s, e); all passes touched
        are evaluated in one vectorised call.
        """
        n = self.total if source < 0 else self.sizes[source]
        pos = np.arange(start, start + count, dtype=np.int64)
        epochs = (pos // n).astype(np.uint64)
        with np.errstate(over="ignore"):
            keys = _mix64(np.uint64(_key(self.seed, source + 1)) ^ _mix64(epochs + np.uint64(1)))
        out = feistel_permute(pos % n, n, keys)
        return out if source < 0 else out + self.offsets[source]

    # -- weighted mode ------------------------------------------------------------------------
    def _consumed(self, t: int) -> np.ndarray:
        """Per-source draw counts among the first ``t`` draws, ``t`` a block boundary."""
        fl = [(t * c).numerator // (t * c).denominator for c in self._cum]
        return np.diff(np.asarray(fl, dtype=np.int64))

    def _block_labels(self, b: int) -> np.ndarray:
        counts = self._consumed((b + 1) * self.block) - self._consumed(b * self.block)
        labels = np.repeat(np.arange(len(self.sizes)), counts)
        rng = np.random.default_rng(_key(self.seed, 0x5EED, b))
        return labels[rng.permutation(len(labels))]

    def indices(self, t0: int, t1: int) -> np.ndarray:
        """Global sample indices at stream positions ``t0 <= t < t1``."""
        t0, t1 = int(t0), int(t1)
        if t1 <= t0:
            return np.empty(0, dtype=np.int64)
        if self.weights is None:
            return self._draw_source(-1, t0, t1 - t0)
        out = np.empty(t1 - t0, dtype=np.int64)
        for b in range(t0 // self.block, (t1 - 1) // self.block + 1):
            bs = b * self.block
            lo, hi = max(t0, bs), min(t1, bs + self.block)
            labels = self._block_labels(b)
            before = self._consumed(bs)
            for s in range(len(self.sizes)):
                in_block = labels == s
                # rank of each slot of source s within this block
                ranks = np.cumsum(in_block) - 1
                sel = in_block[lo - bs : hi - bs]
                if not sel.any():
                    continue
                r = ranks[lo - bs : hi - bs][sel]
                start = int(before[s] + r[0])
                out[np.flatnonzero(sel) + (lo - t0)] = self._draw_source(s, start, len(r))
        return out

    def unique_drawn(self, t: int) -> int:
        """How many distinct samples the first ``t`` draws touched (exact at block bounds)."""
        if self.weights is None:
            return min(int(t), self.total)
        b = int(t) // self.block * self.block
        c = self._consumed(b)
        if t > b:
            labels = self._block_labels(b // self.block)[: t - b]
            c = c + np.bincount(labels, minlength=len(self.sizes))
        return int(np.minimum(c, self.sizes).sum())


class ResumableBatchSampler:
    """Yields batches of indices (arrays) from a :class:`MixtureStream`, resumable exactly.

    ``num_samples`` is the total draws of the run (the paper's D); ``rank``/``world_size``
    select each rank's slice of every global batch. The state is ``{"position": t}``: the number
    of samples of the global stream already *consumed* (set it from the training loop, since a
    DataLoader prefetches ahead of what was consumed).
    """

    def __init__(
        self,
        stream: MixtureStream,
        batch_size: int,
        num_samples: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(f"global batch {batch_size} not divisible by {world_size} ranks")
        self.stream = stream
        self.batch_size = int(batch_size)
        self.num_samples = int(num_samples)
        self.rank, self.world_size = int(rank), int(world_size)
        self.drop_last = drop_last
        self.position = 0

    def __len__(self) -> int:
        left = max(0, self.num_samples - self.position)
        return left // self.batch_size if self.drop_last else -(-left // self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        t = self.position
        local = self.batch_size // self.world_size
        while t < self.num_samples:
            end = min(t + self.batch_size, self.num_samples)
            if end - t < self.batch_size and self.drop_last:
                return
            size = end - t
            per = size // self.world_size
            lo = t + self.rank * per
            yield self.stream.indices(lo, lo + (per if size < self.batch_size else local))
            t = end

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position, "seed": self.stream.seed,
                "num_samples": self.num_samples, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state.get("seed", self.stream.seed)) != self.stream.seed:
            raise ValueError("sampler state was saved with another seed")
        self.position = int(state["position"])
