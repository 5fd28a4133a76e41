"""The model registry, filled at import (the timm way).

Entry points are registered with :func:`register_model` (a fixed name) or
:func:`register_family` (a pattern such as ``wrn-D-W`` whose numbers become arguments). A family
owns its options: the keyword arguments its entry point declares (WRN: ``activation``,
``padding``, ``mean``/``std``, ...). :func:`create_model` is a lookup: a registered name, then a
family pattern, then any timm model name. As timm's ``create_model`` does, keyword arguments
whose value is None are dropped (unset), so a caller passes ``activation=None`` to mean "the
family's default". A keyword the entry point does not declare is a one-line error, never
silently dropped. :func:`list_models` lists the registered names (and the family patterns);
:func:`toy_of` gives each registered name a tiny configuration of its family for tests.

Every model takes images in [0, 1] (NCHW) and normalises them itself (``mean``/``std``); timm
models are wrapped in :class:`advscale.models.layers.Normalized` for that.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from advscale.errors import AdvscaleError

ModelFn = Callable[..., nn.Module]

TIMM_OPTIONS = frozenset({"mean", "std"})
"""Keywords advscale itself takes for a timm model (its input normalisation wrapper)."""
TOP_LEVEL_OPTIONS = ("activation", "padding")
"""Model options that requests carry as fields of their own (the rest travel in model_kwargs)."""
FIXED_SIZE_HINT = "model_kwargs img_size={size},patch_size={patch}"


@dataclass(frozen=True)
class Entry:
    """One registered builder: a fixed name or a family (``regex`` groups → arguments)."""

    pattern: str
    fn: ModelFn
    regex: re.Pattern[str] | None = None
    canonical: Callable[..., str] | None = None
    toy: tuple[str, Mapping[str, Any]] | None = None
    examples: tuple[str, ...] = field(default=())

    def options(self) -> frozenset[str] | None:
        """Keyword options of the builder (None: it takes any, ``**kwargs``)."""
        params = inspect.signature(self.fn).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return frozenset(p.name for p in params if p.kind in (p.KEYWORD_ONLY,
                                                              p.POSITIONAL_OR_KEYWORD)
                         and p.default is not p.empty and not p.name.startswith("_")
                         ) - {"num_classes"}


_ENTRYPOINTS: dict[str, Entry] = {}
_FAMILIES: list[Entry] = []


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_model(fn: ModelFn | None = None, *, name: str | None = None,
                   toy: Mapping[str, Any] | tuple[str, Mapping[str, Any]] | None = None):
    """Decorator: register ``fn`` under ``name`` (default: the function name, ``_`` → ``-``).

    ``toy``: keyword arguments that make the model tiny (for registry-driven tests), or
    ``(name, kwargs)`` naming a smaller member of the same family. ``fn`` takes
    ``num_classes`` and its options as keyword arguments with defaults.
    """

    def deco(f: ModelFn) -> ModelFn:
        key = _norm(name or f.__name__)
        small = toy if isinstance(toy, tuple) or toy is None else (key, dict(toy))
        _ENTRYPOINTS[key] = Entry(key, f, toy=small)
        return f

    return deco(fn) if fn is not None else deco


def register_family(pattern: str, regex: str, canonical: Callable[..., str], *,
                    toy: tuple[str, Mapping[str, Any]] | None = None,
                    examples: tuple[str, ...] = ()):
    """Decorator: register a family ``fn(*groups, **kw)`` for names matching ``regex``.

    ``toy``: a tiny member and its keyword arguments; ``examples``: standard members that
    ``advscale model list --params`` describes.
    """

    def deco(f: ModelFn) -> ModelFn:
        _FAMILIES.append(Entry(pattern, f, re.compile(regex), canonical, toy, examples))
        return f

    return deco


def _family_of(name: str) -> tuple[Entry, tuple[int, ...]] | None:
    for fam in _FAMILIES:
        m = fam.regex.fullmatch(_norm(name)) if fam.regex is not None else None
        if m:
            return fam, tuple(int(g) for g in m.groups())
    return None


def _entry(name: str) -> tuple[Entry, tuple[int, ...]] | None:
    hit = _ENTRYPOINTS.get(_norm(name))
    return (hit, ()) if hit is not None else _family_of(name)


def canonical_name(name: str) -> str:
    """The registry's spelling of a model name (``wrn_28_10`` → ``wrn-28-10``); others unchanged."""
    hit = _family_of(name)
    if hit is not None and hit[0].canonical is not None:
        return hit[0].canonical(*hit[1])
    return _norm(name) if _norm(name) in _ENTRYPOINTS else name


