"""The records ``advscale validity score|rate`` write (docs/formats.md, "Validity study")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from advscale.records import make_record


def score_records(images: Sequence[Mapping[str, Any]], summary: Mapping[str, Any],
                  config: Mapping[str, Any] | None = None, summary_only: bool = False
                  ) -> list[dict[str, Any]]:
    """``validity.image`` records (unless ``summary_only``), then the ``validity.summary``."""
    recs = [] if summary_only else [make_record("validity.image", im, config=config)
                                    for im in images]
    recs.append(make_record("validity.summary", summary, config=config))
    return recs


def rate_record(rater: str, adv_path: str, adv_fingerprint: str, labels_dir: str,
                versions: Sequence[str], counts: Mapping[str, Any],
                config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``validity.rate`` record of one machine-rater run (``counts`` from rate_images)."""
    payload = {"rater": rater, "rater_kind": "machine", "adv_path": str(adv_path),
               "adv_fingerprint": adv_fingerprint, "labels_dir": str(labels_dir),
               "versions": list(versions), **counts}
    return make_record("validity.rate", payload, config=config)
