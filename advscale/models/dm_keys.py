"""DeepMind-style WRN state-dict keys → advscale's WRN keys (for importing public weights).

The DeepMind-style WideResNet (Gowal et al.'s ``model_zoo.py``, as in DM-Improves-AT and
Bartoldson et al.'s ``core/models/wideresnetwithswish.py``) names its tensors::

    init_conv.weight                                   → stem.weight
    layer.<g>.block.<i>.batchnorm_0.<t>                → blocks.<g·n + i>.bn1.<t>
    layer.<g>.block.<i>.conv_0.weight                  → blocks.<g·n + i>.conv1.weight
    layer.<g>.block.<i>.batchnorm_1.<t>                → blocks.<g·n + i>.bn2.<t>
    layer.<g>.block.<i>.conv_1.weight                  → blocks.<g·n + i>.conv2.weight
    layer.<g>.block.<i>.shortcut.weight                → blocks.<g·n + i>.shortcut.weight
    batchnorm.<t>                                      → bn.<t>
    logits.weight, logits.bias                         → fc.weight, fc.bias

with ``n = (depth - 4) / 6`` blocks per group ``g`` ∈ {0, 1, 2} and ``<t>`` one of ``weight``,
``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``. A ``module.`` prefix
(``DataParallel``/DDP) is dropped. The mapped weights give the reference's logits in an advscale
WRN with ``padding="dm"`` (its default).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from advscale.errors import AdvscaleError

T = TypeVar("T")

_BLOCK = re.compile(r"layer\.(\d+)\.block\.(\d+)\.(batchnorm_0|conv_0|batchnorm_1|conv_1|shortcut)"
                    r"\.(\w+)")
_BLOCK_PARTS = {"batchnorm_0": "bn1", "conv_0": "conv1", "batchnorm_1": "bn2", "conv_1": "conv2",
                "shortcut": "shortcut"}
_TOP = {"init_conv.": "stem.", "batchnorm.": "bn.", "logits.": "fc."}


def _strip(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def blocks_per_group(keys: list[str]) -> int:
    """``n`` = blocks per group of a DeepMind-style state dict (from its group-0 keys)."""
    idx = [int(m.group(2)) for k in keys if (m := _BLOCK.fullmatch(k)) and m.group(1) == "0"]
    if not idx:
        raise AdvscaleError("not a DeepMind-style WRN state dict (no layer.0.block.* keys)")
    return max(idx) + 1


def dm_key_to_advscale(key: str, n: int) -> str:
    """advscale's name of one DeepMind-style key (``n`` blocks per group); AdvscaleError if none."""
    key = _strip(key)
    m = _BLOCK.fullmatch(key)
    if m:
        g, i, part, leaf = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
        if not (0 <= g < 3 and 0 <= i < n):
            raise AdvscaleError(f"DeepMind-style key {key!r}: block ({g}, {i}) outside 3 groups "
                                f"of {n}")
        return f"blocks.{g * n + i}.{_BLOCK_PARTS[part]}.{leaf}"
    for old, new in _TOP.items():
        if key.startswith(old) and "." not in key[len(old):]:
            return new + key[len(old):]
    raise AdvscaleError(f"unknown DeepMind-style WRN key {key!r}")


def dm_to_advscale(state: Mapping[str, T]) -> dict[str, T]:
    """A DeepMind-style WRN state dict renamed for :class:`advscale.models.wrn.WideResNet`."""
    keys = [_strip(k) for k in state]
    n = blocks_per_group(keys)
    out: dict[str, T] = {}
    for k, v in state.items():
        new = dm_key_to_advscale(k, n)
        if new in out:
            raise AdvscaleError(f"DeepMind-style state dict maps two tensors to {new!r}")
        out[new] = v
    return out


# -- TRADES-style (Zagoruyko / Zhang et al.) WRN keys, as in RobustBench's ``wide_resnet.py`` and
# timm-adv-training's ``wide_resnet.py``: the same pre-activation network with other names
# (and symmetric stride-2 padding, ReLU, no normalisation inside):
#
#     conv1.weight                                → stem.weight
#     block<g+1>.layer.<i>.bn1/conv1/bn2/conv2.<t> → blocks.<g·n + i>.bn1/conv1/bn2/conv2.<t>
#     block<g+1>.layer.<i>.convShortcut.weight    → blocks.<g·n + i>.shortcut.weight
#     bn1.<t>, fc.<t>                             → bn.<t>, fc.<t>
_TRADES_BLOCK = re.compile(r"block([123])\.layer\.(\d+)\.(bn1|conv1|bn2|conv2|convShortcut)\.(\w+)")
_TRADES_PARTS = {"bn1": "bn1", "conv1": "conv1", "bn2": "bn2", "conv2": "conv2",
                 "convShortcut": "shortcut"}
_TRADES_TOP = {"conv1.": "stem.", "bn1.": "bn.", "fc.": "fc."}

KEY_STYLES = ("dm", "trades")
"""WRN key-name styles :func:`find_backbone` recognises."""
_STEM = {"dm": "init_conv.weight", "trades": "conv1.weight"}
_FIRST_BLOCK = {"dm": "layer.0.block.0.conv_0.weight", "trades": "block1.layer.0.conv1.weight"}


def trades_key_to_advscale(key: str, n: int) -> str:
    """advscale's name of one TRADES-style key (``n`` blocks per group); AdvscaleError if none."""
    m = _TRADES_BLOCK.fullmatch(key)
    if m:
        g, i, part, leaf = int(m.group(1)) - 1, int(m.group(2)), m.group(3), m.group(4)
        if not 0 <= i < n:
            raise AdvscaleError(f"TRADES-style key {key!r}: block {i} outside groups of {n}")
        return f"blocks.{g * n + i}.{_TRADES_PARTS[part]}.{leaf}"
    for old, new in _TRADES_TOP.items():
        if key.startswith(old) and "." not in key[len(old):]:
            return new + key[len(old):]
    raise AdvscaleError(f"unknown TRADES-style WRN key {key!r}")


def find_backbone(keys: list[str]) -> tuple[str, str] | None:
    """``(style, prefix)`` of the WRN inside a (wrapped) state dict, or None.

    The prefix is whatever wraps the network (``module.``, ``module.0.``, ``0.``, ``model.``,
    ...): the shortest one under which both the stem convolution and the first block's
    convolution are found.
    """
    keyset = set(keys)
    best: tuple[str, str] | None = None
    for style in KEY_STYLES:
        stem = _STEM[style]
        for k in keys:
            if k.endswith(stem) and (k == stem or k[-len(stem) - 1] == "."):
                prefix = k[: -len(stem)]
                if prefix + _FIRST_BLOCK[style] in keyset and (
                        best is None or len(prefix) < len(best[1])):
                    best = (style, prefix)
    return best


def to_advscale(state: Mapping[str, T], style: str) -> dict[str, T]:
    """A prefix-free state dict of key ``style`` (``dm`` or ``trades``) renamed for advscale."""
    if style == "dm":
        return dm_to_advscale(state)
    keys = list(state)
    idx = [int(m.group(2)) for k in keys if (m := _TRADES_BLOCK.fullmatch(k)) and m.group(1) == "1"]
    if not idx:
        raise AdvscaleError("not a TRADES-style WRN state dict (no block1.layer.* keys)")
    n = max(idx) + 1
    out: dict[str, T] = {}
    for k, v in state.items():
        new = trades_key_to_advscale(k, n)
        if new in out:
            raise AdvscaleError(f"TRADES-style state dict maps two tensors to {new!r}")
        out[new] = v
    return out
