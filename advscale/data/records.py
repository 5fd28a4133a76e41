"""The ``data.info`` record (docs/formats.md) that ``advscale data`` writes for an image file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from advscale.records import make_record


def info_record(summary: Mapping[str, Any], command: str | None = None) -> dict[str, Any]:
    """A ``data.info`` record from a file summary (:func:`advscale.data.layout.summarize`,
    ``import_dataset``, ``stitch``)."""
    return make_record("data.info", summary, command=command)
