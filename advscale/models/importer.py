"""Published WRN checkpoints (DeepMind- and TRADES-style) → advscale WRNs, no pickled code.

A source file is read with ``torch.load(weights_only=True, map_location="cpu")`` (memory-mapped
for zip files; ``argparse.Namespace``, a plain attribute bag timm's savers store, is the one
extra class allowed) or as a safetensors file. Nothing in it can run code; a file that needs code
to load gives one error line. The layouts (``FORMATS``; docs/models.md):

- ``dm``: DM-Improves-AT's ``train-wa.py`` (``{'model_state_dict': averaged,
  'unaveraged_model_state_dict': raw, ...}``, keys ``module.0.*`` from
  ``DataParallel(Sequential(wrn))``);
- ``llnl``: Bartoldson et al.'s ``train_wa_distributed.py``: the same dictionary, keys ``0.*``
  (no wrapper) or ``module.0.*`` (DDP; then ``auto`` calls it ``dm``: the layouts are one);
- ``rade``: Rade & Moosavi-Dezfooli's HAT trainer: ``{'model_state_dict': ...}`` only, keys
  ``module.0.*``;
- ``timm-adv``: timm-adv-training: ``{'state_dict' | 'model': ..., 'state_dict_ema' |
  'model_ema': ...}`` or a bare state dict, a ``normalize.mean``/``normalize.std`` normaliser
  before ``model.*`` (a TRADES-style or DeepMind-style WRN);
- ``robustbench``: RobustBench's files: a bare state dict or ``{'state_dict': ...}``, optional
  ``module.`` prefix, optional ``mean``/``std`` buffers.

Key names are mapped by :mod:`advscale.models.dm_keys`; depth, width, classes and input channels
come from the tensors. Activation and padding cannot be read from weights: DeepMind-style WRNs
get SiLU (Swish, what DM-Improves-AT, LLNL, RobustBench's DM entries and timm-adv's ``*_dm``
models use) and ``dm`` padding; TRADES-style WRNs get ReLU and symmetric padding (their code
hard-codes both). Mean/std come from normaliser tensors when the file has them, else from the
source code's constants (DeepMind-style: CIFAR-10's, CIFAR-100's for 100 classes; TRADES-style:
none, i.e. mean 0 and std 1), and are recorded in the metadata; the WRN is built with them.
"""

from __future__ import annotations

import argparse
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advscale.core.fileio import file_sha256
from advscale.core.stfile import load_tensors
from advscale.errors import AdvscaleError
from advscale.models.dm_keys import find_backbone, to_advscale
from advscale.models.layers import set_normalisation
from advscale.models.registry import canonical_name, create_model, recorded_kwargs
from advscale.models.wrn import CIFAR10_MEAN, CIFAR10_STD, WideResNet

FORMATS = ("dm", "llnl", "rade", "timm-adv", "robustbench")
WEIGHTS = ("averaged", "unaveraged")
"""Which copy to import when a file holds both (EMA/weight-averaged, or the raw model)."""
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
_DM_FAMILY = ("dm", "llnl", "rade")
# per format: (container key, is it the averaged copy) in order of preference
_CONTAINERS: dict[str, tuple[tuple[str, bool], ...]] = {
    "dm": (("model_state_dict", True), ("unaveraged_model_state_dict", False)),
    "timm-adv": (("state_dict_ema", True), ("model_ema", True), ("state_dict", False),
                 ("model", False)),
    "robustbench": (("state_dict", False),),
}
_CONTAINERS["llnl"] = _CONTAINERS["rade"] = _CONTAINERS["dm"]
_NORM_LEAVES = {"mean": "mean", "mu": "mean", "std": "std", "sigma": "std"}
_DEFAULT_ACT = {"dm": ("silu", "default: DeepMind-style WRNs (DM-Improves-AT, LLNL, RobustBench) "
                               "use SiLU/Swish; weights do not say"),
                "trades": ("relu", "default: TRADES-style WRNs hard-code ReLU; weights do not say")}
_PADDING = {"dm": "dm", "trades": "symmetric"}


@dataclass
class Imported:
    """An imported model: advscale WRN ``state`` (float32) and the checkpoint ``meta``."""

    state: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)


