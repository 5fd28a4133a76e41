#!/usr/bin/env bash
# The CPU acceptance run of `advscale train`: WRN-16-2, TRADES (β = 5), 20,480 CIFAR-10 samples,
# evaluated at the end on the first 1,024 test images with PGD-40 on the CW loss (EMA model).
# Usage: examples/train_cpu/run.sh [OUT_DIR]   (from the repository root; needs ../shared/data
# or $ADVSCALE_DATA with cifar-10-python.tar.gz). Records: OUT_DIR/records.jsonl and stdout.
set -euo pipefail
OUT=${1:-out/train_cpu}
DATA=${ADVSCALE_DATA:-../shared/data}
BIN=${BIN:-.venv/bin}
mkdir -p "$(dirname "$OUT")" out/data
[ -f out/data/train.h5 ] || "$BIN/advscale" data import "$DATA/cifar-10-python.tar.gz" \
    --split train -o out/data/train.h5 > /dev/null
[ -f out/data/test.h5 ] || "$BIN/advscale" data import "$DATA/cifar-10-python.tar.gz" \
    --split test -o out/data/test.h5 > /dev/null
"$BIN/advscale" train --out "$OUT" \
    --data out/data/train.h5 --eval-data out/data/test.h5 \
    --model wrn-16-2 --loss trades --beta 5 \
    --pgd-steps 2 --step-size 4/255 \
    --samples 20480 --batch-size 128 --lr 0.2 \
    --eval-n 1024 --eval-every 10240 --seed 0 --resume
