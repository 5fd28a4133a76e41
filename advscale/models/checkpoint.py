"""Model checkpoints that load without unpickling code (owned by the model layer).

A model checkpoint is a ``.safetensors`` file: tensors ``model.<param>`` (the weights to
evaluate, i.e. the EMA weights for a trained run) and metadata describing how to rebuild the
model (``advscale_checkpoint`` = format version, ``model``, ``num_classes``, ``model_kwargs``
(the options it was built with), ``mean``/``std`` (its input normalisation), ``activation`` and
``padding`` where the model has them, ``run_id``, ``samples_seen``, ...). Before a model is
built, the metadata is checked against the stored tensors' shapes (the model is built on the
meta device first), so a checkpoint that claims a huge architecture fails with one line instead
of allocating it. The training state needed to resume
(optimiser, EMA, scheduler, sampler, RNG) lives beside it; see :mod:`advscale.training.state`.

A file that is not an advscale checkpoint (a published ``.pt``/``.pth`` state dict, a
safetensors file with DeepMind-style keys) is imported on the fly by
:mod:`advscale.models.importer`: :func:`read_checkpoint_metadata` and :func:`load_for_eval`
return what :func:`import_checkpoint` would have written, so evaluating the source file and the
converted one give the same records apart from the checkpoint path and hash.

Format versions: ``3`` records ``model_kwargs`` and every model's ``mean``/``std``; ``2`` records
a WRN's stride-2 ``padding`` (``dm`` or ``symmetric``, :mod:`advscale.models.wrn`); ``1``
predates it, and its WRNs were padded ``symmetric``, which is how they load (the returned
metadata says ``padding: symmetric``). Older formats rebuild from their top-level options
(:func:`advscale.models.registry.recorded_kwargs`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advscale.core.fileio import file_sha256
from advscale.core.stfile import load_tensors, read_metadata, save_tensors
from advscale.errors import AdvscaleError
from advscale.models.importer import Imported, build_model, import_state
from advscale.models.layers import normalisation_of
from advscale.models.registry import create_model, recorded_kwargs, takes_option

CHECKPOINT_VERSION = "3"
LEGACY_PADDING = "symmetric"
"""The stride-2 padding of WRN checkpoints that do not record one (format ``1``)."""
MODEL_PREFIX = "model."
LAST_NAME = "last.safetensors"
"""File name of a run directory's latest evaluation checkpoint."""


