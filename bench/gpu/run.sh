#!/usr/bin/env bash
# Issue 22's measurements on a lent GPU host, as one call bounded by BUDGET seconds (default 510,
# under the device tool's 600 s limit). Run from the repository root there, after bench/gpu/pack.sh
# here (it prints the exact calls):
#   bash bench/gpu/run.sh stash     keep the archive part this call carried (calls before the last)
#   bash bench/gpu/run.sh           stash the last part, rebuild and md5-check the archive, then run
#                                   profile_step, time_to_accuracy and train_throughput; one JSON
#                                   line per step in $OUT/results.jsonl, everything in $OUT/run.log
#   bash bench/gpu/run.sh --dry-run the same script on CPU with tiny settings (packs the archive at
#                                   $CIFAR100_DIR into a scratch folder first): tests the script itself
# A step that fails or runs out of time writes {"step", "rc"} and the next one still runs. Without
# all parts (the machine went back between calls), the steps that need no real data still run.
set -uo pipefail
cd "$(dirname "$0")/../.."

MODE="${1:-run}"
case "$MODE" in run | stash | --dry-run) ;; *) echo "usage: bench/gpu/run.sh [stash|--dry-run]" >&2; exit 2 ;; esac
DATA="${GPU_DATA:-.gpu-data}"
STASH="${CIFAR100_STASH:-/tmp/cifar100-parts}"  # outside the tree: a repo sync cannot remove it
WORK="$(mktemp -d)"
export PYTHONUNBUFFERED=1
if [ "$MODE" = --dry-run ]; then
  PY="${PYTHON:-.venv/bin/python}"
  DATA="$WORK/pack" STASH="$WORK/stash"
  export OUT="${OUT:-$WORK/out}"
else
  PY="${PYTHON:-python3}"
  export OUT="${OUT:?run on the device machine, where the tool sets OUT; or --dry-run here}"
fi
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
START=$SECONDS
BUDGET="${BUDGET:-510}"
SCALE=1  # step caps below are GPU seconds; a CPU dry run gets ten times each and an hour in all
if [ "$MODE" = --dry-run ]; then SCALE=10 BUDGET="${BUDGET_DRY:-3600}"; fi

stash() {  # copy carried parts and the manifest where later calls find them; say what is missing
  mkdir -p "$STASH"
  cp -f "$DATA"/*.part-* "$DATA/meta/MANIFEST.md5" "$STASH"/ 2>/dev/null
  [ -f "$STASH/MANIFEST.md5" ] || { echo "run.sh: no manifest carried ($DATA/meta)"; return 3; }
  "$PY" -m bench.gpu.chunks check "$STASH/MANIFEST.md5" --search "$STASH"
}

step() {  # step NAME CAP_S CMD...: run CMD for at most min(CAP_S, time left); its JSON lines go to results
  local name="$1" cap=$(($2 * SCALE)) left rc
  shift 2
  left=$((BUDGET - (SECONDS - START)))
  ((left < cap)) && cap=$left
  if ((cap < 20)); then
    echo "{\"step\": \"$name\", \"rc\": null, \"skipped\": \"out of time\"}" | tee -a "$OUT/results.jsonl"
    return
  fi
  echo "== $name (at most ${cap}s): $*"
  timeout --kill-after=10 "$cap" "$@" >"$WORK/$name.out"
  rc=$?
  cat "$WORK/$name.out"
  grep '^{' "$WORK/$name.out" | sed "s/^{/{\"step\": \"$name\", /" >>"$OUT/results.jsonl"
  ((rc == 0)) || echo "{\"step\": \"$name\", \"rc\": $rc}" | tee -a "$OUT/results.jsonl"
}

if [ "$MODE" = stash ]; then
  nvidia-smi -L || true
  stash
  exit 0
fi
if [ "$MODE" = --dry-run ]; then
  GPU_DATA="$DATA" PART_SIZE=64M PYTHON="$PY" bash bench/gpu/pack.sh --no-wheels
else
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv ||
    { echo "run.sh: nvidia-smi failed: no GPU here (use --dry-run on CPU)"; exit 1; }
  if [ -d .whl ]; then  # pydantic and ruamel.yaml for stages.lib.params (bench/gpu/pack.sh)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
      export PYTHONPATH=/tmp/site
  fi
fi
[ -n "${BENCH_COMMIT:-}" ] || ! [ -f "$DATA/meta/COMMIT" ] || export BENCH_COMMIT="$(cat "$DATA/meta/COMMIT")"
"$PY" - <<'EOF' | tee -a "$OUT/results.jsonl"  # what every line below ran on
import json, os, sys, torch
from bench._common import commit
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
host = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda, "gpu": gpu}
print(json.dumps({"step": "host", **host, "cpus": os.cpu_count(), "commit": commit(".")}))
EOF

REAL=0
if stash && "$PY" -m bench.gpu.chunks join "$STASH/MANIFEST.md5" "$WORK/data" --search "$STASH"; then
  export CIFAR100_DIR="$WORK/data" REAL=1
else
  echo "run.sh: the archive is incomplete: time_to_accuracy is skipped, train_throughput uses synthetic data"
fi
PROFILE=() TTA=() THROUGHPUT=(--repeats 3)
if [ "$MODE" = --dry-run ]; then  # tiny: proves each command line, measures nothing
  PROFILE=(--batch-size 16 --steps 2 --warmup 1)
  TTA=(--epochs 1 --limit 256 --test-limit 256 --batch-size 64)
  THROUGHPUT=(--batch-size 8 --steps 2 --repeats 1 --workers 0)
fi
((REAL)) || THROUGHPUT+=(--synthetic)
# In order of need: where the time goes, the headline, then the throughput ratios.
step profile-resnet9 100 "$PY" -m bench.profile_step --recipe fast --out "$OUT" "${PROFILE[@]}"
if ((REAL)); then
  step time-to-accuracy 180 "$PY" -m bench.time_to_accuracy --recipe fast "${TTA[@]}"
fi
step throughput-resnet18 120 "$PY" -m bench.train_throughput --model resnet18 "${THROUGHPUT[@]}"
step throughput-resnet9 100 "$PY" -m bench.train_throughput --model resnet9 "${THROUGHPUT[@]}"
step profile-resnet18 90 "$PY" -m bench.profile_step --recipe resnet18 --out "$OUT" "${PROFILE[@]}"
echo "== done in $((SECONDS - START))s; results in $OUT/results.jsonl:"
cat "$OUT/results.jsonl"
rm -rf "$WORK"
