"""``advscale.model``: registered models, importing published checkpoints, checkpoint info."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from advscale.errors import AdvscaleError

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)

__all__ = ["model"]


def model(action: str, *args: Any, **options: Any) -> Any:
    """One ``model`` action.

    * ``model("list", pattern="*", params=False)``: registered model names (families as
      patterns, e.g. ``wrn-D-W``); any timm name works too. With ``params``: one
      ``model.arch`` record per registered name (and each family's standard sizes): N and
      forward FLOPs per 32×32 image, counted on the meta device.
    * ``model("import", src, out, fmt="auto", arch=None, activation=None, weights="averaged",
      mean=None, std=None)``: a published WRN checkpoint (dm, llnl, rade, timm-adv,
      robustbench) converted to an advscale one; its ``model.info`` record. ``mean``/``std``:
      three numbers (or ``"R,G,B"``).
    * ``model("info", ckpt, model_kwargs=None, num_classes=10)``: the ``model.info`` record
      of a checkpoint, run directory or published file; for a model name (registered or timm)
      its ``model.arch`` record (N and forward FLOPs per 32×32 image).
    """
    actions: dict[str, Callable[..., Any]] = {"list": list_model_names,
                                              "import": import_model, "info": model_info}
    if action not in actions:
        raise AdvscaleError(f"model: unknown action {action!r}; choose from "
                            f"{', '.join(actions)}", field="action")
    return actions[action](*args, **options)


def list_model_names(pattern: str = "*", params: bool = False) -> list[Any]:
    """``model("list")``: see :func:`model`."""
    if params:
        from advscale.models.summary import describe_all  # torch: only when called
        from advscale.records import make_record

        out = []
        for payload in describe_all(pattern):
            log.info(f"{payload['model']:<16} N={payload['params']:>13,}  "
                     f"{payload['forward_flops_per_image'] / 1e9:10.3f} GFLOPs/image")
            out.append(make_record("model.arch", payload,
                                   command=f"advscale model list {pattern} --params"))
        return out
    from advscale.models import list_models  # torch: only when called

    return list(list_models(pattern))


def _triple(value: str | Sequence[float] | None, field: str) -> list[float] | None:
    if value is None:
        return None
    try:
        values = [float(v) for v in (value.split(",") if isinstance(value, str) else value)]
    except ValueError:
        values = []
    if len(values) != 3:
        raise AdvscaleError(f"{field} {value!r}: give three comma-separated numbers, e.g. "
                            "0.4914,0.4822,0.4465", field=field)
    return values


def import_model(src: PathLike, out: PathLike, *, fmt: str = "auto", arch: str | None = None,
                 activation: str | None = None, weights: str = "averaged",
                 mean: str | Sequence[float] | None = None,
                 std: str | Sequence[float] | None = None, force: bool = False,
                 robustbench_id: str | None = None, allow_missing: bool = False
                 ) -> dict[str, Any]:
    """``model("import", ...)``: see :func:`model` (an existing ``out`` only with ``force``)."""
    from advscale.core.outputs import check_output
    from advscale.models.checkpoint import checkpoint_info, import_checkpoint
    from advscale.records import make_record

    check_output(out, [src], force=force)
    from advscale.models.robustbench import import_leaderboard_checkpoint, leaderboard_id

    if fmt in ("auto", "robustbench") and leaderboard_id(src, robustbench_id) is not None:
        path, meta = import_leaderboard_checkpoint(src, out, robustbench_id, allow_missing)
        dropped = meta["missing_keys"] or meta["dropped_keys"]
        log.info(f"{src} (RobustBench {meta['robustbench_id']}, layout "
                 f"{meta['robustbench_layout']}) → {path}: {meta['model']}, "
                 f"{meta['params']:,} parameters"
                 + (f"; missing {meta['missing_keys']}, dropped {meta['dropped_keys']}"
                    if dropped else ""))
        return make_record("model.info", checkpoint_info(path),
                           command=f"advscale model import {src} -o {out}")
    if allow_missing:
        raise AdvscaleError("allow_missing applies to RobustBench leaderboard files "
                            "(robustbench_id)", field="allow_missing,robustbench_id")
    path, meta = import_checkpoint(src, out, format=fmt, arch=arch, activation=activation,
                                   weights=weights, mean=_triple(mean, "mean"),
                                   std=_triple(std, "std"))
    log.info(f"{src} ({meta['source_format']}) → {path}: {meta['model']}, {meta['params']:,} "
             f"parameters, activation {meta['activation']}, padding {meta['padding']}")
    dropped = meta.get("dropped_keys") or []
    if dropped:
        shown = ", ".join(dropped[:4]) + (f", ... ({len(dropped)} in all)" if len(dropped) > 4
                                          else "")
        log.info(f"dropped {shown}: the TRADES-style WideResNet's sub_block1, built but never "
                 "called in its forward pass, so the logits do not depend on it (listed in the "
                 "checkpoint's metadata as dropped_keys)")
    return make_record("model.info", checkpoint_info(path),
                       command=f"advscale model import {src} -o {out}")


def model_info(ckpt: PathLike, model_kwargs: str | dict[str, Any] | None = None,
               num_classes: int = 10) -> dict[str, Any]:
    """``model("info", ...)``: see :func:`model`."""
    from pathlib import Path

    from advscale.core.options import parse_kwargs
    from advscale.models.checkpoint import checkpoint_info
    from advscale.records import make_record

    path = Path(ckpt)
    if not path.exists() and path.suffix not in (".pt", ".pth", ".safetensors"):
        from advscale.models.summary import describe

        given = model_kwargs if isinstance(model_kwargs, dict) else None
        kwargs = given if given is not None else parse_kwargs(model_kwargs, "model_kwargs")
        payload = describe(str(ckpt), kwargs, num_classes=num_classes)
        text = model_kwargs if isinstance(model_kwargs, str) else ",".join(
            f"{k}={v}" for k, v in kwargs.items())
        command = f"advscale model info {ckpt} --num-classes {num_classes}" + (
            f" --model-kwargs {text}" if text else "")
        return make_record("model.arch", payload, command=command,
                           config={"model_kwargs": kwargs, "num_classes": num_classes})

    return make_record("model.info", checkpoint_info(ckpt),
                       command=f"advscale model info {ckpt}")