def save_model_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any]
) -> Path:
    """Write ``model``'s state (parameters and buffers) with metadata, atomically.

    ``meta`` names the ``model`` and should carry the ``model_kwargs`` it was built with. The
    model's ``padding`` and ``activation`` (where it has them) and its input ``mean``/``std``
    are recorded from the model itself (a ``meta`` value must agree with it).
    """
    meta = {k: v for k, v in meta.items() if v is not None}
    for key in ("padding", "activation"):
        have = getattr(model, key, None)
        if isinstance(have, str) and meta.setdefault(key, have) != have:
            raise ValueError(f"metadata {key} {meta[key]!r} but the model has {have!r}")
    norm = normalisation_of(model)
    if norm is not None:
        meta["mean"], meta["std"] = norm
    meta.setdefault("model_kwargs", {})
    tensors = {MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    return save_tensors(path, tensors, {"advscale_checkpoint": CHECKPOINT_VERSION, **meta},
                        what="model checkpoint")


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file from a file path or a run directory (its ``last.safetensors``)."""
    p = Path(path)
    if p.is_dir():
        for cand in (p / LAST_NAME, p / "checkpoints" / LAST_NAME):
            if cand.is_file():
                return cand
        raise AdvscaleError(f"{p}: run directory has no {LAST_NAME}")
    if not p.is_file():
        raise AdvscaleError(f"{p}: no such checkpoint")
    return p


def import_checkpoint(src: str | os.PathLike[str], out: str | os.PathLike[str],
                      **options: Any) -> tuple[Path, dict[str, Any]]:
    """Convert a published checkpoint ``src`` to an advscale checkpoint ``out`` (atomically).

    ``options`` go to :func:`advscale.models.importer.import_state` (``format``, ``arch``,
    ``activation``, ``weights``, ``mean``, ``std``). Returns ``(out, metadata written)``; on any
    error nothing is written.
    """
    imported = import_state(src, **options)
    meta = _with_kwargs({"advscale_checkpoint": CHECKPOINT_VERSION, **imported.meta})
    tensors = {MODEL_PREFIX + k: v for k, v in imported.state.items()}
    return save_tensors(out, tensors, meta, what="model checkpoint"), meta


_IMPORT_CACHE: dict[tuple[str, int, int], Imported] = {}
"""The last file imported on the fly (one entry): ``attack`` reads a published file's metadata,
then loads its weights, and the file is read and mapped once for both."""


def _is_advscale(p: Path) -> bool:
    """True for an advscale checkpoint; False for a file to import; errors as before for a
    ``.safetensors`` file that is not one."""
    if p.suffix != ".safetensors":
        try:
            return "advscale_checkpoint" in read_metadata(p)
        except AdvscaleError:
            return False
    return "advscale_checkpoint" in read_metadata(p, what="safetensors checkpoint")


def _import_on_the_fly(p: Path) -> Imported:
    from advscale.models.robustbench import import_leaderboard, leaderboard_id

    if leaderboard_id(p) is not None:  # a RobustBench file named <id>.pt (or an ensemble part)
        return import_leaderboard(p)
    try:
        return import_state(p)
    except AdvscaleError as e:
        if p.suffix == ".safetensors":
            why = str(e).removeprefix(f"{p}: ")
            raise AdvscaleError(f"{p}: not an advscale checkpoint (no advscale metadata) and not "
                                f"an importable one ({why})") from None
        raise


def _cached_import(p: Path) -> Imported:
    """:func:`_import_on_the_fly`, reusing the last import of the same unchanged file."""
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _IMPORT_CACHE:
        _IMPORT_CACHE.clear()
        _IMPORT_CACHE[key] = _import_on_the_fly(p)
    return _IMPORT_CACHE[key]


def _with_kwargs(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with ``model_kwargs``: the options that rebuild its model (JSON values)."""
    kw = {k: list(v) if isinstance(v, tuple) else v for k, v in recorded_kwargs(meta).items()}
    return {**meta, "model_kwargs": meta.get("model_kwargs", kw)}


def _imported_metadata(p: Path) -> dict[str, Any]:
    return _with_kwargs({"advscale_checkpoint": CHECKPOINT_VERSION, **_cached_import(p).meta})


def read_checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of an advscale checkpoint (JSON values decoded); for another checkpoint
    file, the metadata its import would write (module doc)."""
    p = resolve_checkpoint(path)
    if not _is_advscale(p):
        return _imported_metadata(p)
    md = read_metadata(p, what="safetensors checkpoint")
    version = md["advscale_checkpoint"] = str(md["advscale_checkpoint"])
    if not version.isdigit() or int(version) > int(CHECKPOINT_VERSION):
        raise AdvscaleError(f"{p}: checkpoint format {version!r} is newer than this advscale "
                            f"reads ({CHECKPOINT_VERSION}); upgrade advscale")
    if "model" in md and takes_option(str(md["model"]), "padding") and md.get("padding") is None:
        md["padding"] = LEGACY_PADDING
    validate_checkpoint(p, md)
    return md


def _stored_shapes(p: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the ``model.*`` tensors, read from the safetensors header (no tensor data)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            return {k[len(MODEL_PREFIX):]: tuple(f.get_slice(k).get_shape())
                    for k in f.keys() if k.startswith(MODEL_PREFIX)}
    except (SafetensorError, OSError, ValueError) as e:
        raise AdvscaleError(f"{p}: not a safetensors checkpoint ({e})") from None


class _TooBig(Exception):
    """The skeleton being built already holds more elements than the file stores."""


def _skeleton(md: dict[str, Any], budget: int) -> nn.Module:
    """The model the metadata describes, built on the meta device (no memory); building stops
    as soon as its parameters outgrow ``budget`` elements (what the file stores), so a claim
    like ``wrn-4000-1000`` costs no more than the file's own size to refute."""
    name = md.get("model")
    classes = md.get("num_classes", 10)
    if not isinstance(name, str) or not name:
        raise AdvscaleError("metadata names no model")
    if isinstance(classes, float) and classes.is_integer():
        classes = int(classes)
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise AdvscaleError(f"metadata num_classes {classes!r} is not a class count")
    seen = [0]

    def count(module: nn.Module, key: str, param: Any) -> None:
        seen[0] += param.numel() if param is not None else 0
        if seen[0] > budget:
            raise _TooBig

    hook = nn.modules.module.register_module_parameter_registration_hook(count)
    try:
        with torch.device("meta"):
            return create_model(name, num_classes=classes, **recorded_kwargs(md))
    finally:
        hook.remove()


def validate_checkpoint(p: Path, md: dict[str, Any]) -> None:
    """Check the metadata's architecture against the stored weights before anything is built
    for real: the model is built on the meta device and its state-dict keys and shapes must
    equal the file's. One-line AdvscaleError naming ``p`` otherwise."""
    stored = _stored_shapes(p)
    what = f"model {md.get('model')!r} with {md.get('num_classes', 10)} classes"
    budget = sum(math.prod(shape) for shape in stored.values())
    try:
        want = {k: tuple(v.shape) for k, v in _skeleton(md, budget).state_dict().items()}
    except AdvscaleError as e:
        raise AdvscaleError(f"{p}: {e}") from None
    except _TooBig:
        raise AdvscaleError(f"{p}: the metadata's {what} has more parameters than the file "
                            f"stores ({budget:,} values)") from None
    wrapped = "model."  # a timm model behind advscale's normaliser (layers.Normalized)
    if want and all(k.startswith(wrapped) for k in want) and not any(
            k.startswith(wrapped) for k in stored):
        want = {k[len(wrapped):]: v for k, v in want.items()}  # saved before the wrapper
    missing, extra = sorted(set(want) - set(stored)), sorted(set(stored) - set(want))
    if missing or extra:
        raise AdvscaleError(f"{p}: the metadata's {what} does not fit the stored weights "
                            f"(missing {missing[:2]}, unexpected {extra[:2]})")
    bad = next((k for k in want if want[k] != stored[k]), None)
    if bad is not None:
        raise AdvscaleError(f"{p}: the metadata's {what} does not fit the stored weights "
                            f"({bad} is {stored[bad]} in the file, {want[bad]} in the model)")


def load_for_eval(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint (file or run dir) in eval mode, fp32, on ``device``.

    Returns ``(model, meta)``; ``meta`` has the checkpoint metadata (with a WRN's ``padding``,
    ``symmetric`` for format 1) plus ``checkpoint_path`` and ``checkpoint_sha256``.
    """
    p = resolve_checkpoint(path)
    if not _is_advscale(p):
        imported = _cached_import(p)
        _IMPORT_CACHE.clear()  # the weights now live in the model: hold no second copy
        model = _build_imported(imported).to(device=device, dtype=torch.float32).eval()
        meta = {**_with_kwargs({"advscale_checkpoint": CHECKPOINT_VERSION, **imported.meta}),
                "checkpoint_path": str(p), "checkpoint_sha256": file_sha256(p)}
        return model, meta
    meta = read_checkpoint_metadata(p)  # validated against the stored shapes
    model = create_model(str(meta["model"]), num_classes=int(meta.get("num_classes", 10)),
                         **recorded_kwargs(meta))
    state, _ = load_tensors(p, what="safetensors checkpoint")
    state = {k[len(MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise AdvscaleError(f"{p}: weights do not fit model {meta['model']!r} ({e})") from None
    model = model.to(device=device, dtype=torch.float32).eval()
    meta["checkpoint_path"] = str(p)
    meta["checkpoint_sha256"] = file_sha256(p)
    return model, meta


def _build_imported(imported: Imported) -> nn.Module:
    """The model of a file imported on the fly: a WRN, or a RobustBench leaderboard family."""
    if imported.meta.get("robustbench_layout") not in (None, "dm-wrn"):
        from advscale.models.robustbench import build_leaderboard_model

        return build_leaderboard_model(imported.meta, imported.state)
    return build_model(imported)


_LEADERBOARD_FIELDS = ("robustbench_id", "robustbench_layout", "architecture", "preprocessing",
                       "number_forward_passes", "missing_keys", "dropped_keys")
"""Metadata of a RobustBench import (:mod:`advscale.models.robustbench`) that ``model info``
shows under ``source``."""


def checkpoint_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What ``advscale model info`` prints: architecture, parameters, activation, padding,
    whether the weights are EMA, where they came from (a ``model.info`` record's payload)."""
    p = resolve_checkpoint(path)
    md = read_checkpoint_metadata(p)
    params = md.get("params")
    if not isinstance(params, int):
        buffers = ("running_mean", "running_var", "num_batches_tracked")
        params = sum(math.prod(shape) for k, shape in _stored_shapes(p).items()
                     if not k.endswith(buffers))
    imported = md.get("source_format") is not None
    source = ({"file": md.get("source_file"), "sha256": md.get("source_sha256"),
               "format": md.get("source_format"), "container": md.get("source_container"),
               "key_style": md.get("source_key_style"),
               **{k: md[k] for k in _LEADERBOARD_FIELDS if k in md}} if imported
              else {"format": "advscale", "run_id": md.get("run_id"),
                    "samples_seen": md.get("samples_seen")})
    ema = md.get("ema") if imported else True  # advscale runs save their EMA weights
    return {"path": str(p), "sha256": file_sha256(p),
            "checkpoint_format": md["advscale_checkpoint"],
            "imported_on_the_fly": not _is_advscale(p), "model": md.get("model"), "params": params,
            "num_classes": md.get("num_classes", 10), "activation": md.get("activation"),
            "activation_source": md.get("activation_source", "recorded by advscale train"),
            "padding": md.get("padding"), "mean": md.get("mean"), "std": md.get("std"),
            "ema": ema, "source": source, "model_kwargs": recorded_kwargs(md)}
