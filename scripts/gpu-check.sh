#!/usr/bin/env bash
# The GPU checks of issue 28, on a machine with a CUDA GPU, in at most 10 minutes:
#   1. the vLLM tests (tests/test_models_vllm.py, marked gpu: skipped on CPU machines);
#   2. the rollout benchmark: harness tokens/s with VLLMPolicy against vLLM's own LLM.chat on
#      the same prompts (agentbench.bench.vllm; target >= 0.8x);
#   3. one paper-lite cell (suites/paper-lite-cell.yaml) with a 1-3B model if one is in the
#      model cache or named by GPU_CHECK_MODEL, otherwise SmolLM2 (smollm2-135m-agent).
# Figures go to $OUT (default runs/gpu-check): vllm-bench.json, the cell's results.json and
# a summary.txt to paste into the README. Needs the venv with the vllm extra
# (pip install -e '.[vllm]') and the sandbox root file system (scripts/setup.sh).
# Usage: scripts/gpu-check.sh [--budget-s 600]
set -euo pipefail
cd "$(dirname "$0")/.."
budget=600
while [ $# -gt 0 ]; do
  case "$1" in
    --budget-s) budget="$2"; shift ;;
    *) echo "usage: $0 [--budget-s SECONDS]" >&2; exit 2 ;;
  esac
  shift
done
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu-check}
mkdir -p "$OUT"
start=$(date +%s)
left() { echo $(( budget - ($(date +%s) - start) )); }
summary="$OUT/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no CUDA GPU here (nvidia-smi finds none): nothing to check" >&2; exit 3
fi
if ! "$PY" -c "import vllm" 2>/dev/null; then
  echo "vLLM is not installed: $PY -m pip install -e '.[vllm]'" >&2; exit 3
fi
note "gpu-check $(date -u +%FT%TZ) on $(nvidia-smi -L | head -1); vllm $("$PY" -c 'import vllm; print(vllm.__version__)')"

echo "== 1. vLLM tests"
t0=$(date +%s)
timeout "$(( $(left) > 240 ? 240 : $(left) ))" "$PY" -m pytest -q -p no:cacheprovider -m gpu \
  -o addopts="" tests/test_models_vllm.py 2>&1 | tee "$OUT/vllm-tests.txt" | tail -5
note "vllm tests: $(tail -1 "$OUT/vllm-tests.txt") ($(( $(date +%s) - t0 )) s)"

echo "== 2. rollout benchmark: harness with VLLMPolicy vs LLM.chat"
model=${GPU_CHECK_MODEL:-}
if [ -z "$model" ]; then
  model=$("$PY" - <<'PY'
# A 1-3B instruct model already in the Hugging Face cache (no download here), else SmolLM2.
import re
from pathlib import Path
from huggingface_hub import constants
names = sorted(p.name[len("models--"):].replace("--", "/")
               for p in Path(constants.HF_HUB_CACHE).glob("models--*"))
fits = [n for n in names if re.search(r"(1\.5|1|2|3)B.*Instruct|Instruct.*(1\.5|1|2|3)B", n, re.I)]
print(fits[0] if fits else "smollm2-135m-agent")
PY
)
fi
t0=$(date +%s)
timeout "$(( $(left) > 240 ? 240 : $(left) ))" "$PY" -m agentbench.bench.vllm "$model" \
  "$OUT/vllm-bench.json" | tail -20 || note "rollout benchmark: failed or under target (see above)"
if [ -f "$OUT/vllm-bench.json" ]; then
  note "rollout benchmark ($model): $("$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"harness {d['harness_tokens_per_s']} tok/s, LLM.chat {d['replay_tokens_per_s']} tok/s, ratio {d['ratio']} (target {d['target']})\")" "$OUT/vllm-bench.json") ($(( $(date +%s) - t0 )) s)"
fi

echo "== 3. one paper-lite cell on the GPU ($model)"
if [ "$(left)" -lt 60 ]; then
  note "paper-lite cell: skipped, $(left) s of the budget left"; exit 0
fi
suite="$OUT/paper-lite-cell.yaml"
sed "s|^base_model: .*|base_model: $model|" suites/paper-lite-cell.yaml > "$suite"
t0=$(date +%s)
if AGENTBENCH_DEVICE=cuda timeout "$(left)" "$PY" -m agentbench.cli run "$suite" --no-progress \
    --out "$OUT/cell" --store "$OUT/store" > "$OUT/cell.log" 2>&1; then
  note "paper-lite cell ($model): $(( $(date +%s) - t0 )) s; results $OUT/cell/results.json"
  tail -25 "$OUT/cell.log" | tee -a "$summary"
else
  note "paper-lite cell ($model): did not finish in the budget (rc $?); log $OUT/cell.log"
fi
note "total $(( $(date +%s) - start )) s of $budget"
