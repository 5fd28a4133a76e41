#!/usr/bin/env bash
# Nightly re-evaluation of a scaling study: attack only checkpoints not yet evaluated, refit the
# laws, regenerate the report. Safe to run from cron: a lock keeps two runs apart, every output
# is replaced atomically, and unchanged checkpoints cost nothing (attack's --results file).
#
#   reevaluate.sh RUNS_DIR TEST.h5 OUT_DIR
#
# crontab line (03:00 every night):
#   0 3 * * * cd /data/study && /opt/advscale/examples/cron/reevaluate.sh runs data/test.h5 eval >> eval/cron.log 2>&1
#
# Environment: ADVSCALE (the command, default `advscale`), ATTACK (default pgd-cw), N (images,
# default 1000), STEPS (default 40), APPROACH (law to fit, default 2).
set -euo pipefail

runs=${1:?usage: reevaluate.sh RUNS_DIR TEST.h5 OUT_DIR}
test_h5=${2:?usage: reevaluate.sh RUNS_DIR TEST.h5 OUT_DIR}
out=${3:?usage: reevaluate.sh RUNS_DIR TEST.h5 OUT_DIR}
advscale=${ADVSCALE:-advscale}
attack=${ATTACK:-pgd-cw}
n=${N:-1000}
steps=${STEPS:-40}
approach=${APPROACH:-2}

mkdir -p "$out"
exec 9>"$out/.lock"
if ! flock -n 9; then
  echo "reevaluate: another re-evaluation holds $out/.lock; nothing to do" >&2
  exit 0
fi

# Run directories with an evaluation checkpoint (last.safetensors).
shopt -s nullglob
ckpts=("$runs"/*/last.safetensors)
if [ ${#ckpts[@]} -eq 0 ]; then
  echo "reevaluate: no checkpoints under $runs" >&2
  exit 0
fi
dirs=()
for c in "${ckpts[@]}"; do dirs+=("$(dirname "$c")"); done

# 1. Attack: already-evaluated checkpoints (same hash, same settings) are skipped.
"$advscale" attack "${dirs[@]}" --data "$test_h5" --attack "$attack" --steps "$steps" --n "$n" \
  --results "$out/attack.jsonl" > /dev/null

# 2. All records, FLOPs filled in.
cat "$runs"/*/records.jsonl "$out/attack.jsonl" | "$advscale" count-flops --annotate \
  > "$out/records.jsonl.tmp"
mv "$out/records.jsonl.tmp" "$out/records.jsonl"

# 3. Refit; a study too small for the law keeps going without it.
laws=()
if "$advscale" fit "$out/records.jsonl" --approach "$approach" > "$out/law.json.tmp"; then
  mv "$out/law.json.tmp" "$out/law.json"
  laws=(--law "$out/law.json")
else
  rm -f "$out/law.json.tmp"
  echo "reevaluate: approach $approach could not be fitted yet; report without a law" >&2
fi

# 4. The report.
"$advscale" report "$out/records.jsonl" "${laws[@]}" -o "$out/report" > "$out/report.jsonl"
echo "reevaluate: $(date -u +%FT%TZ) evaluated ${#dirs[@]} run(s); report in $out/report" >&2
