"""The model layer: a registry filled at import, and checkpoints.

``create_model("wrn-28-10", activation="silu")`` looks a name up: registered names (the papers'
WRN sizes, ``resnet18``, ``preactresnet18``, ...), then families (any ``wrn-D-W``), then any
timm model name. ``list_models()`` lists what is registered. Every module of this package is
imported here, so a model family is one file that registers itself
(:func:`register_model` / :func:`register_family`). Checkpoints
(:mod:`advscale.models.checkpoint`) are safetensors files: nothing is unpickled.
"""

import importlib
import pkgutil

from advscale.models.registry import (
    canonical_name,
    count_parameters,
    create_model,
    is_model,
    list_models,
    model_options,
    register_family,
    register_model,
    takes_option,
    toy_of,
)


def _import_families() -> None:
    """Import every public module of this package (each family registers itself)."""
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_import_families()

__all__ = ["canonical_name", "count_parameters", "create_model", "is_model", "list_models",
           "model_options", "register_family", "register_model", "takes_option", "toy_of"]
