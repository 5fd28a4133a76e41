"""The ``train.eval`` record's payload fields (docs/formats.md, "train.eval"), and a validator.

The field names are the cross-team contract read by ``fit``, ``count-flops --annotate`` and
``report``; :func:`validate_train_eval` checks a record against it (types and ranges).
"""

from __future__ import annotations

import math
from typing import Any

from advscale.errors import AdvscaleError

_NUM = (int, float)
TRAIN_EVAL_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    # name: (allowed types, nullable)
    "run_id": ((str,), False),
    "model": ((str,), False),
    "activation": ((str,), True),
    "params": ((int,), False),
    "loss": ((str,), False),
    "beta": (_NUM, False),
    "pgd_steps": ((int,), False),
    "eps": (_NUM, False),
    "ema_decay": (_NUM, False),
    "batch_size": ((int,), False),
    "lr": (_NUM, False),
    "step": ((int,), False),
    "samples_seen": ((int,), False),
    "samples_unique": ((int,), False),
    "data": ((list,), False),
    "fid": (_NUM, True),
    "train_flops": (_NUM, True),
    "train_flops_per_sample": (_NUM, True),
    "wall_s": (_NUM, False),
    "train_loss": (_NUM, True),
    "eval_n": ((int,), False),
    "eval_attack": ((str,), False),
    "clean_acc": (_NUM, False),
    "robust_acc": (_NUM, False),
    "adv_loss": (_NUM, True),
    "final": ((bool,), False),
}
"""Contract fields of a train.eval record. train_flops is null only when FLOPs could not be
counted for a model; train_loss/adv_loss are null only if non-finite."""

DATA_FIELDS = ("path", "source", "weight", "n", "fid")


def validate_train_eval(rec: dict[str, Any]) -> None:
    """Raise AdvscaleError naming the first field of ``rec`` that breaks the contract."""
    if rec.get("kind") != "train.eval":
        raise AdvscaleError(f"not a train.eval record (kind {rec.get('kind')!r})")
    for name, (types, nullable) in TRAIN_EVAL_FIELDS.items():
        if name not in rec:
            raise AdvscaleError(f"train.eval record lacks {name!r}")
        v = rec[name]
        if v is None:
            if not nullable:
                raise AdvscaleError(f"train.eval field {name!r} is null")
            continue
        if isinstance(v, bool) and bool not in types:
            raise AdvscaleError(f"train.eval field {name!r} is a bool")
        if not isinstance(v, types):
            raise AdvscaleError(f"train.eval field {name!r} has type {type(v).__name__}")
        if isinstance(v, float) and not math.isfinite(v):
            raise AdvscaleError(f"train.eval field {name!r} is not finite")
    for name in ("clean_acc", "robust_acc"):
        if not 0 <= rec[name] <= 1:
            raise AdvscaleError(f"train.eval {name} {rec[name]} is not a fraction in [0, 1]")
    if not 0 < rec["eps"] <= 1:
        raise AdvscaleError("train.eval eps must lie in (0, 1]")
    if rec["samples_unique"] > rec["samples_seen"]:
        raise AdvscaleError("train.eval samples_unique exceeds samples_seen")
    for d in rec["data"]:
        if not isinstance(d, dict) or set(DATA_FIELDS) - set(d):
            raise AdvscaleError(f"train.eval data entries need fields {DATA_FIELDS}")
    tf, per = rec["train_flops"], rec["train_flops_per_sample"]
    if tf is not None and per is not None and not math.isclose(
        tf, per * rec["samples_seen"], rel_tol=1e-9
    ):
        raise AdvscaleError("train.eval train_flops != samples_seen × train_flops_per_sample")
