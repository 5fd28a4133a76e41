"""``attack`` records → RobustBench ``model_info`` cards (``advscale records export``).

One card per evaluated checkpoint (records grouped by ``checkpoint_sha256``), in the fields of
RobustBench's ``model_info/<dataset>/<threat>/<id>.json``: ``clean_acc`` and
``autoattack_acc`` as percent strings with two decimals (the standard AutoAttack record,
exact gradients), ``external`` (the lowest robust accuracy of any other evaluation of the same
checkpoint, e.g. a MeanSparse BPDA run; RobustBench's "best known" number, null when none is
lower), ``eps`` as ``k/255`` when it is one, ``architecture``, ``dataset`` and
``number_forward_passes``. advscale adds what the leaderboard asks a submission to state:
``n_images`` (images evaluated) and ``attack_settings`` (the AutoAttack version, package,
seed, batch size, gradient mode and the settings key of each evaluation used). Fields only the
authors can fill (``name``, ``link``, ``authors``, ``venue``, ``additional_data``,
``footnote``) are null; ``reported`` repeats ``autoattack_acc``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from advscale.errors import AdvscaleError

FORMATS = ("robustbench",)
AUTHOR_FIELDS = ("name", "link", "authors", "venue", "additional_data", "footnote")


def _pct(x: float) -> str:
    return f"{100 * float(x):.2f}"


def eps_text(eps: float) -> str:
    """``8/255`` for 8/255 (to 1e-9), else the number as text."""
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-9 * 255 else repr(float(eps))


def architecture_of(model: str | None) -> str | None:
    """RobustBench's spelling of an advscale model name (``wrn-70-16`` → ``WideResNet-70-16``)."""
    if model is None:
        return None
    m = re.fullmatch(r"wrn-(\d+)-(\d+)", model)
    return f"WideResNet-{m.group(1)}-{m.group(2)}" if m else model


def _settings(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: rec.get(k) for k in ("attack", "eps", "n", "seed", "batch_size", "chunk_size",
                                    "package", "package_version", "settings_key")} | {
        "gradient": rec.get("gradient", "exact")}


def card(recs: list[Mapping[str, Any]], architecture: str | None = None,
         forward_passes: int = 1, dataset: str = "cifar10") -> dict[str, Any]:
    """The card of one checkpoint's ``attack`` records (module doc)."""
    std = [r for r in recs if r.get("attack") == "aa-standard"
           and r.get("gradient", "exact") == "exact"]
    if not std:
        raise AdvscaleError(f"{recs[0].get('checkpoint')}: no standard AutoAttack record "
                            "(attack aa-standard, exact gradients) to take autoattack_acc from")
    main = max(std, key=lambda r: int(r.get("n") or 0))
    others = [r for r in recs if r is not main and r.get("n") == main.get("n")
              and r.get("eps") == main.get("eps")]
    low = min((float(r["robust_acc"]) for r in others), default=None)
    external = _pct(low) if low is not None and low < float(main["robust_acc"]) else None
    out: dict[str, Any] = {k: None for k in AUTHOR_FIELDS}
    out.update({
        "dataset": dataset, "eps": eps_text(float(main["eps"])),
        "architecture": architecture or architecture_of(main.get("model")),
        "number_forward_passes": int(forward_passes),
        "clean_acc": _pct(main["clean_acc"]), "reported": _pct(main["robust_acc"]),
        "autoattack_acc": _pct(main["robust_acc"]), "external": external,
        "unreliable": False, "n_images": int(main["n"]),
        "checkpoint_sha256": main.get("checkpoint_sha256"),
        "attack_settings": [_settings(main), *(_settings(r) for r in others)],
    })
    return out


def robustbench_cards(records: Iterable[Mapping[str, Any]], architecture: str | None = None,
                      forward_passes: int = 1) -> list[dict[str, Any]]:
    """One card per checkpoint among the ``attack`` records (other kinds are ignored)."""
    by_ckpt: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        if r.get("kind") == "attack":
            by_ckpt.setdefault(str(r.get("checkpoint_sha256")), []).append(r)
    if not by_ckpt:
        raise AdvscaleError("no attack records to export (run advscale attack first)")
    return [card(recs, architecture, forward_passes) for recs in by_ckpt.values()]
