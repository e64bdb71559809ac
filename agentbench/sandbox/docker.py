"""The `docker` backend: one container per episode from the locally built sandbox image.

Layout inside the container matches the bwrap backend: the image (`image.ensure_image()`, the
same Debian root) read-only at `/`, size-capped tmpfs at `/tmp` and `/root`, and the workspace (a
host tmpfs with a quota, `HostWorkspace`) bind-mounted read-write at `/workspace`. Snapshots and
resets work on the host side of that bind mount, so a reset never copies files through Docker.

Isolation: `--network none`, all capabilities dropped except `bwrap.CAPABILITIES` (no
CAP_DAC_READ_SEARCH: with it Docker's seccomp profile allows `open_by_handle_at`, which can
read host files), `no-new-privileges`, Docker's default seccomp profile, and memory (no swap),
CPU and pids limits from `SandboxConfig`. PID 1 is a bash that reaps orphans and, being PID 1,
shrugs off the agent's `kill -9 -1`.

Commands go to one long-lived `docker exec -i <container> bash` (under 1 ms for `true`, where
an exec per command costs 60-140 ms). Killing that client does not kill what it started, so on a
timeout, output flood or `exit` the kill callback runs `kill -9 -1` from a fresh exec inside the
container until nothing but PID 1 is left; if that exec cannot run (a fork bomb holds every pid)
the container is restarted, which empties `/tmp` but keeps the workspace.

Resets: the next episode's container is created, started and given its shell in the background
while the current episode runs (`pool=1`, a pool of one), so a reset costs killing the old
container (its removal goes on in the background) plus rebuilding the workspace: about 0.12 s
here. Back-to-back resets with no episode between them wait for a container start instead
(0.35-0.6 s on two busy cores).

Errors: `SandboxStartError` from `start()`/`reset()` when the daemon does not answer, the image
cannot be built, or a container or its shell does not come up; `SandboxError` from `reset()`
when the old container cannot be killed (daemon gone) and from `exec()` when the container died
and the shell cannot be brought back (the message carries the container's state). `close()`
never raises for these; it logs. Containers carry the label
`agentbench.sandbox=1` (and the owning pid); `remove_leftovers()` removes those of dead owners.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentbench.sandbox.accounts import Accounts
from agentbench.sandbox.base import (
    WORKSPACE,
    ExecResult,
    SandboxConfig,
    SandboxError,
    SandboxInfo,
    SandboxStartError,
)
from agentbench.sandbox.bwrap import CAPABILITIES, HOME_LIMIT_MB, HOSTNAME, TMP_LIMIT_MB
from agentbench.sandbox.image import (
    IDLE_COMMAND,
    LABEL,
    PATH,
    api_errors,
    docker_client,
    ensure_image,
)
from agentbench.sandbox.shell import PersistentShell
from agentbench.sandbox.shell_sandbox import ShellSandbox
from agentbench.sandbox.workspace import HostWorkspace, process_alive

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

log = logging.getLogger(__name__)

OWNER_LABEL = "agentbench.owner"
"""`<hostname>:<pid>` of the process that created a container."""

_KILL_TIMEOUT_S = 20
"""Seconds a kill exec may take before the container is restarted instead."""
# Kill everything in the container's PID namespace but PID 1 and this shell. kill(-1) fails with
# ESRCH once nothing else is left; a process caught mid-fork is caught by the next round.
_KILL_SCRIPT = "i=0; while kill -9 -1 2>/dev/null; do i=$((i+1)); [ $i -lt 2000 ] || exit 1; done"


@dataclass
class _Episode:
    """A started container with its shell attached: what a reset hands to the next episode."""

    container: Container
    shell: PersistentShell


class DockerSandbox(ShellSandbox):
    """A Docker container sandbox. See the module docstring for layout, limits and errors.

    `base_url` names the daemon (default: the environment, DOCKER_HOST or the local socket);
    `image` overrides the locally built image; `pool` is how many containers (with their shells)
    are kept started ahead for the next resets (0 turns pre-starting off).
    """

    name = "docker"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        accounts: Accounts | None = None,
        *,
        base_url: str | None = None,
        image: str | None = None,
        hostname: str = HOSTNAME,
        pool: int = 1,
    ):
        super().__init__(config, accounts)
        if not 0 <= pool <= 4:
            raise ValueError(f"pool must be between 0 and 4, not {pool}")
        self._base_url = base_url
        self._image = image
        self._hostname = hostname
        self._pool = pool
        self._client: DockerClient | None = None  # the caller's thread
        self._background: DockerClient | None = None  # the pool's threads
        self._killer: DockerClient | None = None  # kills, with a short timeout
        self._docker_cli: str | None = None
        self._workspace: HostWorkspace | None = None
        self._current: _Episode | None = None
        self._spares: deque[Future[_Episode]] = deque()
        self._removals: list[Future[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._restarts = 0

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def workspace_host_path(self) -> Path:
        if self._workspace is None:
            raise SandboxError("sandbox is not started")
        return self._workspace.path

    @property
    def container_id(self) -> str | None:
        """The current episode's container id (None before start and after close)."""
        return self._current.container.id if self._current is not None else None

    def start(self) -> None:
        if self._current is not None:
            return
        try:
            self._docker_cli = shutil.which("docker")
            if self._docker_cli is None:
                raise SandboxStartError("the docker command-line client is not installed")
            if self._client is None:
                self._client = self._new_client()
            if self._image is None:
                self._image = ensure_image(self._client)
            else:
                self._check_image(self._image)
            if self._workspace is None:
                self._workspace = HostWorkspace(
                    self.config.workspace_limit_mb,
                    prefix="agentbench-docker-",
                    max_files=self.config.workspace_max_files,
                )
            self._start_processes()
        except BaseException:
            self.close()
            raise

    def _start_processes(self) -> None:
        if self._workspace is None or self._client is None:
            raise SandboxStartError("sandbox is not started")
        self._current = self._take_spare() or self._prepare(self._client)
        self._fill_pool()

    def _stop_processes(self) -> None:
        episode, self._current = self._current, None
        if episode is not None:
            self._retire(episode)

    def restart_shell(self) -> None:
        """Kill every process in the episode's container and attach a fresh shell to it.

        Cheaper than the base class's swap to a new container; the workspace and the
        container's /tmp are kept.
        """
        episode = self._current
        if episode is None:
            raise SandboxError("sandbox is not started")
        episode.shell.stop()  # its kill callback kills the processes inside the container
        episode.shell.last_dir = WORKSPACE
        try:
            episode.shell.start()
        except SandboxStartError as exc:
            raise SandboxError(
                f"the sandbox shell could not be restarted: {exc} ({_state(episode.container)})"
            ) from exc

    def close(self) -> None:
        """Remove the containers and the workspace. Safe to call twice; never raises for a
        daemon that went away (it logs a warning: `remove_leftovers()` cleans up later)."""
        try:
            self._stop_processes()
        except SandboxError as exc:
            log.warning("docker sandbox close: %s", exc)
        while self._spares:
            try:
                self._retire(self._spares.popleft().result(timeout=120))
            except Exception as exc:  # a spare that never started, or a daemon gone away
                log.warning("docker sandbox close: spare container: %s", exc)
        for removal in self._removals:
            try:
                removal.result(timeout=120)
            except Exception as exc:
                log.warning("docker sandbox close: %s", exc)
        self._removals.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._workspace is not None:
            self._workspace.close()
            self._workspace = None
        for client in (self._client, self._background, self._killer):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        self._client = self._background = self._killer = None

    # -- commands ----------------------------------------------------------------------------
    def _active_shell(self) -> PersistentShell | None:
        return self._current.shell if self._current is not None else None

    def exec(
        self, command: str, *, timeout: float | None = None, output_limit: int | None = None
    ) -> ExecResult:
        episode = self._current
        if episode is None:
            raise SandboxError("sandbox is not started")
        try:
            return super().exec(command, timeout=timeout, output_limit=output_limit)
        except SandboxError as exc:
            raise SandboxError(f"{exc} [container {_state(episode.container)}]") from exc

    def info(self) -> SandboxInfo:
        limits = {
            "network": True,
            "filesystem": True,
            "pids": True,
            "memory": True,
            "cpu": True,
            "workspace_quota": self._workspace.quota_enforced if self._workspace else False,
            "tmp_quota": True,
            "chown": True,
            "capabilities_dropped": True,
        }
        extra: dict[str, Any] = {
            "container": self.container_id,
            "capabilities": list(CAPABILITIES),
            "kill_restarts": self._restarts,
            "pool": self._pool,
        }
        if self._client is not None:
            with contextlib.suppress(Exception):
                version = self._client.version()
                extra["docker_version"] = version.get("Version")
                extra["api_version"] = version.get("ApiVersion")
        return SandboxInfo(
            backend=self.name, image=self._image, limits_enforced=limits, extra=extra
        )

    # -- containers --------------------------------------------------------------------------
    def _new_client(self, timeout: int = 120) -> DockerClient:
        if self._base_url is None:
            return docker_client(timeout=timeout)
        import docker

        try:
            client = docker.DockerClient(base_url=self._base_url, version="auto", timeout=timeout)
            client.ping()
        except api_errors() as exc:
            raise SandboxStartError(f"no Docker daemon answers at {self._base_url}: {exc}") from exc
        return client

    def _killer_client(self) -> DockerClient:
        # A client of its own with a short timeout: a kill must never hang the harness.
        if self._killer is None:
            self._killer = self._new_client(timeout=_KILL_TIMEOUT_S)
        return self._killer

    def _check_image(self, image: str) -> None:
        from docker.errors import ImageNotFound

        assert self._client is not None
        try:
            self._client.images.get(image)
        except ImageNotFound as exc:
            raise SandboxStartError(
                f"image {image} does not exist locally (nothing is pulled from registries)"
            ) from exc
        except api_errors() as exc:
            raise SandboxStartError(f"cannot look up image {image}: {exc}") from exc

    def _create_kwargs(self) -> dict[str, Any]:
        from docker.types import Mount

        assert self._workspace is not None
        cfg = self.config
        memory = f"{cfg.memory_limit_mb}m"
        return {
            "command": IDLE_COMMAND,
            "labels": {LABEL: "1", OWNER_LABEL: _owner()},
            "network_mode": "none",
            "read_only": True,
            "mem_limit": memory,
            "memswap_limit": memory,  # equal to the memory limit: no swap
            "nano_cpus": int(cfg.cpus * 1e9),
            "pids_limit": cfg.pids_limit,
            "cap_drop": ["ALL"],
            "cap_add": [c.removeprefix("CAP_") for c in CAPABILITIES],
            "security_opt": ["no-new-privileges"],
            "tmpfs": {
                "/tmp": f"rw,nosuid,nodev,size={TMP_LIMIT_MB}m,mode=1777",
                "/root": f"rw,nosuid,nodev,size={HOME_LIMIT_MB}m,mode=0700",
            },
            "mounts": [Mount(WORKSPACE, str(self._workspace.path), type="bind")],
            "working_dir": WORKSPACE,
            "hostname": self._hostname,
            "environment": {
                "PATH": PATH,
                "HOME": "/root",
                "LANG": "C.UTF-8",
                "TERM": "dumb",
                "USER": "root",
                "HOSTNAME": self._hostname,
            },
            "user": "0:0",
            "ipc_mode": "private",
            "log_config": {"type": "none", "config": {}},
        }

    def _prepare(self, client: DockerClient) -> _Episode:
        """Create and start a container and attach a shell to it. Raises SandboxStartError."""
        assert self._image is not None and self._docker_cli is not None
        container: Container | None = None
        try:
            # create + start, not `containers.run`, which would try to pull a missing image
            # from a registry.
            container = client.containers.create(self._image, **self._create_kwargs())
            container.start()
        except api_errors() as exc:
            if container is not None:
                with contextlib.suppress(*api_errors()):
                    container.remove(force=True)
            raise SandboxStartError(f"cannot start a container from {self._image}: {exc}") from exc
        env = dict(os.environ)
        if self._base_url:
            env["DOCKER_HOST"] = self._base_url
        bound = container

        def kill(proc: subprocess.Popen[bytes]) -> None:
            self._kill(proc, bound)

        shell = PersistentShell(
            [
                self._docker_cli, "exec", "-i", "-w", WORKSPACE, container.id,
                "/bin/bash", "--noprofile", "--norc",
            ],
            kill=kill,
            env=env,
            initial_dir=WORKSPACE,
        )  # fmt: skip
        try:
            shell.start()
        except BaseException:
            with contextlib.suppress(*api_errors()):
                container.remove(force=True)
            raise
        return _Episode(container, shell)

    def _pool_executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self._pool + 1, thread_name_prefix="agentbench-docker"
            )
        return self._executor

    def _fill_pool(self) -> None:
        while len(self._spares) < self._pool:
            self._spares.append(self._pool_executor().submit(self._prepare_in_background))

    def _prepare_in_background(self) -> _Episode:
        if self._background is None:
            self._background = self._new_client()
        return self._prepare(self._background)

    def _take_spare(self) -> _Episode | None:
        while self._spares:
            future = self._spares.popleft()
            try:
                episode = future.result(timeout=120)
            except Exception as exc:  # not fatal: a container made now reports the cause
                log.warning("docker sandbox: a pre-started container failed: %s", exc)
                continue
            if episode.shell.alive and _state(episode.container).startswith("running"):
                return episode
            with contextlib.suppress(SandboxError):
                self._retire(episode)
        return None

    def _retire(self, episode: _Episode) -> None:
        """Kill an episode's container now (nothing may run during a reset) and remove it in
        the background. Raises SandboxError when the daemon does not answer."""
        from docker.errors import APIError, NotFound

        try:
            episode.container.kill()
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:  # 409: not running, which is what was wanted
                raise SandboxError(f"cannot kill {episode.container.short_id}: {exc}") from exc
        except api_errors() as exc:
            raise SandboxError(f"cannot kill {episode.container.short_id}: {exc}") from exc
        finally:
            episode.shell.stop()
        self._removals = [f for f in self._removals if not f.done()]
        self._removals.append(self._pool_executor().submit(_remove, episode.container))

    def _kill(self, proc: subprocess.Popen[bytes], container: Container) -> None:
        """A shell's kill callback: kill the command's processes *inside* the container."""
        # The client goes first: while it holds an exec whose output nobody reads (a flood),
        # dockerd does not finish the next exec on that container, so the kill below would hang.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        current = self._current
        if current is not None and current.container is container:
            self._kill_in_container(container)

    def _kill_in_container(self, container: Container) -> None:
        try:
            api = self._killer_client().api
            exec_id = api.exec_create(
                container.id, ["/bin/bash", "--noprofile", "--norc", "-c", _KILL_SCRIPT]
            )["Id"]
            api.exec_start(exec_id)
            if api.exec_inspect(exec_id).get("ExitCode") == 0:
                return
        except Exception:  # any failure (API error, timeout, no pid for the exec): restart below
            pass
        try:
            container.reload()
            running = container.status == "running"
        except api_errors():
            running = False
        if not running:
            # A container that died (or a daemon that went away) is not revived: the shell
            # restart that follows fails and raises SandboxError with the container's state.
            return
        # No pid left for an exec (fork bomb) or the loop never emptied the namespace: killing
        # PID 1 takes the whole namespace down; the workspace is a bind mount and survives.
        self._restarts += 1
        with contextlib.suppress(*api_errors()):
            container.restart(timeout=0)


