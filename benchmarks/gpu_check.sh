#!/usr/bin/env bash
# One GPU check, under 8 minutes on one GPU. In order: sync-debug steps and the compile and
# capture checks (benchmarks/gpu_check.py), the CUDA tests (pytest -m cuda), the benchmarks
# on CUDA, the compiled-step benchmark and the demo on CUDA. Prints one table at the end.
# The full suite is CI's job (CPU); run it here too with GPU_CHECK_FULL_SUITE=1.
# Usage: benchmarks/gpu_check.sh [OUTPUT_DIR]   (logs go there; default $OUT or /tmp/gpu_check)
# Each step is cut off after GPU_CHECK_STEP_TIMEOUT seconds (default 150).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/gpu_check}}"
limit="${GPU_CHECK_STEP_TIMEOUT:-150}"
mkdir -p "$out"
python=${PYTHON:-python3}
rows=()
failed=0

step() {  # step NAME COMMAND...: run it, log to $out/NAME.log, keep a table row
  local name=$1 start status
  shift
  start=$(date +%s)
  echo "== $name: $*"
  if timeout "$limit" "$@" >"$out/$name.log" 2>&1; then status=ok; else status="FAIL ($?)"; failed=1; fi
  rows+=("| $name | $status | $(($(date +%s) - start)) s | $out/$name.log |")
  echo "   $status in $(($(date +%s) - start)) s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$out/gpu.txt"
step gpu-checks "$python" -m benchmarks.gpu_check
step cuda-tests "$python" -m pytest -m cuda -rA -p no:cacheprovider
step benchmarks "$python" -m benchmarks.run --quick --device cuda --markdown --no-save
step compiled-step "$python" -m benchmarks.compiled_step --quick --device cuda --no-save
step demo "$python" -m nectarloss demo --device cuda --epochs 2 --out "$(mktemp -d)/demo"
if [ "${GPU_CHECK_FULL_SUITE:-0}" = 1 ]; then
  step full-suite "$python" -m pytest -q -p no:cacheprovider
fi

echo
echo "| step | status | time | log |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "gpu checks:"
grep '^|' "$out/gpu-checks.log" || true
echo "cuda tests:"
grep -E '^(PASSED|FAILED|ERROR|SKIPPED)|passed|failed' "$out/cuda-tests.log" || true
echo "benchmarks:"
grep '^|' "$out/benchmarks.log" || true
grep -E '^[0-9]+ ' "$out/compiled-step.log" || tail -3 "$out/compiled-step.log"
echo "demo:"
tail -5 "$out/demo.log"
exit $failed
