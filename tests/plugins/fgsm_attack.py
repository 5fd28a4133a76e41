"""A new attack in one file (the test of CONTRIBUTING.md's "Add an attack"): FGSM.

Importing this module registers ``fgsm``: one gradient step of size ``eps`` on the
cross-entropy (the sign of the gradient under L∞, the L2-normalised gradient under L2), clipped
to [0, 1]. ``advscale attack`` finds it when this module is named in
``$ADVSCALE_ATTACK_MODULES`` (and importable).
"""

from __future__ import annotations

from advscale.attacks.registry import AttackSpec, ChunkJob, RawOutcome, register_attack


def run_fgsm(job: ChunkJob) -> RawOutcome:
    import torch
    import torch.nn.functional as F

    s = job.s
    x = job.x.detach().clone().requires_grad_(True)
    logits = job.model(x)
    (g,) = torch.autograd.grad(F.cross_entropy(logits, job.y, reduction="sum"), x)
    if s.norm == "l2":
        step = g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-12)
    else:
        step = g.sign()
    x_adv = (job.x + s.eps * step).clamp(0, 1).detach()
    with torch.no_grad():
        pred_adv = job.model(x_adv).argmax(1)
    return RawOutcome(logits.argmax(1).detach().cpu().numpy(), pred_adv.cpu().numpy(), x_adv)


register_attack(AttackSpec("fgsm", run_fgsm, norms=("linf", "l2"),
                           help="one-step gradient attack (a plugin of the test suite)"))
