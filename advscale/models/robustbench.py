"""RobustBench's CIFAR-10 L∞ leaderboard models in: the id table and their file layouts.

RobustBench keeps a model's weights at ``<model_dir>/cifar10/Linf/<id>.pt`` (ensembles:
``<id>.pt_m<i>.pt``, one file per part), a bare state dict or ``{'state_dict': ...}``, with
``module.`` (and, for single files, ``model.``) prefixes it strips. :data:`LEADERBOARD` says, for
each id of the top 15 (snapshot 2025-03) and the XCiTs, which advscale family rebuilds it, how its
parts map onto the family's keys, and the leaderboard's own numbers (to compare a re-evaluation
with). :func:`import_leaderboard` reads the file(s) without unpickling code, infers the
architecture's size from the tensors (so reduced-size copies import too), checks the keys
strictly (one error line listing the missing and unexpected keys and the layout it looked for;
``allow_missing`` imports anyway, keeping the family's fresh initialisation for missing tensors,
and records both lists), and returns the advscale state with metadata (id, preprocessing,
source files and hashes).

Families: DeepMind WRNs become advscale WRNs (``wrn-D-W``, SiLU, ``dm`` padding; keys renamed by
:mod:`advscale.models.dm_keys`); the others keep RobustBench's key names in
:mod:`advscale.models.rawrn` (RaWRN, MeanSparse), :mod:`~advscale.models.robust_resnet`
(WRN-A4), :mod:`~advscale.models.mixed` (MixedNUTS, Bai et al. 2023, with
:mod:`~advscale.models.bit`) and :mod:`~advscale.models.xcit_cifar`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advscale.core.fileio import file_sha256
from advscale.errors import AdvscaleError
from advscale.models.importer import Imported, read_source
from advscale.models.registry import count_parameters, create_model


@dataclass(frozen=True)
class Entry:
    """One leaderboard model: its ``layout`` (a key of :data:`LAYOUTS`), the leaderboard's
    ``architecture`` text, clean / AutoAttack accuracy (%), the "best known" (e.g. BPDA) number
    when it differs, and ``number_forward_passes``."""

    id: str
    rank: int | None
    layout: str
    architecture: str
    clean_acc: float
    autoattack_acc: float
    external: float | None = None
    forward_passes: int = 1


LEADERBOARD: dict[str, Entry] = {e.id: e for e in (
    Entry("Bartoldson2024Adversarial_WRN-94-16", 1, "dm-wrn", "WideResNet-94-16", 93.68, 73.71),
    Entry("Amini2024MeanSparse_S-WRN-94-16", 2, "meansparse", "MeanSparse WideResNet-94-16",
          93.60, 75.28, 73.10),
    Entry("Bartoldson2024Adversarial_WRN-82-8", 3, "dm-wrn", "WideResNet-82-8", 93.11, 71.59),
    Entry("Peng2023Robust", 4, "rawrn", "RaWideResNet-70-16", 93.27, 71.07),
    Entry("Wang2023Better_WRN-70-16", 5, "dm-wrn", "WideResNet-70-16", 93.25, 70.69),
    Entry("Bai2024MixedNUTS", 6, "mixednuts", "ResNet-152 + WideResNet-70-16", 95.19, 70.08,
          69.71, 2),
    Entry("Amini2024MeanSparse_Ra_WRN_70_16", 7, "meansparse", "MeanSparse RaWideResNet-70-16",
          93.24, 72.08, 68.94),
    Entry("Bai2023Improving_edm", 8, "bai2023", "ResNet-152 + WideResNet-70-16 + mixing network",
          95.23, 68.06, None, 2),
    Entry("Cui2023Decoupled_WRN-28-10", 9, "dm-wrn", "WideResNet-28-10", 92.16, 67.73),
    Entry("Wang2023Better_WRN-28-10", 10, "dm-wrn", "WideResNet-28-10", 92.44, 67.31),
    Entry("Rebuffi2021Fixing_70_16_cutmix_extra", 11, "dm-wrn", "WideResNet-70-16", 92.23,
          66.58, 66.56),
    Entry("Gowal2021Improving_70_16_ddpm_100m", 12, "dm-wrn", "WideResNet-70-16", 88.74, 66.11,
          66.10),
    Entry("Gowal2020Uncovering_70_16_extra", 13, "dm-wrn", "WideResNet-70-16", 91.10, 65.88,
          65.87),
    Entry("Huang2022Revisiting_WRN-A4", 14, "wrn-a4", "WideResNet-A4", 91.58, 65.79),
    Entry("Rebuffi2021Fixing_106_16_cutmix_ddpm", 15, "dm-wrn", "WideResNet-106-16", 88.50,
          64.64, 64.58),
    Entry("Debenedetti2022Light_XCiT-S12", None, "xcit", "XCiT-S12", 90.06, 56.14),
    Entry("Debenedetti2022Light_XCiT-M12", None, "xcit", "XCiT-M12", 91.30, 57.27),
    Entry("Debenedetti2022Light_XCiT-L12", None, "xcit", "XCiT-L12", 91.73, 57.58),
)}
"""The built-in table: RobustBench CIFAR-10 L∞ top 15 (2025-03) and the XCiTs."""

PARTS: dict[str, tuple[str, ...]] = {
    "mixednuts": ("std_model.", "rob_model."),
    "bai2023": ("models.0.", "models.1.", "policy_net.|bn."),
}
"""Ensemble layouts: the key prefix each file ``<id>.pt_m<i>.pt`` goes under (``a.|b.``: the
file holds ``{'model': ..., 'bn': ...}`` for prefixes a. and b.)."""
PREPROCESSING = ("none outside the model: inputs are [0, 1] RGB images, 32×32; the model "
                 "normalises inside")


def registry_name(entry: Entry) -> str:
    """The registered advscale model that is ``entry`` at its published size."""
    if entry.layout == "dm-wrn":
        d, w = entry.architecture.rsplit("-", 2)[-2:]
        return f"wrn-{d}-{w}"
    if entry.layout == "meansparse":
        return "ms-rawrn-70-16" if "Ra" in entry.architecture else "ms-wrn-94-16"
    if entry.layout == "xcit":
        return f"xcit-{entry.architecture.split('-')[-1].lower()}-cifar"
    return {"rawrn": "rawrn-70-16", "wrn-a4": "wrn-a4", "mixednuts": "mixednuts",
            "bai2023": "bai2023-composite"}[entry.layout]


def _id_of_path(p: Path) -> str | None:
    name = re.sub(r"\.pt_m\d+\.pt$", ".pt", p.name)
    stem = name[:-3] if name.endswith(".pt") else p.stem
    return stem if stem in LEADERBOARD else None


def leaderboard_id(path: str | os.PathLike[str], given: str | None = None) -> str | None:
    """The leaderboard id of a file: ``given`` (checked against the table), else read from a
    RobustBench file name ``<id>.pt`` / ``<id>.pt_m<i>.pt``, else None."""
    if given is not None:
        if given not in LEADERBOARD:
            import difflib

            close = difflib.get_close_matches(given, list(LEADERBOARD), n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise AdvscaleError(f"unknown RobustBench id {given!r} (the built-in table holds "
                                f"the CIFAR-10 L∞ top 15 and the XCiTs){hint}",
                                field="robustbench_id")
        return given
    return _id_of_path(Path(path))


def part_files(path: str | os.PathLike[str], entry: Entry) -> list[Path]:
    """The file(s) of ``entry``: the given one, or an ensemble's ``<id>.pt_m<i>.pt`` parts
    (``path`` may name ``<id>.pt`` or any part)."""
    p = Path(path)
    parts = PARTS.get(entry.layout)
    if parts is None:
        return [p]
    base = re.sub(r"_m\d+\.pt$", "", str(p))
    files = [Path(f"{base}_m{i}.pt") for i in range(len(parts))]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise AdvscaleError(f"{entry.id} is an ensemble of {len(parts)} files "
                            f"(<id>.pt_m0.pt ...); missing {', '.join(absent)}")
    return files


def _strip(state: dict[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in state.items():
        for pre in prefixes:
            if k.startswith(pre):
                k = k[len(pre):]
        out[k] = v
    return out


def _tensors(obj: Any, where: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not (isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor)
                                                  for v in obj.values())):
        raise AdvscaleError(f"{where}: not a state dict of named tensors")
    return {str(k): v for k, v in obj.items()}


def read_parts(files: list[Path], entry: Entry) -> dict[str, torch.Tensor]:
    """One state dict with the parts' keys under the layout's prefixes (RobustBench's stripping
    of ``module.``/``model.``: module doc)."""
    parts = PARTS.get(entry.layout)
    if parts is None:
        raw = read_source(files[0])
        keep_model = entry.layout == "xcit"  # the XCiT's own keys live under model.
        return _strip(_tensors(raw, str(files[0])),
                      ("module.",) if keep_model else ("module.", "model."))
    state: dict[str, torch.Tensor] = {}
    for f, prefix in zip(files, parts, strict=True):
        raw = read_source(f)
        if "|" in prefix:
            if not isinstance(raw, dict):
                raise AdvscaleError(f"{f}: expected {{'model': ..., 'bn': ...}}")
            for key, pre in zip(("model", "bn"), prefix.split("|"), strict=True):
                sub = _strip(_tensors(raw.get(key), f"{f}[{key!r}]"), ("module.",))
                state.update({pre + k: v for k, v in sub.items()})
        else:
            sub = _strip(_tensors(raw, str(f)), ("module.",))
            state.update({prefix + k: v for k, v in sub.items()})
    return state


# -- the architecture's size, read from the tensors ----------------------------------------------
def _indices(state: dict[str, Any], pattern: str) -> dict[int, int]:
    """``{group: 1 + highest index}`` for keys matching ``pattern`` (two integer groups)."""
    out: dict[int, int] = {}
    rx = re.compile(pattern)
    for k in state:
        m = rx.match(k)
        if m:
            g, i = int(m.group(1)), int(m.group(2))
            out[g] = max(out.get(g, 0), i + 1)
    return out


def _need(state: dict[str, Any], key: str, layout: str) -> torch.Tensor:
    if key not in state:
        raise AdvscaleError(f"keys do not fit the {layout} layout: no {key!r} to read its size "
                            "from")
    return state[key]


def dm_config(state: dict[str, Any], pre: str = "", layout: str = "dm-wrn") -> dict[str, Any]:
    """:class:`~advscale.models.rawrn.DMPreActNet` configuration of keys under ``pre``."""
    n = _indices(state, re.escape(pre) + r"layer\.(\d)\.block\.(\d+)\.")
    if sorted(n) != [0, 1, 2]:
        raise AdvscaleError(f"keys do not fit the {layout} layout: no {pre}layer.0-2.block.* "
                            "keys")
    conv = [_need(state, f"{pre}layer.{g}.block.0.conv_0.weight", layout) for g in range(3)]
    widths = [int(c.shape[0]) for c in conv]
    stem = int(_need(state, f"{pre}init_conv.weight", layout).shape[0])
    cins = [stem, *widths[:2]]
    se = state.get(f"{pre}layer.0.block.0.se.fc1.weight")
    return {"stem_width": stem, "depths": [n[g] for g in range(3)], "widths": widths,
            "groups": [cins[g] // int(conv[g].shape[1]) for g in range(3)],
            "se_ratio": None if se is None else int(se.shape[0]) / widths[0],
            "meansparse": any(".meansparse_" in k or k.startswith(f"{pre}meansparse_")
                              for k in state if k.startswith(pre)),
            "activation": "silu"}


def bit_config(state: dict[str, Any], pre: str, layout: str) -> dict[str, Any]:
    """:class:`~advscale.models.bit.BiTResNetV2` configuration of keys under ``pre``."""
    n = _indices(state, re.escape(pre) + r"body\.block(\d)\.unit(\d+)\.")
    if sorted(n) != [1, 2, 3, 4]:
        raise AdvscaleError(f"keys do not fit the {layout} layout: no {pre}body.block1-4 keys")
    wf = int(_need(state, f"{pre}root.conv.weight", layout).shape[0]) // 64
    return {"units": [n[s] - 1 for s in (1, 2, 3, 4)], "wf": wf,
            "norm_params": f"{pre}mean" in state}


def _classes(state: dict[str, Any], key: str) -> int:
    """Classes from the classifier's weight; 10 (CIFAR-10) when that key is absent, which the
    key check then reports."""
    return int(state[key].shape[0]) if key in state else 10


def _config(layout: str, state: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    """``(registered model name, configuration, classes)`` of a layout's state dict."""
    if layout in ("dm-wrn", "meansparse", "rawrn"):
        return "dm-preact", dm_config(state, "", layout), _classes(state, "logits.weight")
    if layout == "wrn-a4":
        n = _indices(state, r"blocks\.(\d)\.layer\.(\d+)\.")
        chans = [int(_need(state, "stem_conv.weight", layout).shape[0])] + [
            int(_need(state, f"blocks.{s}.layer.0.conv1.weight", layout).shape[0])
            for s in range(3)]
        return "robust-preact", {"channels": chans, "depths": [n.get(s, 0) for s in range(3)],
                                 "activation": "silu"}, _classes(state, "fc.weight")
    if layout == "xcit":
        depth = len({k.split(".")[2] for k in state if k.startswith("model.blocks.")})
        cls = _need(state, "model.cls_token", layout)
        heads = _need(state, "model.blocks.0.attn.temperature", layout)
        return "xcit-cifar", {"embed_dim": int(cls.shape[-1]), "depth": depth,
                              "num_heads": int(heads.shape[0])}, _classes(
            state, "model.head.weight")
    std_pre, rob_pre = PARTS[layout][:2]
    std = bit_config(state, std_pre, layout)
    if layout == "mixednuts":
        std["resize"] = True
    classes = _classes(state, f"{std_pre}head.conv.weight")
    return ("mixednuts" if layout == "mixednuts" else "bai2023-composite",
            {"std_config": std, "rob_config": dm_config(state, rob_pre, layout)}, classes)


