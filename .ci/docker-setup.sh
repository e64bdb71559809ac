#!/usr/bin/env bash
# Make a Docker daemon answer and build the agentbench sandbox image. Idempotent.
#
# - installs docker.io with apt-get if neither `docker` nor `dockerd` is present;
# - starts `dockerd` in the background (log: $AGENTBENCH_DOCKERD_LOG) if no daemon answers,
#   waits up to $AGENTBENCH_DOCKERD_WAIT seconds for it, prints the log tail on failure;
# - builds `agentbench-sandbox:<rootfs hash>` from the local root file system (no registry).
#
# Needs root to install or start the daemon. Uses the venv's python when VIRTUAL_ENV is set,
# else .venv/bin/python at the repository root, else python3.
set -euo pipefail

LOG=${AGENTBENCH_DOCKERD_LOG:-/var/log/agentbench-dockerd.log}
WAIT=${AGENTBENCH_DOCKERD_WAIT:-60}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '[docker-setup] %s\n' "$*" >&2; }

daemon_answers() { docker info >/dev/null 2>&1; }

if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        say "docker is not installed and this is not root: install docker.io first"
        exit 1
    fi
    say "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

if daemon_answers; then
    say "a Docker daemon already answers"
else
    if [ "$(id -u)" -ne 0 ]; then
        say "no Docker daemon answers and this is not root, so none can be started"
        exit 1
    fi
    # A stale pid file from a daemon that died makes a new dockerd refuse to start.
    for pidfile in /var/run/docker.pid /run/docker.pid; do
        if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            rm -f "$pidfile"
        fi
    done
    # Sandboxes use --network none only, so a machine without iptables (a CI container) can
    # run a daemon with no bridge and no NAT rules. Extra flags: AGENTBENCH_DOCKERD_ARGS.
    read -r -a args <<<"${AGENTBENCH_DOCKERD_ARGS:-}"
    if ! command -v iptables >/dev/null 2>&1; then
        args+=(--iptables=false --ip-masq=false --bridge=none)
    fi
    say "starting dockerd ${args[*]} (log: $LOG)"
    mkdir -p "$(dirname "$LOG")"
    # setsid + nohup: the daemon must outlive this script and the CI step that ran it.
    setsid nohup dockerd "${args[@]}" >>"$LOG" 2>&1 </dev/null &
    pid=$!
    waited=0
    until daemon_answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd exited; last lines of $LOG:"
            tail -n 40 "$LOG" >&2 || true
            exit 1
        fi
        if [ "$waited" -ge "$WAIT" ]; then
            say "dockerd did not answer within ${WAIT}s; last lines of $LOG:"
            tail -n 40 "$LOG" >&2 || true
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "dockerd answers after ${waited}s"
fi

if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    PY="$VIRTUAL_ENV/bin/python"
elif [ -x "$ROOT/.venv/bin/python" ]; then
    PY="$ROOT/.venv/bin/python"
else
    PY=python3
fi
say "building the sandbox image"
cd "$ROOT"
"$PY" -c 'from agentbench.sandbox.image import ensure_image; print(ensure_image())'