# -- reading the file ---------------------------------------------------------------------------
def _sniff(path: Path) -> str | None:
    """``zip`` (torch.save), ``pickle`` (legacy torch.save), ``safetensors`` or None."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) > 9 and head[8:9] == b"{":
        return "safetensors"
    return None


def read_source(path: str | os.PathLike[str]) -> Any:
    """The object stored in ``path`` (PyTorch or safetensors), loaded without pickled code."""
    p = Path(path)
    if not p.is_file():
        raise AdvscaleError(f"{p}: no such checkpoint")
    kind = _sniff(p)
    if kind == "safetensors":
        return load_tensors(p, what="safetensors checkpoint")[0]
    if kind is None:
        raise AdvscaleError(f"{p}: not a checkpoint (neither a PyTorch file nor safetensors)")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(p, map_location="cpu", weights_only=True, mmap=kind == "zip")
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "unsupported global" in str(e).lower():
            raise AdvscaleError(f"{p}: needs code unpickling; advscale never does that: re-save it "
                                "as a state dict or safetensors") from None
        raise AdvscaleError(f"{p}: not a readable PyTorch checkpoint ({_short(e)})") from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError) as e:
        raise AdvscaleError(f"{p}: not a readable PyTorch checkpoint ({_short(e)})") from None


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:160]


# -- layouts ------------------------------------------------------------------------------------
def _is_state(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _has_normaliser(state: dict[str, Any]) -> bool:
    return any(k.startswith("normalize.") for k in state)


def detect_format(obj: Any) -> str:
    """The layout of a loaded file (module doc); AdvscaleError listing what was looked for."""
    if isinstance(obj, dict) and isinstance(obj.get("model_state_dict"), dict):
        inner = obj["model_state_dict"]
        hit = find_backbone(list(inner)) if _is_state(inner) else None
        if hit is not None and hit[1] == "0.":
            return "llnl"
        return "dm" if "unaveraged_model_state_dict" in obj else "rade"
    if isinstance(obj, dict) and any(k in obj for k in ("state_dict_ema", "model_ema", "model")):
        return "timm-adv"
    state = obj.get("state_dict") if isinstance(obj, dict) and "state_dict" in obj else obj
    if _is_state(state):
        return "timm-adv" if _has_normaliser(state) else "robustbench"
    found = sorted(map(str, obj))[:8] if isinstance(obj, dict) else type(obj).__name__
    raise AdvscaleError(
        "cannot tell the checkpoint's format: looked for 'model_state_dict' (dm, llnl, rade), "
        "'state_dict_ema'/'model'/'normalize.*' (timm-adv), 'state_dict' or a bare state dict "
        f"(robustbench); found {found}")


def unwrap(obj: Any, fmt: str, weights: str = "averaged") -> tuple[dict[str, Any], str, Any]:
    """``(state dict, container, ema)`` of format ``fmt``; ``ema`` is None unless the file holds
    both an averaged and a raw copy (then ``weights`` chooses, and ``ema`` says which came)."""
    if weights not in WEIGHTS:
        raise AdvscaleError(f"unknown weights {weights!r}; choose from {', '.join(WEIGHTS)}",
                            field="weights")
    if fmt not in FORMATS:
        raise AdvscaleError(f"unknown format {fmt!r}; choose from auto, {', '.join(FORMATS)}",
                            field="format")
    held = [(k, avg) for k, avg in _CONTAINERS[fmt] if isinstance(obj, dict) and k in obj]
    if not held:
        if fmt in ("timm-adv", "robustbench") and _is_state(obj):
            return obj, "", None
        keys = ", ".join(k for k, _ in _CONTAINERS[fmt])
        raise AdvscaleError(f"not a {fmt} checkpoint: it has none of {keys}")
    both = {avg for _, avg in held} == {True, False}
    want = weights == "averaged"
    key, avg = next(((k, a) for k, a in held if a == want), held[0]) if both else held[0]
    state = obj[key]
    if not _is_state(state):
        raise AdvscaleError(f"{key!r} is not a state dict of named tensors")
    return state, key, (avg if both else None)


# -- the network inside -------------------------------------------------------------------------
def _vector(t: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in t.detach().double().flatten())


def split_state(state: dict[str, torch.Tensor]) -> tuple[str, str, dict[str, torch.Tensor],
                                                          dict[str, tuple[float, ...]], list[str]]:
    """``(key style, prefix, advscale-named WRN state, normaliser values, dropped keys)``."""
    hit = find_backbone(list(state))
    if hit is None:
        some = ", ".join(list(state)[:4])
        raise AdvscaleError(f"its keys fit no WRN (no init_conv/layer.0.block.0 or conv1/"
                            f"block1.layer.0 keys; found {some}, ...)")
    style, prefix = hit
    inner: dict[str, torch.Tensor] = {}
    norm: dict[str, tuple[float, ...]] = {}
    dropped: list[str] = []
    for k, v in state.items():
        rest = k[len(prefix):] if k.startswith(prefix) else None
        leaf = k.rsplit(".", 1)[-1]
        if leaf in _NORM_LEAVES and (rest is None or "." not in rest) and v.numel() <= 4:
            norm[_NORM_LEAVES[leaf]] = _vector(v)
        elif rest is not None and style == "trades" and rest.startswith("sub_block1."):
            dropped.append(k)  # TRADES' unused sub-block (never called in forward)
        elif rest is None:
            raise AdvscaleError(f"extra key {k!r} outside the WRN ({prefix or 'no prefix'})")
        else:
            inner[rest] = v
    try:
        mapped = to_advscale(inner, style)
    except AdvscaleError as e:
        raise AdvscaleError(f"extra key: {e}") from None
    return style, prefix, mapped, norm, dropped


def infer_arch(state: dict[str, torch.Tensor]) -> tuple[int, int, int, int]:
    """``(depth, width, num_classes, in_chans)`` of an advscale-named WRN state dict."""
    try:
        stem, first, fc = (state[k] for k in ("stem.weight", "blocks.0.conv1.weight",
                                              "fc.weight"))
    except KeyError as e:
        raise AdvscaleError(f"missing key {e.args[0]!r}: cannot infer the WRN's size") from None
    nblocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    if nblocks % 3 or first.shape[0] % 16 or stem.ndim != 4:
        raise AdvscaleError(f"shapes fit no WRN ({nblocks} blocks, first block "
                            f"{tuple(first.shape)})")
    return 6 * (nblocks // 3) + 4, first.shape[0] // 16, fc.shape[0], stem.shape[1]


def _skeleton(depth: int, width: int, num_classes: int, in_chans: int,
              padding: str) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return WideResNet(depth, width, num_classes, in_chans=in_chans,
                          padding=padding).state_dict()


def check_fits(state: dict[str, torch.Tensor], depth: int, width: int, num_classes: int,
               in_chans: int, padding: str) -> dict[str, torch.Tensor]:
    """``state`` completed (zero ``num_batches_tracked``, a zero ``fc.bias`` if the source had
    none) and checked key for key, shape for shape against WRN-depth-width."""
    want = _skeleton(depth, width, num_classes, in_chans, padding)
    out = dict(state)
    for k, ref in want.items():
        if k not in out and (k.endswith("num_batches_tracked") or k == "fc.bias"):
            out[k] = torch.zeros(ref.shape, dtype=ref.dtype)
    name = f"wrn-{depth}-{width}"
    missing, extra = sorted(set(want) - set(out)), sorted(set(out) - set(want))
    if missing or extra:
        raise AdvscaleError(f"keys do not fit {name}: missing {missing[:3]}, extra {extra[:3]}")
    bad = [k for k in want if tuple(want[k].shape) != tuple(out[k].shape)]
    if bad:
        raise AdvscaleError(f"shapes fit no WRN: {bad[0]} is {tuple(out[bad[0]].shape)}, "
                            f"{name} needs {tuple(want[bad[0]].shape)}")
    return out


def _float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def _mean_std(style: str, norm: dict[str, tuple[float, ...]], num_classes: int,
              given: tuple[Any, Any]) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    if given[0] is not None or given[1] is not None:
        if given[0] is None or given[1] is None:
            raise AdvscaleError("give both mean and std, or neither", field="mean,std")
        return tuple(map(float, given[0])), tuple(map(float, given[1])), "given"
    if "mean" in norm and "std" in norm:
        return norm["mean"], norm["std"], "the file's normaliser tensors"
    if style == "trades":
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "none: TRADES-style WRNs normalise nothing"
    if num_classes == 100:
        return CIFAR100_MEAN, CIFAR100_STD, "the DeepMind-style WRN's CIFAR-100 constants"
    return CIFAR10_MEAN, CIFAR10_STD, "the DeepMind-style WRN's CIFAR-10 constants"


DM_DATA_STD = (0.2023, 0.1994, 0.2010)
"""The std of the DM-Improves-AT/LLNL/HAT data modules' CIFAR-10 ``Normalization`` layer
(``--normalize True``), which differs from the WRN's own CIFAR10_STD."""


