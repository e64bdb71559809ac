#!/usr/bin/env bash
# The tests the default suite deselects (`-m slow`, 33 of them): the scripted oracles' full
# solvability sweep (15 seeds of every split, env and policy, per task) and smollm2-135m's
# GGUF -> safetensors conversion from scratch. Measured 2026-12-03 on 2 shared cores (load
# ~20): 20 min wall, 202 s user + 80 s system CPU, 1.7 GiB peak memory; CI runs it after the
# default suite. Extra arguments go to pytest (e.g. `-x`, `-k sweep`).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PYTHON" -m pytest -q -p no:cacheprovider -m slow --durations=10 "$@"
