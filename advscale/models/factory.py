"""Build models by name; register the WRN family in timm's registry.

Names: ``wrn-D-W`` (or ``wrn_D_W``) for any depth/width, with ``activation`` silu/relu/gelu;
anything else is passed to ``timm.create_model(name, num_classes=...)``.
"""

from __future__ import annotations

import re
from typing import Any

from advscale.errors import AdvscaleError

_WRN = re.compile(r"^wrn[-_](\d+)[-_](\d+)$")

# The sizes the papers train; registered in timm at import of this module's register_timm().
PAPER_WRNS = ((10, 1), (16, 2), (16, 4), (28, 4), (28, 10), (34, 10), (34, 20), (70, 16),
              (82, 8), (94, 16), (106, 16), (40, 10), (46, 16), (58, 10))


def parse_wrn_name(name: str) -> tuple[int, int] | None:
    """``wrn-28-10`` → (28, 10); None for names that are not WRNs."""
    m = _WRN.match(name.strip().lower())
    return (int(m.group(1)), int(m.group(2))) if m else None


def canonical_name(name: str) -> str:
    """``wrn_28_10`` → ``wrn-28-10``; other names unchanged."""
    dw = parse_wrn_name(name)
    return f"wrn-{dw[0]}-{dw[1]}" if dw else name


def register_timm(depth: int, width: int) -> str:
    """Register ``wrn_{depth}_{width}`` in timm's model registry (idempotent); return its name."""
    import timm
    from timm.models import register_model

    name = f"wrn_{depth}_{width}"
    if name in timm.list_models(name):
        return name

    def _factory(pretrained: bool = False, **kwargs: Any):
        from advscale.models.wrn import WideResNet

        if pretrained:
            raise ValueError("advscale WRNs have no pretrained weights")
        kwargs.pop("pretrained_cfg", None)
        kwargs.pop("pretrained_cfg_overlay", None)
        kwargs.pop("cache_dir", None)
        return WideResNet(depth, width, **kwargs)

    _factory.__name__ = name
    _factory.__qualname__ = name
    _factory.__module__ = "advscale.models.wrn"
    register_model(_factory)
    return name


def register_all() -> None:
    """Register the papers' WRN sizes in timm."""
    for d, w in PAPER_WRNS:
        register_timm(d, w)


def create_model(name: str, num_classes: int = 10, activation: str = "silu", **kwargs: Any):
    """Build a model by name (see module doc). Raises AdvscaleError for unknown names."""
    dw = parse_wrn_name(name)
    if dw is not None:
        from advscale.models.wrn import WideResNet

        try:
            return WideResNet(dw[0], dw[1], num_classes=num_classes, activation=activation,
                              **kwargs)
        except ValueError as e:
            raise AdvscaleError(f"model {name!r}: {e}") from None
    import timm

    if not timm.list_models(name) and not timm.is_model(name):
        raise AdvscaleError(
            f"unknown model {name!r}: use wrn-DEPTH-WIDTH (e.g. wrn-28-10) or a timm model name"
        )
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    except Exception as e:  # timm raises many types for bad kwargs
        raise AdvscaleError(f"model {name!r}: timm could not build it ({e})") from None


def count_parameters(model: Any) -> int:
    """Trainable parameters N (the papers' model size), counting each tensor once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