def list_models(pattern: str = "*", families: bool = True) -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted; family patterns too."""
    names = sorted(n for n in _ENTRYPOINTS if fnmatch.fnmatch(n, pattern))
    if families:
        names += [f.pattern for f in _FAMILIES if fnmatch.fnmatch(f.pattern, pattern)]
    return names


def family_examples(pattern: str) -> tuple[str, ...]:
    """Standard members of the family registered as ``pattern`` (empty for a fixed name)."""
    return next((f.examples for f in _FAMILIES if f.pattern == pattern), ())


def family_name(name: str) -> str:
    """The family pattern ``name`` belongs to (``wrn-28-10`` → ``wrn-D-W``), the registered
    name itself for a fixed entry point, or ``timm`` for anything else."""
    hit = _family_of(name)
    if hit is not None:
        return hit[0].pattern
    return _norm(name) if _norm(name) in _ENTRYPOINTS else "timm"


def is_model(name: str) -> bool:
    """True when ``name`` is registered or matches a family (timm names are not checked)."""
    return _entry(name) is not None


def model_options(name: str) -> frozenset[str] | None:
    """Keyword options model ``name``'s entry point declares; None when it takes any (a
    ``**kwargs`` entry point, or a timm model: ``mean``/``std`` plus timm's own keywords)."""
    hit = _entry(name)
    return hit[0].options() if hit is not None else None


def takes_option(name: str, option: str) -> bool:
    """True when model ``name`` declares keyword ``option`` (e.g. ``activation``). For a timm
    model only advscale's own wrapper options (``mean``, ``std``) count."""
    hit = _entry(name)
    if hit is None:
        return option in TIMM_OPTIONS
    opts = hit[0].options()
    return opts is None or option in opts


def toy_of(name: str) -> tuple[str, dict[str, Any]]:
    """A tiny configuration ``(name, kwargs)`` of ``name``'s family, for registry-driven tests.

    ``name`` is a registered name, a family member or a family pattern (``wrn-D-W``). Raises
    AdvscaleError for one whose registration gave no ``toy``.
    """
    fam = next((f for f in _FAMILIES if f.pattern == name), None)
    hit = (fam, ()) if fam is not None else _entry(name)
    if hit is None:
        raise AdvscaleError(f"model {name!r} is not registered", field="model")
    toy = hit[0].toy
    if toy is None and (member := _family_of(name)) is not None:
        toy = member[0].toy
    if toy is None:
        raise AdvscaleError(f"model {name!r} was registered without a toy configuration",
                            field="model")
    return toy[0], dict(toy[1])


