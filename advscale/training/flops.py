"""Counting FLOPs of models and of adversarial-training steps, on the meta device.

Counts come from ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-accumulate,
matmuls and convolutions) running advscale's real forward pass and real training step
(:mod:`advscale.training.losses`) on ``meta`` tensors: no memory, no arithmetic, seconds even for
WRN-94-16. Elementwise ops (BN, activations) are not counted, as in the papers.

Counting methods (``method=``):

* ``direct``: run the whole training step with ``pgd_steps`` attack iterations under the counter.
* ``linear``: count the real training step once with a 1-step attack, and inside it the FLOPs of
  the attack call: the step loss gets a watching wrapper around ``pgd_linf`` as its
  ``attack_fn`` parameter (nothing is patched); count that same call again with 0 steps.
  One attack iteration costs ``A(1) − A(0)``, and ``F(k) = F(1) + (k − 1)·(A(1) − A(0))``.
  Every PGD iteration executes the same code on same-shaped tensors, so the count is affine in
  ``k`` and the extrapolation is exact (integers, no rounding); ``tests/test_flops.py`` checks it
  equals the direct count. It is still a count of real code, not a formula: it only skips the
  meta device's per-operator Python overhead for the other ``k − 1`` iterations. If the attack
  call cannot be watched, it counts real steps with 1 and 2 attack steps and extrapolates
  ``F(1) + (k − 1)·(F(2) − F(1))`` instead.
* ``auto`` (default): ``linear`` when the recipe attacks with more than 2 steps, else ``direct``.

Units: FLOPs (plain floats, never PFLOPs), per 32×32 image / per training sample.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import IO, Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from advscale.attacks.pgd import frozen_bn, pgd_linf
from advscale.core.units import PAPER_FLOPS_PER_PARAM_SAMPLE
from advscale.errors import AdvscaleError
from advscale.models import count_parameters, create_model
from advscale.models.registry import drop_unset, takes_option
from advscale.records import dumps, make_record, parse_line
from advscale.training.losses import LOSSES, AttackConfig

COUNTING_CONVENTION = (
    "torch.utils.flop_counter.FlopCounterMode on the meta device; 2 FLOPs per multiply-"
    "accumulate; matmul/convolution only (norms, activations, elementwise not counted); "
    "attack backward passes take input gradients only"
)

PAPER_CONSTANT = float(PAPER_FLOPS_PER_PARAM_SAMPLE)
"""Bartoldson et al. (ICML 2024, section 3.2.3): training FLOPs ≈ 7822·N·D for TRADES-10."""

METHODS = ("auto", "direct", "linear")
"""Counting methods of :func:`count_training_flops` (see the module doc)."""

ANNOTATED_FIELDS = ("params", "train_flops_per_sample", "train_flops")
"""Fields ``count-flops --annotate`` fills in when a record lacks them (or has them null)."""


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one model under one training recipe (per 32×32 image / training sample)."""

    model: str
    params: int
    loss: str
    pgd_steps: int
    forward_flops_per_image: float
    train_flops_per_sample: float

    @property
    def forward_multiple(self) -> float:
        """Training cost per sample in forward passes (27 for TRADES-10, 3 for standard)."""
        return self.train_flops_per_sample / self.forward_flops_per_image

    @property
    def flops_per_param_sample(self) -> float:
        """The model's own constant C in FLOPs ≈ C·N·D (the paper's approximation is 7822)."""
        return self.train_flops_per_sample / self.params

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["forward_multiple"] = self.forward_multiple
        d["flops_per_param_sample"] = self.flops_per_param_sample
        return d


def resolve_method(loss: str, pgd_steps: int, method: str = "auto") -> str:
    """The method actually used: ``direct`` or ``linear`` (``auto`` picks by step count)."""
    if method not in METHODS:
        raise AdvscaleError(f"unknown counting method {method!r}; choose from {list(METHODS)}")
    if loss == "standard" or pgd_steps <= 2:
        return "direct"  # nothing to extrapolate
    return "linear" if method == "auto" else method


def method_description(method: str) -> str:
    """One line saying how a count was made, for the ``counting`` field of ``flops`` records."""
    if method == "linear":
        return ("linear in attack steps: the real training step counted with a 1-step attack, "
                "one attack iteration counted inside it as A(1)-A(0); "
                "F(k) = F(1) + (k-1)*(A(1)-A(0)) (exact: every PGD iteration is identical)")
    return "direct: the whole training step counted"