# -- strict key check, import and rebuild -------------------------------------------------------
def _listing(keys: list[str], limit: int = 6) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return "[" + ", ".join(keys[:limit]) + "]" + more


def _skeleton(name: str, cfg: dict[str, Any], classes: int) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return create_model(name, num_classes=classes, **cfg).state_dict()


def _normaliser(layout: str, state: dict[str, torch.Tensor], cfg: dict[str, Any]) -> list[str]:
    """Move WRN-A4's optional ``mu``/``sigma`` into the configuration; the keys used."""
    used = [k for k in ("mu", "sigma") if layout == "wrn-a4" and k in state]
    if len(used) == 2:
        cfg["mean"] = [float(v) for v in state.pop("mu").flatten()]
        cfg["std"] = [float(v) for v in state.pop("sigma").flatten()]
    return used


def check_keys(state: dict[str, torch.Tensor], want: dict[str, torch.Tensor], entry: Entry,
               allow_missing: bool) -> tuple[list[str], list[str]]:
    """``(missing, unexpected)`` keys of ``state`` against ``want`` (zero-filling absent
    ``num_batches_tracked``); AdvscaleError with both lists unless ``allow_missing``; shapes must
    agree."""
    for k, ref in want.items():
        if k not in state and k.endswith("num_batches_tracked"):
            state[k] = torch.zeros(ref.shape, dtype=ref.dtype)
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if (missing or extra) and not allow_missing:
        raise AdvscaleError(f"keys do not fit {entry.id} (layout {entry.layout}): missing "
                            f"{_listing(missing)}, unexpected {_listing(extra)}")
    bad = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    if bad:
        raise AdvscaleError(f"shapes do not fit {entry.id} (layout {entry.layout}): {bad[0]} is "
                            f"{tuple(state[bad[0]].shape)}, the layout needs "
                            f"{tuple(want[bad[0]].shape)}")
    return missing, extra


