#!/usr/bin/env bash
# Build tiny-agent twice from the same seed and compare the sha256 of the training episodes,
# the tokenizer and the weights; exit 1 when any differ (and print where the episodes first
# differ), 0 when all are byte-identical, 2 on bad arguments or a failed build.
#
#   scripts/check-reproducible.sh                      # the full registry recipe: ~1 h on 2 cores
#   scripts/check-reproducible.sh --size small         # seconds
#   scripts/check-reproducible.sh --instances 40 --epochs 1   # a few minutes
#   scripts/check-reproducible.sh --workdir /tmp/repro # keep both builds and episodes files
#
# Needs root and bubblewrap (the sandbox backend the build collects episodes in).
# PYTHON (default: .venv/bin/python, else python3) runs the check.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PYTHON" -m agentbench.recipes.reproducible "$@"
