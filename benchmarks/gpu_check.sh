#!/usr/bin/env bash
# One GPU check, under 8 minutes on one GPU: the test suite (its CUDA tests included),
# sync-debug steps and compile/capture checks (benchmarks/gpu_check.py), the benchmarks
# on CUDA, the compiled-step benchmark and the demo on CUDA. Prints one table at the end.
# Usage: benchmarks/gpu_check.sh [OUTPUT_DIR]   (logs go there; default /tmp/gpu_check)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/gpu_check}}"
mkdir -p "$out"
rows=()
failed=0

step() {  # step NAME COMMAND...: run it, log to $out/NAME.log, keep a table row
  local name=$1 start status
  shift
  start=$(date +%s)
  if timeout 300 "$@" >"$out/$name.log" 2>&1; then status=ok; else status=FAIL; failed=1; fi
  rows+=("| $name | $status | $(($(date +%s) - start)) s | $out/$name.log |")
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
step tests python -m pytest -q -x -p no:cacheprovider
step gpu-checks python -m benchmarks.gpu_check
step benchmarks python -m benchmarks.run --quick --device cuda --markdown --no-save
step compiled-step python -m benchmarks.compiled_step --quick --device cuda --no-save
step demo nectarloss demo --device cuda --epochs 2 --out "$out/demo"

echo
echo "| step | status | time | log |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "gpu checks:"
grep '^|' "$out/gpu-checks.log" || true
echo "benchmarks:"
grep '^|' "$out/benchmarks.log" || true
grep -E '^[0-9]+ ' "$out/compiled-step.log" || tail -3 "$out/compiled-step.log"
exit $failed
