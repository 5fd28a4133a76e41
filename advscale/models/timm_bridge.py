"""Make advscale's WRNs available to ``timm.create_model`` too (``wrn_28_10``), on request."""

from __future__ import annotations

from typing import Any

import timm
from timm.models import register_model as timm_register_model

from advscale.models.wrn import PAPER_WRNS, WideResNet


def register_timm(depth: int, width: int) -> str:
    """Register ``wrn_{depth}_{width}`` in timm's model registry (idempotent); return its name."""
    name = f"wrn_{depth}_{width}"
    if name in timm.list_models(name):
        return name

    def _factory(pretrained: bool = False, **kwargs: Any) -> WideResNet:
        if pretrained:
            raise ValueError("advscale WRNs have no pretrained weights")
        for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
            kwargs.pop(k, None)
        return WideResNet(depth, width, **kwargs)

    _factory.__name__ = _factory.__qualname__ = name
    _factory.__module__ = "advscale.models.wrn"
    timm_register_model(_factory)
    return name


def register_all() -> None:
    """Register the papers' WRN sizes in timm."""
    for d, w in PAPER_WRNS:
        register_timm(d, w)