@dataclass
class _AttackCall:
    """One call of the training attack seen during a count: its arguments and FLOPs."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    flops: int


@contextlib.contextmanager
def _watch_attacks(counter: Any, enabled: bool = True
                   ) -> Iterator[tuple[Callable[..., Any], list[_AttackCall]]]:
    """``(attack, calls)``: the attack to hand to the training loss, and the calls it saw.

    Enabled, ``attack`` wraps :func:`advscale.attacks.pgd.pgd_linf`: the real function runs
    unchanged and each call's arguments and the FLOPs ``counter`` counted inside it are appended
    to ``calls``. Disabled, it is ``pgd_linf`` itself and ``calls`` stays empty.
    """
    calls: list[_AttackCall] = []
    if not enabled:
        yield pgd_linf, calls
        return

    def watched(*args: Any, **kwargs: Any) -> Any:
        before = int(counter.get_total_flops())
        out = pgd_linf(*args, **kwargs)
        calls.append(_AttackCall(pgd_linf, args, dict(kwargs),
                                 int(counter.get_total_flops()) - before))
        return out

    yield watched, calls


def count_training_flops(
    model: str,
    loss: str = "trades",
    pgd_steps: int = 10,
    activation: str | None = None,
    num_classes: int = 10,
    image_size: int = 32,
    batch_size: int = 2,
    method: str = "auto",
    model_kwargs: Mapping[str, Any] | None = None,
) -> FlopCount:
    """Count forward FLOPs per image and training FLOPs per sample for a model name/recipe.

    ``model`` is any name :func:`advscale.models.create_model` accepts, built with
    ``model_kwargs`` (and ``activation``; None values are the family's defaults); ``loss`` one
    of ``trades``, ``pgd-at``, ``standard``; ``pgd_steps`` the training attack's iterations
    (ignored for ``standard``); ``image_size`` the data's (pixels, square). ``method`` is
    ``auto``, ``direct`` or ``linear`` (module doc). Returns FLOPs per image (forward, eval
    mode) and per training sample. Raises ValueError for an unknown loss and AdvscaleError for
    an unknown model or an option it does not take.
    """
    kw = drop_unset({"activation": activation, **(model_kwargs or {})})
    return _count_cached(model, loss, pgd_steps, num_classes, image_size, batch_size, method,
                         json.dumps(kw, sort_keys=True))


@functools.lru_cache(maxsize=256)
def _count_cached(model: str, loss: str, pgd_steps: int, num_classes: int, image_size: int,
                  batch_size: int, method: str, kwargs_json: str) -> FlopCount:
    """:func:`count_training_flops` with the model options as sorted JSON (hashable)."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {sorted(LOSSES)}")
    if pgd_steps < 0:
        raise ValueError(f"pgd_steps must be >= 0, got {pgd_steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    how = resolve_method(loss, pgd_steps, method)
    with torch.device("meta"):
        net = create_model(model, num_classes=num_classes, image_size=image_size,
                           **json.loads(kwargs_json))
    # The tensors live on meta; counting outside the torch.device context avoids its
    # per-operator __torch_function__ hook (pgd_linf allocates on x.device anyway).
    x = torch.rand(batch_size, 3, image_size, image_size, device="meta")
    y = torch.zeros(batch_size, dtype=torch.long, device="meta")
    net.eval()
    with FlopCounterMode(display=False) as fc:
        net(x)
    fwd = fc.get_total_flops()
    step = LOSSES[loss]

    def count_step(k: int, watch: bool = False) -> tuple[int, list[_AttackCall]]:
        net.train()
        with FlopCounterMode(display=False) as fc, _watch_attacks(fc, watch) as (attack, calls):
            out = step(net, x, y, AttackConfig(steps=k), attack_fn=attack)
            out.loss.backward()
        net.zero_grad(set_to_none=True)
        return int(fc.get_total_flops()), calls

    if how == "linear":
        train = None
        f1, calls = count_step(1, watch=True)
        if len(calls) == 1 and calls[0].kwargs.get("steps") == 1:
            # One attack iteration, counted inside the real step: A(1) - A(0).
            call = calls[0]
            with FlopCounterMode(display=False) as fc, frozen_bn(net):
                call.fn(*call.args, **{**call.kwargs, "steps": 0})
            per_iter = call.flops - int(fc.get_total_flops())
            train = f1 + (pgd_steps - 1) * per_iter
        if train is None:  # the attack was not observable: count a 2-step training step too
            f2, _ = count_step(2)
            train = f1 + (pgd_steps - 1) * (f2 - f1)
    else:
        train, _ = count_step(pgd_steps)
    return FlopCount(
        model=model,
        params=count_parameters(net),
        loss=loss,
        pgd_steps=pgd_steps if loss != "standard" else 0,
        forward_flops_per_image=float(fwd) / batch_size,
        train_flops_per_sample=float(train) / batch_size,
    )


def constant_relative_error(count: FlopCount, constant: float = PAPER_CONSTANT) -> float:
    """Relative error of the approximation ``constant·N·D`` against the counted FLOPs.

    ``(constant − C) / C`` with ``C = train_flops_per_sample / N``: positive when the
    approximation over-counts. The paper reports at most 1% over its runs.
    """
    c = count.flops_per_param_sample
    return (constant - c) / c


def flops_payload(
    count: FlopCount,
    samples: int | None = None,
    constant: float | None = None,
    method: str = "auto",
    activation: str | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """The payload of a ``flops`` record (docs/formats.md) for one count.

    ``samples`` is D (training samples) or None; ``constant`` adds the paper-constant check.
    """
    how = resolve_method(count.loss, count.pgd_steps, method)
    payload: dict[str, Any] = {
        "model": count.model,
        "params": count.params,
        "loss": count.loss,
        "pgd_steps": count.pgd_steps,
        "forward_flops_per_image": count.forward_flops_per_image,
        "train_flops_per_sample": count.train_flops_per_sample,
        "forward_multiple": count.forward_multiple,
        "flops_per_param_sample": count.flops_per_param_sample,
        "samples": samples,
        "train_flops": None if samples is None else float(samples) * count.train_flops_per_sample,
        "convention": COUNTING_CONVENTION,
        "counting": method_description(how),
    }
    if activation is not None:
        payload["activation"] = activation
    if batch_size is not None:
        payload["batch_size"] = batch_size
    if constant is not None:
        payload["constant"] = float(constant)
        payload["constant_rel_error"] = constant_relative_error(count, constant)
    return payload


# ---------------------------------------------------------------------------------------------
# --annotate: fill FLOPs fields into records from other commands (train.eval, ...)


def flops_record(
    model: str,
    loss: str = "trades",
    pgd_steps: int = 10,
    *,
    samples: int | None = None,
    activation: str | None = None,
    num_classes: int = 10,
    batch_size: int = 2,
    method: str = "auto",
    check_constant: float | None = None,
    command: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    image_size: int = 32,
) -> dict[str, Any]:
    """Count ``model`` (built with ``model_kwargs``) under a recipe and return the whole
    ``flops`` record (with provenance).

    Raises AdvscaleError for an unknown model, loss or method, an option the model does not
    take, or negative sizes.
    """
    if method not in METHODS:
        raise AdvscaleError(f"method {method!r}: choose from {', '.join(METHODS)}",
                            field="method")
    if pgd_steps < 0 or batch_size < 1:
        raise AdvscaleError("pgd_steps must be >= 0 and batch_size >= 1", field="pgd_steps")
    try:
        count = count_training_flops(model, loss, pgd_steps, activation, num_classes, image_size,
                                     batch_size, method, model_kwargs)
    except ValueError as e:
        raise AdvscaleError(str(e)) from None
    payload = flops_payload(count, samples, check_constant, method, activation, batch_size)
    if model_kwargs:
        payload["model_kwargs"] = dict(model_kwargs)
    config = {"model": model, "loss": loss, "pgd_steps": pgd_steps, "samples": samples,
              "batch_size": batch_size, "activation": activation, "method": method,
              "check_constant": check_constant, "model_kwargs": dict(model_kwargs or {}),
              "image_size": image_size}
    return make_record("flops", payload, config=config, command=command)


def _missing(rec: Mapping[str, Any], key: str) -> bool:
    return rec.get(key) is None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def annotate_record(
    rec: dict[str, Any], where: str = "<record>", method: str = "auto"
) -> bool:
    """Fill ``params``, ``train_flops_per_sample`` and ``train_flops`` into ``rec`` in place.

    Only records that name a ``model`` (string) and a training ``loss`` (``trades``,
    ``pgd-at``, ``standard``) are touched, and only fields that are absent or null are added;
    ``train_flops`` = ``samples_seen`` × ``train_flops_per_sample`` needs ``samples_seen``.
    Returns True when a field was added. Raises AdvscaleError naming ``where`` for a record
    whose recipe cannot be counted (unknown model, adversarial loss without ``pgd_steps``).
    """
    model, loss = rec.get("model"), rec.get("loss")
    if not (isinstance(model, str) and isinstance(loss, str) and loss in LOSSES):
        return False
    need_train = _missing(rec, "train_flops") and _number(rec.get("samples_seen"))
    if not (_missing(rec, "params") or _missing(rec, "train_flops_per_sample") or need_train):
        return False
    per_sample = rec.get("train_flops_per_sample")
    if _missing(rec, "params") or not _number(per_sample):
        steps = rec.get("pgd_steps")
        if loss == "standard":
            steps = 0
        if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0):
            raise AdvscaleError(
                f"{where}: record with loss {loss!r} has no integer pgd_steps to count FLOPs from"
            )
        activation = rec.get("activation") if isinstance(rec.get("activation"), str) else None
        if activation is not None and not takes_option(model, "activation"):
            activation = None  # e.g. a table's label for a model that has no such option
        kwargs = rec.get("model_kwargs") if isinstance(rec.get("model_kwargs"), dict) else None
        num_classes = rec.get("num_classes") if isinstance(rec.get("num_classes"), int) else 10
        try:
            count = count_training_flops(model, loss, steps, activation, num_classes,
                                         method=method, model_kwargs=kwargs)
        except (AdvscaleError, ValueError) as e:
            raise AdvscaleError(f"{where}: {e}") from None
        if _missing(rec, "params"):
            rec["params"] = count.params
        if _missing(rec, "train_flops_per_sample"):
            rec["train_flops_per_sample"] = count.train_flops_per_sample
        per_sample = rec["train_flops_per_sample"]
    if need_train and _number(per_sample):
        rec["train_flops"] = float(rec["samples_seen"]) * float(per_sample)
    return True


def annotate_lines(
    lines: Iterable[str], out: IO[str], name: str = "<stdin>", method: str = "auto"
) -> tuple[int, int]:
    """Stream JSONL ``lines`` to ``out``, annotating records (see :func:`annotate_record`).

    Lines that need nothing are written byte-for-byte as they came (blank lines too); an
    annotated record keeps its fields, order and provenance, with the new fields appended.
    Returns (records read, records annotated). A malformed line raises AdvscaleError with
    ``name:line``.
    """
    seen = changed = 0
    for lineno, line in enumerate(lines, start=1):
        text = line if line.endswith("\n") else line + "\n"
        if not line.strip():
            out.write(text)
            continue
        where = f"{name}:{lineno}"
        rec = parse_line(line, where)
        seen += 1
        if annotate_record(rec, where, method=method):
            changed += 1
            out.write(dumps(rec) + "\n")
        else:
            out.write(text)
        out.flush()
    return seen, changed


def read_model_names(lines: Iterable[str]) -> Iterator[str]:
    """Model names from a file of them: one a line (or comma-separated); ``#`` comments."""
    for line in lines:
        yield from line.split("#", 1)[0].replace(",", " ").split()


def parse_samples(text: str | None) -> int | None:
    """``--samples`` as an integer count D: ``50000000``, ``5e7`` or ``50_000_000``."""
    if text is None:
        return None
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise AdvscaleError(f"samples {text!r} is not a number of samples",
                            field="samples") from None
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise AdvscaleError(f"samples {text!r} must be a whole, non-negative number of samples",
                            field="samples")
    return int(value)


def summary_line(payload: Mapping[str, Any]) -> str:
    """A human summary of a flops payload (for stderr)."""
    s = (f"{payload['model']}: N={payload['params']:,}  forward "
         f"{payload['forward_flops_per_image'] / 1e9:.3f} GFLOPs/image  {payload['loss']}"
         f"{'-' + str(payload['pgd_steps']) if payload['loss'] != 'standard' else ''} "
         f"{payload['train_flops_per_sample'] / 1e9:.2f} GFLOPs/sample "
         f"= {payload['forward_multiple']:.3f}x forward  C={payload['flops_per_param_sample']:.1f}")
    if payload.get("train_flops") is not None:
        s += f"  D={payload['samples']:,}: {payload['train_flops']:.4g} FLOPs"
    if payload.get("constant") is not None:
        s += f"  {payload['constant']:g}·N·D error {payload['constant_rel_error']:+.3%}"
    return s
