"""Third-party registrations: modules named in an environment variable, imported once.

A registry (attacks, law approaches) imports its built-in entries, then the modules a user
names in its variable (``$ADVSCALE_ATTACK_MODULES``, ``$ADVSCALE_LAW_MODULES``: comma-separated
import names), whose ``register_*`` calls add their entries. Torch-free.
"""

from __future__ import annotations

import importlib
import os

from advscale.errors import AdvscaleError


def import_named_modules(variable: str) -> list[str]:
    """Import every module named in ``$variable`` (comma-separated); their names.

    A module that cannot be imported is one :class:`~advscale.errors.AdvscaleError` line.
    """
    names = [m.strip() for m in os.environ.get(variable, "").split(",") if m.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise AdvscaleError(f"{variable}: cannot import {name!r} ({e})") from None
    return names
