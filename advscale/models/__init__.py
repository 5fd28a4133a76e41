"""The model layer: a registry filled at import, and checkpoints.

``create_model("wrn-28-10", activation="silu")`` looks a name up: the papers' WRN sizes are
registered by name, any other ``wrn-D-W`` matches the WRN family, anything else goes to
``timm.create_model`` with 10 classes. ``list_models()`` lists what is registered.
Checkpoints (:mod:`advscale.models.checkpoint`) are safetensors files: nothing is unpickled.
"""

from advscale.models import wrn  # noqa: F401  (fills the registry)
from advscale.models.registry import (
    canonical_name,
    count_parameters,
    create_model,
    is_model,
    list_models,
    register_family,
    register_model,
)

__all__ = ["canonical_name", "count_parameters", "create_model", "is_model", "list_models",
           "register_family", "register_model"]
