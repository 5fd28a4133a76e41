"""``advscale attack``: AutoAttack and PGD evaluation of checkpoints (JSONL on stdout)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from advscale.attacks.registry import attack_help
from advscale.cli.common import handle_errors, parse_fraction, parse_shard
from advscale.errors import AdvscaleError
from advscale.records import write_record


class _StderrHandler(logging.Handler):
    """Writes each record as one line to the *current* ``sys.stderr`` (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never end the command
            self.handleError(record)


@contextlib.contextmanager
def _stderr_logging(quiet: bool, verbose: bool) -> Iterator[None]:
    """advscale's library log lines (progress) on stderr for the command's duration: INFO by
    default, DEBUG with ``-v``, warnings only with ``-q``."""
    logger = logging.getLogger("advscale")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    old = logger.level
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


@handle_errors
def attack(
    checkpoints: list[str] = typer.Argument(
        ..., help="Checkpoint files, run directories (their last.safetensors) or quoted globs "
        "like 'runs/*'. With --merge: JSONL files of attack.chunk records ('-' is stdin)."),
    data: Path = typer.Option(None, "--data", help="Test images (advscale HDF5); the first "
                              "--n in file order are attacked."),
    attack_name: str = typer.Option("aa-standard", "--attack", help=attack_help()),
    norm: str = typer.Option("linf", "--norm", help="Threat model: linf (‖δ‖∞ ≤ eps) or l2 "
                             "(‖δ‖₂ ≤ eps per image)."),
    eps: str = typer.Option(None, "--eps", help="Radius in [0,1] pixel units, e.g. 8/255 (L∞) "
                            "or 0.5 (L2).", show_default="8/255 for linf, 0.5 for l2"),
    steps: int = typer.Option(None, "--steps", help="PGD steps or APGD iterations for apgd-ce; AA "
                              "versions are fixed.", show_default="40 for PGD, 100 for apgd-ce"),
    step_size: str = typer.Option(None, "--step-size", help="PGD step, [0,1] pixel units; "
                                 "L2: 2.5·eps/steps (Madry et al. 2018).",
                                 show_default="2/255 for linf"),
    n: int = typer.Option(None, "--n", help="Images to attack.",
                           show_default="10000, or all if fewer"),
    batch_size: int = typer.Option(250, "--batch-size", help="Images per attack batch."),
    chunk_size: int = typer.Option(1000, "--chunk-size",
                                   help="Images per resumable chunk (one state record each)."),
    seed: int = typer.Option(0, "--seed", help="PGD: image i starts from a point seeded by "
                             "(seed, i), whatever the batch and chunk size; AutoAttack: chunk c "
                             "uses seed+c."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ... Under "
                               "torchrun: one model per rank on cuda:LOCAL_RANK (or cpu, gloo)."),
    precision: str = typer.Option("fp32", "--precision", metavar="fp32|bf16|tf32",
                                  help="The model's forward: fp32 (leaderboard numbers), bf16 "
                                  "(autocast, float32 logits) or tf32 (CUDA matmuls; none on "
                                  "CPU). Recorded when not fp32."),
    state: Path = typer.Option(None, "--state", help="Append one attack.chunk record per "
                               "finished chunk here; a re-run resumes from it."),
    results: Path = typer.Option(None, "--results", help="Append final records here and skip "
                                 "checkpoints already evaluated with the same settings."),
    force: bool = typer.Option(False, "--force", help="Re-run even if --results has it."),
    shard: str = typer.Option(None, "--shard", help="i/k: attack only chunks c with c % k == i "
                              "and print their attack.chunk records (combine with --merge)."),
    merge: bool = typer.Option(False, "--merge", help="Combine attack.chunk records of shards "
                               "(the positional files) into final attack records."),
    save_adv: Path = typer.Option(None, "--save-adv", help="Write the adversarial images "
                                  "(HDF5, docs/formats.md) of one checkpoint here."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show AutoAttack's log."),
    gradient: str = typer.Option("exact", "--gradient", help="exact, or bpda: MeanSparse "
                                 "layers pass gradients straight through (RobustBench's best "
                                 "known MeanSparse evaluation); the record says which ran."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines on stderr."),
) -> None:
    """Evaluate checkpoints with AutoAttack or PGD; one `attack` record per checkpoint on stdout.

    Examples: `advscale attack runs/a --data test.h5 --attack pgd-cw --n 1000`;
    nightly: `advscale attack 'runs/*' --data test.h5 --results attack.jsonl --state aa.state`;
    shards: `advscale attack CKPT --data test.h5 --shard 0/2 > s0.jsonl` (and 1/2), then
    `advscale attack --merge s0.jsonl s1.jsonl`; L2: `--norm l2 --eps 0.5`.
    Progress (per chunk, per AutoAttack stage: images still robust, elapsed, ETA) on stderr.
    """
    with _stderr_logging(quiet, verbose):
        _attack(checkpoints, data, attack_name, norm, eps, steps, step_size, n, batch_size,
                chunk_size, seed, device, state, results, force, shard, merge, save_adv, verbose,
                gradient, precision)


def _attack(checkpoints: list[str], data: Path | None, attack_name: str, norm: str,
            eps: str | None, steps: int | None, step_size: str | None, n: int | None,
            batch_size: int, chunk_size: int, seed: int, device: str, state: Path | None,
            results: Path | None, force: bool, shard: str | None, merge: bool,
            save_adv: Path | None, verbose: bool, gradient: str = "exact",
            precision: str = "fp32") -> None:
    if merge:
        from advscale.attacks.merge import merge_chunk_records  # torch: imported when run

        for rec in merge_chunk_records(checkpoints, results=results,
                                       config={"merge": list(checkpoints)}):
            write_record(rec)
        return
    if data is None:
        raise AdvscaleError("--data TEST.h5 is required (the test images to attack)")
    from advscale.attacks.evaluate import attack_checkpoints  # torch: imported when run
    from advscale.attacks.settings import AttackSettings

    settings = AttackSettings(
        attack=attack_name.strip().lower(),
        norm=norm.strip().lower(),
        eps=None if eps is None else parse_fraction(eps, "--eps"),
        steps=steps,
        step_size=None if step_size is None else parse_fraction(step_size, "--step-size"),
        n=n, batch_size=batch_size, chunk_size=chunk_size, seed=seed,
        gradient=gradient.strip().lower(), precision=precision,
    )
    settings.resolved()  # a typo'd attack or a bad value fails before any file is opened
    from advscale.attacks.distributed import attack_torchrun, torchrun_world

    if torchrun_world() > 1:  # under torchrun: one shard per rank, rank 0 merges and writes
        if shard is not None:
            raise AdvscaleError("--shard and torchrun both split the chunks: give one of them")
        for rec in attack_torchrun(checkpoints, data, settings, device=device, state=state,
                                   results=results, force=force, save_adv=save_adv,
                                   verbose=verbose):
            write_record(rec)
        return
    for rec in attack_checkpoints(checkpoints, data, settings, device=device, state=state,
                                  results=results, force=force, shard=parse_shard(shard),
                                  save_adv=save_adv, verbose=verbose):
        write_record(rec)
