"""fra31's AutoAttack (Croce & Hein 2020): ``aa-standard``, ``aa-rand`` and ``apgd-ce``, under
L∞ and L2, through :class:`advscale.attacks.autoattack.AutoAttackRunner`.

A chunk reseeds the global RNG with the chunk seed (``seed + chunk``) and gives AutoAttack that
seed; results are reproducible for fixed ``seed``, ``batch_size`` and ``chunk_size``.
``apgd-ce`` takes ``steps`` (APGD iterations, default 100); the two versions have AutoAttack's
fixed settings.
"""

from __future__ import annotations

from advscale.attacks.registry import AttackSpec, ChunkJob, RawOutcome, register_attack

DEFAULT_APGD_ITERS = 100
HELP = {"aa-standard": "AutoAttack: APGD-CE, APGD-T, FAB-T, Square (RobustBench's evaluation)",
        "aa-rand": "AutoAttack for randomised defences: APGD-CE, APGD-DLR with EOT 20",
        "apgd-ce": "AutoAttack's first stage alone (APGD-CE, 100 iterations)"}


def run_autoattack(job: ChunkJob) -> RawOutcome:
    """One chunk through AutoAttack's cascade; reports each finished stage to ``job.progress``."""
    from advscale.attacks.autoattack import AutoAttackRunner

    s = job.s
    runner = AutoAttackRunner(job.model, s.attack, eps=s.eps, norm=s.norm, seed=job.seed,
                              device=job.device, n_iter=s.steps if s.attack == "apgd-ce"
                              else None, verbose=job.verbose)
    report = job.progress
    on_stage = None
    if report is not None:
        stages = runner.stages

        def on_stage(stage: str, still: int, images: int) -> None:
            report(stage, stages.index(stage) + 1, len(stages), still, images)

    res = runner.run(job.x, job.y, batch_size=s.batch_size, on_stage=on_stage)
    return RawOutcome(res.pred_clean, res.pred_adv, res.x_adv, stages=res.stages,
                      broken_stage=res.broken_stage)


def autoattack_package() -> tuple[str, str]:
    """(import name, version) of the AutoAttack distribution that runs (official or PyPI)."""
    from advscale.attacks.autoattack import find_backend

    b = find_backend()
    return b.package, b.version


for _name in HELP:
    register_attack(AttackSpec(
        _name, run_autoattack, norms=("linf", "l2"), help=HELP[_name],
        steps=DEFAULT_APGD_ITERS if _name == "apgd-ce" else None,
        package=autoattack_package, family="AutoAttack"))
