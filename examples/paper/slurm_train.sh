#!/usr/bin/env bash
# One grid point of examples/paper per SLURM array task, on one node of 8 GPUs (DDP under
# torchrun). Multi-node: set --nodes and pass --nnodes/--rdzv-endpoint to torchrun.
#
#   sbatch --array=0-49 slurm_train.sh        # 5 models x 5 budgets x 2 qualities
#
#SBATCH --job-name=advscale-train
#SBATCH --nodes=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --output=logs/%x-%A_%a.log
set -euo pipefail
models=(wrn-28-4 wrn-28-10 wrn-34-10 wrn-70-16 wrn-82-8)
samples=(5000000 10000000 30000000 70000000 100000000)
steps=(7 20)
i=${SLURM_ARRAY_TASK_ID:?run under sbatch --array}
m=${models[$(( i % 5 ))]}
s=${samples[$(( i / 5 % 5 ))]}
q=${steps[$(( i / 25 ))]}
out=${OUT:-out}
run=$m-edm$q-d$s
# --resume makes a requeued or preempted job continue exactly where it stopped.
torchrun --nproc_per_node=8 -m advscale train --out "$out/runs/$run" --resume --run-id "$run" \
  --data "$out/data/train.h5:3,$out/data/syn-edm$q.h5:7" --eval-data "$out/data/test.h5" \
  --model "$m" --samples "$s" --compile > /dev/null
cp "$out/runs/$run/records.jsonl" "$out/runs/$run.jsonl"
