"""The model registry, filled at import (the timm way).

Entry points are registered with :func:`register_model` (a fixed name) or
:func:`register_family` (a pattern such as ``wrn-D-W`` whose numbers become arguments).
:func:`create_model` is a lookup: a registered name, then a family pattern, then any timm model
name. :func:`list_models` lists the registered names (and the family patterns).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from advscale.errors import AdvscaleError

ModelFn = Callable[..., nn.Module]


@dataclass(frozen=True)
class Family:
    """A family of entry points named by a pattern: ``regex`` groups are passed to ``fn``."""

    pattern: str
    regex: re.Pattern[str]
    fn: Callable[..., nn.Module]
    canonical: Callable[..., str]


_ENTRYPOINTS: dict[str, ModelFn] = {}
_FAMILIES: list[Family] = []


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_model(fn: ModelFn | None = None, *, name: str | None = None):
    """Decorator: register ``fn`` under ``name`` (default: the function name, ``_`` → ``-``)."""

    def deco(f: ModelFn) -> ModelFn:
        _ENTRYPOINTS[_norm(name or f.__name__)] = f
        return f

    return deco(fn) if fn is not None else deco


def register_family(pattern: str, regex: str, canonical: Callable[..., str]):
    """Decorator: register a family ``fn(*groups, **kw)`` for names matching ``regex``."""

    def deco(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _FAMILIES.append(Family(pattern, re.compile(regex), f, canonical))
        return f

    return deco


def _family_of(name: str) -> tuple[Family, tuple[int, ...]] | None:
    for fam in _FAMILIES:
        m = fam.regex.fullmatch(_norm(name))
        if m:
            return fam, tuple(int(g) for g in m.groups())
    return None


def canonical_name(name: str) -> str:
    """The registry's spelling of a model name (``wrn_28_10`` → ``wrn-28-10``); others unchanged."""
    hit = _family_of(name)
    if hit is not None:
        return hit[0].canonical(*hit[1])
    return _norm(name) if _norm(name) in _ENTRYPOINTS else name


def list_models(pattern: str = "*", families: bool = True) -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted; family patterns too."""
    names = sorted(n for n in _ENTRYPOINTS if fnmatch.fnmatch(n, pattern))
    if families:
        names += [f.pattern for f in _FAMILIES if fnmatch.fnmatch(f.pattern, pattern)]
    return names


def is_model(name: str) -> bool:
    """True when ``name`` is registered or matches a family (timm names are not checked)."""
    return _norm(name) in _ENTRYPOINTS or _family_of(name) is not None


def create_model(name: str, num_classes: int = 10, **kwargs: Any) -> nn.Module:
    """Build a model by name: a registered entry point, a family, else a timm model.

    Keyword arguments go to the entry point (e.g. ``activation="relu"`` for WRNs). Unknown
    names and bad arguments raise :class:`AdvscaleError` with one line.
    """
    fn: Callable[..., nn.Module] | None = _ENTRYPOINTS.get(_norm(name))
    args: tuple[int, ...] = ()
    if fn is None and (hit := _family_of(name)) is not None:
        fn, args = hit[0].fn, hit[1]
    if fn is not None:
        try:
            return fn(*args, num_classes=num_classes, **kwargs)
        except (ValueError, TypeError) as e:
            raise AdvscaleError(f"model {name!r}: {e}") from None
    return _create_timm(name, num_classes, **kwargs)


def _create_timm(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    import timm  # heavy (about a second): only for non-advscale names

    if not timm.list_models(name) and not timm.is_model(name):
        close = difflib.get_close_matches(name, [*list_models(), *timm.list_models()], n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise AdvscaleError(
            f"unknown model {name!r}: use wrn-DEPTH-WIDTH (e.g. wrn-28-10), a name from "
            f"`advscale model list`, or a timm model name{hint}"
        )
    kwargs.pop("activation", None)  # advscale's WRN option; timm models choose their own
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    except Exception as e:  # timm raises many types for bad kwargs
        raise AdvscaleError(f"model {name!r}: timm could not build it ({e})") from None


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters N (the papers' model size), counting each tensor once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
