#!/usr/bin/env bash
# One grid point of examples/paper per SLURM array task, on one node of 8 GPUs (DDP under
# torchrun). Multi-node: set --nodes and pass --nnodes/--rdzv-endpoint to torchrun via TRAIN.
#
#   make -s print-grid | wc -l                 # 145 law runs (Table 1 x Table 2 x budgets)
#   sbatch --array=0-144 slurm_train.sh        # after the synthetic data is made (make -j grid's deps)
#
# The task's run is line $SLURM_ARRAY_TASK_ID + 1 of `make print-grid`; make builds exactly that
# run's records (its synthetic dataset must exist already). Every run trains on one synthetic
# dataset, with no real data mixed in (the paper's law runs).
#SBATCH --job-name=advscale-train
#SBATCH --nodes=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --output=logs/%x-%A_%a.log
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")}"
i=${SLURM_ARRAY_TASK_ID:?run under sbatch --array}
out=${OUT:-out}
run=$(make -s OUT="$out" print-grid | sed -n "$(( i + 1 ))p")
[ -n "$run" ] || { echo "task $i: no such grid point" >&2; exit 1; }
# --resume (in the train rule) makes a requeued or preempted job continue where it stopped.
make OUT="$out" "$out/runs/$run.jsonl"
