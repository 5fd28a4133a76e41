"""advscale: scaling laws for adversarial robustness.

A library first; ``advscale.cli`` is a thin typer adapter over its API. The public API is one
function per command family, loaded on first use so ``import advscale`` stays light (no
torch)::

    import advscale
    records = advscale.train("train.h5", "runs/a", model="wrn-10-1", samples=4096)
    law = advscale.fit(advscale.read_records("runs/*/records.jsonl"), approach="2")
    advscale.predict(law, flops=1e18)

See ``docs/python-api.md``. Lower layers (``advscale.models``, ``advscale.attacks``, ...) are
public too; ``ARCHITECTURE.md`` maps them.
"""

from __future__ import annotations

from advscale.errors import AdvscaleError, install_interrupt_hook

install_interrupt_hook()  # only in the `advscale` command: a Ctrl-C while importing is one line

from advscale.version import __version__  # noqa: E402

API = ("dataset", "gen_synthetic", "train", "attack", "count_flops", "measure_energy", "fit",
       "predict", "report", "validity_study", "model", "tables", "read_records")
"""The functions of :mod:`advscale.api` (one per command family, and ``read_records``),
re-exported here on first use."""

__all__ = ["AdvscaleError", "__version__", *API]


def __getattr__(name: str) -> object:
    if name in API:
        from advscale import api

        return getattr(api, name)
    raise AttributeError(f"module 'advscale' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