def _outer_normaliser(m: tuple[float, ...], s: tuple[float, ...], num_classes: int
                      ) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """``Sequential(Normalization(mean, data std), wrn)`` (keys ``module.1.*``) normalises twice:
    ((x - m) / d - m) / s = (x - m(1 + d)) / (d s), one mean/std pair."""
    if num_classes != 10:
        raise AdvscaleError("the WRN sits behind a Normalization layer of unknown statistics "
                            "(not CIFAR-10): give mean and std", field="mean,std")
    mean = tuple(mi * (1 + di) for mi, di in zip(m, DM_DATA_STD, strict=True))
    std = tuple(di * si for di, si in zip(DM_DATA_STD, s, strict=True))
    return mean, std, "the DM repos' CIFAR-10 Normalization layer composed with the WRN's constants"


def _check_arch(arch: str | None, name: str) -> None:
    """``arch`` (a registry name, any spelling) must name the architecture found, ``name``."""
    if arch is not None and canonical_name(arch) != name:
        raise AdvscaleError(f"the file holds a {name}, but arch says {arch}", field="arch")


def import_state(src: str | os.PathLike[str], format: str = "auto", arch: str | None = None,
                 activation: str | None = None, weights: str = "averaged",
                 mean: Any = None, std: Any = None) -> Imported:
    """Read a published checkpoint ``src`` and map it to an advscale WRN (module doc).

    Returns the float32 advscale state dict and the checkpoint metadata (``model``,
    ``activation``, ``padding``, ``mean``/``std``, ``source_*``, ``ema``, ``params``, ...).
    Every failure is one-line AdvscaleError naming ``src``.
    """
    p = Path(src)
    try:
        obj = read_source(p)
        fmt = detect_format(obj) if format == "auto" else format
        state, container, ema = unwrap(obj, fmt, weights)
        style, prefix, mapped, norm, dropped = split_state(state)
        depth, width, num_classes, in_chans = infer_arch(mapped)
        name = f"wrn-{depth}-{width}"
        _check_arch(arch, name)
        padding = _PADDING[style]
        full = _float32(check_fits(mapped, depth, width, num_classes, in_chans, padding))
        m, s, norm_src = _mean_std(style, norm, num_classes, (mean, std))
        if fmt in _DM_FAMILY and prefix.endswith("1.") and norm_src.startswith("the Deep"):
            m, s, norm_src = _outer_normaliser(m, s, num_classes)
    except AdvscaleError as e:
        msg = str(e)
        raise AdvscaleError(msg if msg.startswith(str(p)) else f"{p}: {msg}") from None
    act, act_src = (activation, "given") if activation else _DEFAULT_ACT[style]
    meta: dict[str, Any] = {
        "model": name, "activation": act, "activation_source": act_src,
        "num_classes": num_classes, "padding": padding, "mean": list(m), "std": list(s),
        "normaliser_source": norm_src, "params": _count_params(full),
        "source_file": p.name, "source_sha256": file_sha256(p), "source_format": fmt,
        "source_container": container or "(bare state dict)", "source_key_style": style,
        "ema": ema, "weights": weights if ema is not None else "the file's only copy",
    }
    if in_chans != 3:
        meta["in_chans"] = in_chans
    if dropped:
        meta["dropped_keys"] = dropped
    return Imported(full, meta)


def _count_params(state: dict[str, torch.Tensor]) -> int:
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return sum(v.numel() for k, v in state.items() if not k.endswith(buffers))


def build_model(imported: Imported) -> nn.Module:
    """The imported model in eval mode (weights assigned, never re-initialised), built by the
    registry from the metadata."""
    md = imported.meta
    kw = recorded_kwargs(md)
    with torch.device("meta"):
        model = create_model(str(md["model"]), num_classes=int(md["num_classes"]), **kw)
    model.load_state_dict(imported.state, assign=True)
    set_normalisation(model, kw.get("mean", CIFAR10_MEAN), kw.get("std", CIFAR10_STD))
    return model.eval()