def _fill_missing(name: str, cfg: dict[str, Any], classes: int, state: dict[str, torch.Tensor],
                  missing: list[str], extra: list[str]) -> dict[str, torch.Tensor]:
    """``state`` without ``extra`` keys and with ``missing`` ones from a fresh model."""
    out = {k: v for k, v in state.items() if k not in set(extra)}
    if missing:
        fresh = create_model(name, num_classes=classes, **cfg).state_dict()
        out.update({k: fresh[k] for k in missing})
    return out


def _as_wrn(state: dict[str, torch.Tensor], cfg: dict[str, Any],
            classes: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A DeepMind WRN's RobustBench state as an advscale WRN (keys renamed, SiLU, dm padding)."""
    from advscale.models.dm_keys import dm_to_advscale
    from advscale.models.wrn import CIFAR10_MEAN, CIFAR10_STD

    n, w = cfg["depths"][0], cfg["widths"][0] // 16
    if cfg["stem_width"] != 16 or cfg["depths"] != [n] * 3 or cfg["widths"] != [
            16 * w, 32 * w, 64 * w] or cfg["se_ratio"] or cfg["meansparse"]:
        raise AdvscaleError(f"keys fit no DeepMind WRN (stem {cfg['stem_width']}, widths "
                            f"{cfg['widths']}, depths {cfg['depths']})")
    meta = {"model": f"wrn-{6 * n + 4}-{w}", "activation": "silu",
            "activation_source": "RobustBench builds these WRNs with SiLU/Swish",
            "padding": "dm", "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD),
            "in_chans": 3}
    return dm_to_advscale(state), meta


def import_leaderboard(path: str | os.PathLike[str], robustbench_id: str | None = None,
                       allow_missing: bool = False) -> Imported:
    """Read a RobustBench leaderboard checkpoint (module doc) into an advscale state + metadata.

    ``robustbench_id`` picks the table entry; without it the file name must be ``<id>.pt`` (or
    an ensemble part). AdvscaleError (one line) on an unknown id, absent parts, or keys that do
    not fit (unless ``allow_missing``).
    """
    rid = leaderboard_id(path, robustbench_id)
    if rid is None:
        raise AdvscaleError(f"{path}: cannot tell which RobustBench model this is (the file is "
                            "not named <id>.pt); give its id", field="robustbench_id")
    entry = LEADERBOARD[rid]
    files = part_files(path, entry)
    state = read_parts(files, entry)
    name, cfg, classes = _config(entry.layout, state)
    norm_keys = _normaliser(entry.layout, state, cfg)
    missing, extra = check_keys(state, _skeleton(name, cfg, classes), entry, allow_missing)
    state = _fill_missing(name, cfg, classes, state, missing, extra)
    state = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    meta: dict[str, Any] = {"model": name, "model_kwargs": cfg, "activation": "silu"}
    if entry.layout == "dm-wrn":
        state, meta = _as_wrn(state, cfg, classes)
    meta.update({
        "num_classes": classes, "robustbench_id": rid, "robustbench_rank": entry.rank,
        "robustbench_layout": entry.layout, "architecture": entry.architecture,
        "preprocessing": PREPROCESSING, "source_format": "robustbench",
        "source_file": str(files[0]) if len(files) == 1 else [str(f) for f in files],
        "source_sha256": (file_sha256(files[0]) if len(files) == 1
                          else [file_sha256(f) for f in files]),
        "source_container": "state_dict", "source_key_style": entry.layout,
        "number_forward_passes": entry.forward_passes, "ema": None,
        "params": sum(v.numel() for k, v in state.items()
                      if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
                      and ".meansparse" not in k and not k.startswith("meansparse")),
        "missing_keys": missing, "dropped_keys": extra, "normaliser_keys": norm_keys})
    return Imported(state, meta)


def build_leaderboard_model(meta: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    """The model of imported ``meta`` (a non-WRN family) with ``state``, eval mode, on CPU."""
    with torch.device("meta"):
        model = create_model(str(meta["model"]), num_classes=int(meta.get("num_classes", 10)),
                             **dict(meta.get("model_kwargs") or {}))
    model = model.to_empty(device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise AdvscaleError(f"weights do not fit model {meta['model']!r} "
                            f"({' '.join(str(e).split())[:300]})") from None
    for m in model.modules():
        if hasattr(m, "reset_constants"):
            m.reset_constants()
    return model.eval()


def param_count(model: nn.Module) -> int:
    """Parameters N of a leaderboard model (every parameter tensor, frozen ones included)."""
    return count_parameters(model) or sum(p.numel() for p in model.parameters())


def import_leaderboard_checkpoint(src: str | os.PathLike[str], out: str | os.PathLike[str],
                                  robustbench_id: str | None = None,
                                  allow_missing: bool = False) -> tuple[Path, dict[str, Any]]:
    """Convert a RobustBench checkpoint to an advscale checkpoint ``out`` (atomically);
    returns ``(out, metadata written)``. Nothing is written on error."""
    from advscale.core.stfile import save_tensors
    from advscale.models.checkpoint import CHECKPOINT_VERSION, MODEL_PREFIX

    imported = import_leaderboard(src, robustbench_id, allow_missing)
    meta = {"advscale_checkpoint": CHECKPOINT_VERSION, **imported.meta}
    tensors = {MODEL_PREFIX + k: v for k, v in imported.state.items()}
    return save_tensors(out, tensors, meta, what="model checkpoint"), meta