def drop_unset(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` without the None values (timm's rule: None means "not given")."""
    return {k: v for k, v in kwargs.items() if v is not None}


def create_model(name: str, num_classes: int = 10, image_size: int | None = None,
                 **kwargs: Any) -> nn.Module:
    """Build a model by name: a registered entry point, a family, else a timm model.

    Keyword arguments go to the entry point (e.g. ``activation="relu"`` for WRNs); None values
    are dropped. ``image_size`` (pixels, square) is the data's: a timm model built for another
    fixed input size is refused with a line saying how to pass the size. Unknown names,
    options the family does not take and bad values raise :class:`AdvscaleError` (one line).
    """
    kwargs = drop_unset(kwargs)
    hit = _entry(name)
    if hit is None:
        return _create_timm(name, num_classes, image_size, kwargs)
    entry, args = hit
    opts = entry.options()
    bad = sorted(set(kwargs) - opts) if opts is not None else []
    if bad:
        own = bad[0] if bad[0] in TOP_LEVEL_OPTIONS else "model_kwargs"
        raise AdvscaleError(f"model {name!r} takes no option {', '.join(map(repr, bad))} "
                            f"(it takes: {', '.join(sorted(opts)) or 'none'})", field=own)
    try:
        return entry.fn(*args, num_classes=num_classes, **kwargs)
    except (ValueError, TypeError) as e:
        raise AdvscaleError(f"model {name!r}: {e}", field="model_kwargs") from None


def _create_timm(name: str, num_classes: int, image_size: int | None,
                 kwargs: dict[str, Any]) -> nn.Module:
    import timm  # heavy (about a second): only for non-advscale names

    from advscale.models.layers import CIFAR10_MEAN, CIFAR10_STD, Normalized

    if not timm.list_models(name) and not timm.is_model(name):
        close = difflib.get_close_matches(name, [*list_models(), *timm.list_models()], n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise AdvscaleError(
            f"unknown model {name!r}: use wrn-DEPTH-WIDTH (e.g. wrn-28-10), a name from "
            f"`advscale model list`, or a timm model name{hint}", field="model")
    if "activation" in kwargs:
        raise AdvscaleError(f"model {name!r} (timm) takes no option 'activation': timm models "
                            "choose their own (some take act_layer)", field="activation")
    mean, std = kwargs.pop("mean", CIFAR10_MEAN), kwargs.pop("std", CIFAR10_STD)
    try:
        net = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    except Exception as e:  # timm raises many types for bad kwargs
        why = " ".join(str(e).split())[:300]
        raise AdvscaleError(f"model {name!r}: timm could not build it ({why})",
                            field="model_kwargs") from None
    _check_input_size(name, net, image_size)
    return Normalized(net, mean, std)


def _check_input_size(name: str, net: nn.Module, image_size: int | None) -> None:
    """Refuse a timm model whose patch embedding is fixed to another input size."""
    embed = getattr(net, "patch_embed", None)
    size = getattr(embed, "img_size", None)
    if image_size is None or size is None:
        return
    size = tuple(size) if isinstance(size, tuple | list) else (size, size)
    if size != (image_size, image_size):
        patch = getattr(embed, "patch_size", (16,))
        patch = patch[0] if isinstance(patch, tuple | list) else patch
        small = max(1, min(int(patch), image_size // 8))
        raise AdvscaleError(
            f"model {name!r} is built for {size[0]}×{size[1]} inputs, the data is "
            f"{image_size}×{image_size}: pass the size, e.g. "
            + FIXED_SIZE_HINT.format(size=image_size, patch=small), field="model_kwargs")


LEGACY_KEYS = ("activation", "padding", "mean", "std", "in_chans")
"""Model options older checkpoints record at the top level of their metadata."""


def recorded_kwargs(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments that rebuild a checkpoint's model from its metadata.

    ``meta["model_kwargs"]`` (format 3) wins; older checkpoints' top-level ``activation``,
    ``padding``, ``mean``, ``std`` and ``in_chans`` are used where the model takes them. A timm
    model saved before advscale normalised timm inputs gets no normalisation (mean 0, std 1).
    """
    name = str(meta.get("model", ""))
    out: dict[str, Any] = {k: meta[k] for k in LEGACY_KEYS
                           if meta.get(k) is not None and takes_option(name, k)}
    given = meta.get("model_kwargs")
    if given is not None and not isinstance(given, dict):
        raise AdvscaleError(f"checkpoint metadata model_kwargs is not a mapping: {given!r}",
                            field="model_kwargs")
    out.update(given or {})
    if not is_model(name) and "mean" not in out and "model_kwargs" not in meta:
        out["mean"], out["std"] = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    for k in ("mean", "std"):
        if isinstance(out.get(k), list):
            out[k] = tuple(out[k])
    return out


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters N (the papers' model size), counting each tensor once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
