"""Architecture answers without memory: parameters N and forward FLOPs of a model name.

The model is built on the ``meta`` device (no storage, no arithmetic) and one forward pass of a
``1×C×S×S`` image runs under ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per
multiply-accumulate, convolutions and matmuls only: the papers' convention, the same counter as
``advscale count-flops``). ``advscale model list --params`` and ``advscale model info NAME``
print these as ``model.arch`` records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from advscale.models.registry import (
    count_parameters,
    create_model,
    family_examples,
    family_name,
    list_models,
    model_options,
)


def describe(name: str, model_kwargs: Mapping[str, Any] | None = None, num_classes: int = 10,
             image_size: int = 32, in_chans: int = 3) -> dict[str, Any]:
    """A ``model.arch`` payload: ``params`` (N, trainable) and ``forward_flops_per_image``
    (FLOPs of one ``image_size``² image, eval mode) of model ``name`` built with
    ``model_kwargs``. AdvscaleError for an unknown name or option."""
    kwargs = dict(model_kwargs or {})
    with torch.device("meta"):
        net = create_model(name, num_classes=num_classes, image_size=image_size, **kwargs)
    net.eval()
    x = torch.empty(1, in_chans, image_size, image_size, device="meta")
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(x)
    opts = model_options(name)
    return {"model": name, "family": family_name(name), "params": count_parameters(net),
            "forward_flops_per_image": float(fc.get_total_flops()), "image_size": image_size,
            "num_classes": num_classes, "model_kwargs": kwargs,
            "options": sorted(opts) if opts is not None else None,
            "activation": getattr(net, "activation", None)}


def standard_names(pattern: str = "*") -> list[str]:
    """Registered names matching ``pattern`` plus each family's standard members, sorted,
    without the family patterns themselves."""
    names = set(list_models(pattern, families=False))
    for fam in list_models(pattern, families=True):
        names.update(family_examples(fam))
    return sorted(names)


def describe_all(pattern: str = "*", image_size: int = 32) -> Iterator[dict[str, Any]]:
    """:func:`describe` for every name of :func:`standard_names` (``pattern`` filters)."""
    for name in standard_names(pattern):
        yield describe(name, image_size=image_size)
