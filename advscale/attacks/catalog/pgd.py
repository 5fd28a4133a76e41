"""advscale's PGD: ``pgd-cw`` (the papers' PGD-40 on the clamped CW loss), ``pgd-cw-margin``,
``pgd-ce``; L∞ and L2.

Each chunk goes through the one evaluation service,
:func:`advscale.attacks.robustness.attack_batch`, with the evaluation's ``seed`` and each image's
test row as its index: a chunk's outcome is the same whatever ``batch_size`` and
``chunk_size``. Defaults: 40 steps; step 2/255 under L∞, ``2.5 · eps / steps`` under L2
(:func:`advscale.attacks.norms.default_step_size`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from advscale.attacks.norms import START_RULES
from advscale.attacks.registry import AttackSpec, ChunkJob, RawOutcome, register_attack

PGD_ATTACKS = {"pgd-cw": "cw", "pgd-cw-margin": "cw-margin", "pgd-ce": "ce"}
"""advscale PGD attack name → loss of :func:`advscale.attacks.pgd.pgd_linf` (``pgd-cw``: the
reference's clamped CW loss; ``pgd-cw-margin``: the unclamped margin)."""
PGD_LOSS_RULES = {"cw": "cw-clamped-v1"}
"""PGD losses whose definition changed: the rule's name is hashed into the settings key, so a
``pgd-cw`` result of the unclamped margin (an older advscale) is never reused for this one."""
DEFAULT_PGD_STEPS = 40
HELP = {"pgd-cw": "clamped CW loss, the papers' PGD-40",
        "pgd-cw-margin": "unclamped CW margin", "pgd-ce": "cross-entropy"}


def run_pgd(job: ChunkJob) -> RawOutcome:
    """PGD over the chunk's batches; image ``j`` of the chunk is test row ``job.start + j``."""
    import torch

    from advscale.attacks.robustness import attack_batch

    s = job.s
    pc, pa, xs, loss_sum = [], [], [], 0.0
    for i in range(0, len(job.x), s.batch_size):
        out = attack_batch(job.model, job.x[i:i + s.batch_size], job.y[i:i + s.batch_size],
                           index=job.start + i, seed=s.seed, loss=PGD_ATTACKS[s.attack],
                           eps=s.eps, step_size=float(s.step_size), steps=int(s.steps),
                           norm=s.norm)
        pc.append(out.logits_clean.argmax(1))
        pa.append(out.logits_adv.argmax(1))
        xs.append(out.x_adv)
        loss_sum += float(out.adv_loss.double().sum())
    return RawOutcome(torch.cat(pc).cpu().numpy(), torch.cat(pa).cpu().numpy(), torch.cat(xs),
                      adv_loss_sum=loss_sum)


def pgd_key_extras(s: Any) -> Mapping[str, Any]:
    """The random-start rule and, for ``pgd-cw``, the loss rule (so an older rule's result is
    never taken for this one's)."""
    extras = {"pgd_start": START_RULES[s.norm]}
    rule = PGD_LOSS_RULES.get(PGD_ATTACKS[s.attack])
    if rule is not None:
        extras["pgd_loss"] = rule
    return extras


for _name in PGD_ATTACKS:
    register_attack(AttackSpec(_name, run_pgd, norms=("linf", "l2"), help=HELP[_name],
                               steps=DEFAULT_PGD_STEPS, step_size=True,
                               key_extras=pgd_key_extras))
