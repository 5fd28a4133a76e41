"""``advscale attack``: AutoAttack and PGD evaluation of checkpoints (JSONL on stdout).

A thin adapter over :func:`advscale.api.attack`; the attack's settings are generated from
:class:`~advscale.attacks.settings.AttackSettings`'s fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from advscale import api
from advscale.cli.common import handle_errors
from advscale.cli.requests import request_command
from advscale.cli.shared import common
from advscale.records import write_record


@handle_errors
@request_command(api.AttackSettings, exclude=("attack",))
def attack(
    checkpoints: list[str] = typer.Argument(
        ..., help="Checkpoint files, run directories (their last.safetensors) or quoted globs "
        "like 'runs/*'. With --merge: JSONL files of attack.chunk records ('-' is stdin)."),
    attack_name: str = typer.Option("aa-standard", "--attack", help=api.attack_help()),
    data: Path = typer.Option(None, "--data", help="Test images (advscale HDF5); the first "
                              "--n in file order are attacked."),
    device: str = common("device"),
    state: Path = typer.Option(None, "--state", help="Append one attack.chunk record per "
                               "finished chunk here; a re-run resumes from it."),
    results: Path = typer.Option(None, "--results", help="Append final records here and skip "
                                 "checkpoints already evaluated with the same settings."),
    force: bool = common("force"),
    shard: str = typer.Option(None, "--shard", help="i/k: attack only chunks c with c % k == i "
                              "and print their attack.chunk records (combine with --merge)."),
    merge: bool = typer.Option(False, "--merge", help="Combine attack.chunk records of shards "
                               "(the positional files) into final attack records."),
    save_adv: Path = typer.Option(None, "--save-adv", help="Write the adversarial images "
                                  "(HDF5, docs/formats.md) of one checkpoint here."),
    verbose: bool = common("verbose"),
    *,
    given: dict[str, Any],
) -> None:
    """Evaluate checkpoints with AutoAttack or PGD; one `attack` record per checkpoint on stdout.

    Examples: `advscale attack runs/a --data test.h5 --attack pgd-cw --n 1000`;
    nightly: `advscale attack 'runs/*' --data test.h5 --results attack.jsonl --state aa.state`;
    shards: `advscale attack CKPT --data test.h5 --shard 0/2 > s0.jsonl` (and 1/2), then
    `advscale attack --merge s0.jsonl s1.jsonl`; L2: `--norm l2 --eps 0.5`.
    Progress (per chunk, per AutoAttack stage) on stderr.
    """
    api.attack(checkpoints, data=data, device=device, state=state, results=results,
               force=force, shard=shard, merge=merge, save_adv=save_adv, verbose=verbose,
               emit=write_record, attack=attack_name, **given)