def _remove(container: Container) -> None:
    from docker.errors import NotFound

    try:
        container.remove(force=True)
    except NotFound:
        pass
    except api_errors() as exc:
        raise SandboxError(f"cannot remove container {container.short_id}: {exc}") from exc


def _state(container: Container) -> str:
    try:
        container.reload()
    except Exception as exc:
        return f"{container.short_id}: cannot inspect ({exc})"
    state = container.attrs.get("State", {})
    return (
        f"{state.get('Status')} {container.short_id} exit={state.get('ExitCode')}"
        f" oom_killed={state.get('OOMKilled')} error={state.get('Error') or None}"
    )


def _owner() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


def remove_leftovers(client: DockerClient | None = None, *, all_owners: bool = False) -> list[str]:
    """Remove agentbench containers whose owning process (on this host) is gone.

    With `all_owners=True`, remove every agentbench container, running or not. Returns the ids.
    """
    client = client or docker_client()
    host = os.uname().nodename
    removed = []
    # sparse: no inspect per container, which would race with containers being removed
    found = client.containers.list(all=True, sparse=True, filters={"label": f"{LABEL}=1"})
    for container in found:
        labels = container.attrs.get("Labels") or {}
        owner_host, _, pid = labels.get(OWNER_LABEL, "").partition(":")
        if not all_owners and owner_host == host and pid.isdigit() and process_alive(int(pid)):
            continue
        with contextlib.suppress(Exception):
            container.remove(force=True)
            removed.append(container.id)
    return removed
