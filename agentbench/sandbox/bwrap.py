"""The `bwrap` backend: bubblewrap over a read-only Debian root, the default on Linux.

Layout inside the sandbox: the cached root file system (`ensure_rootfs()`) read-only at `/`, a
fresh `/dev` and `/proc`, size-capped tmpfs at `/tmp`, `/root` and `/dev/shm`, and the workspace
(a host tmpfs with a quota) read-write at `/workspace`, the shell's starting directory. Network,
PID, IPC, UTS and cgroup namespaces are private: the only interface is the sandbox's own `lo`,
host processes are invisible, and killing the namespace's init kills everything in it.

Privileges: run as root, the sandbox has *no* user namespace, so uid 0 inside is uid 0 on the
workspace and `chown bob`, `setfacl` and `su bob -c` behave as on a real machine. All capabilities
are dropped except `CAPABILITIES` (no CAP_SYS_ADMIN: `/` cannot be remounted read-write; no
CAP_DAC_READ_SEARCH: `open_by_handle_at` could reach host files), and bubblewrap sets
no_new_privs, so no exec can regain them. Run as another user, the sandbox falls back to a user
namespace with a fake root; `info().limits_enforced["chown"]` is then False.

Limits: pids and memory come from a per-sandbox cgroup (v1 `pids`/`memory` hierarchies, or v2
with those controllers delegated), created under this process's own cgroup. A small `sh`
wrapper writes its pid into the cgroup and then execs bubblewrap, so nothing in the sandbox ever
runs outside it. When no cgroup is writable the limits fall back to rlimits (`prlimit`), which
are per-user rather than per-sandbox; `limits_enforced` says which applied.

Known limits: `--die-with-parent` ties the sandbox to the *thread* that started it; start and
use a sandbox from a thread that outlives it. Wall-clock time per command is enforced by
`PersistentShell`; CPU share is not limited (the `cpus` setting is Docker's). There is no seccomp
filter, so root inside shares uid 0's kernel keyrings with the host (the root file system ships
no keyctl tool, and python3-minimal has no ctypes).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from agentbench.sandbox.accounts import Accounts
from agentbench.sandbox.base import (
    WORKSPACE,
    SandboxConfig,
    SandboxError,
    SandboxInfo,
    SandboxStartError,
)
from agentbench.sandbox.shell import PersistentShell
from agentbench.sandbox.shell_sandbox import ShellSandbox
from agentbench.sandbox.workspace import HostWorkspace

CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
)
"""What root inside the sandbox keeps: enough for chown/chmod/setfacl/su on the workspace."""

TMP_LIMIT_MB = 64
HOME_LIMIT_MB = 16
SHM_LIMIT_MB = 16
HOSTNAME = "sandbox"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_KILL_DEADLINE_S = 10.0
# Writes the wrapper's own pid into each cgroup.procs named before `--`, then becomes bwrap.
_WRAPPER = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


@cache
def bwrap_version() -> tuple[int, ...] | None:
    """bubblewrap's version, or None when it is not installed."""
    exe = shutil.which("bwrap")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out.stdout)
    if match is None:
        return None
    return tuple(int(g or 0) for g in match.groups())


@dataclass
class Cgroup:
    """One sandbox's cgroup: a directory per controller (v1) or a single one (v2)."""

    version: int
    dirs: dict[str, Path] = field(default_factory=dict)
    """Controller name ("pids", "memory") -> cgroup directory; v2 uses one dir for both."""

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in dict.fromkeys(self.dirs.values())]

    def pids(self) -> list[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(x) for x in procs.read_text().split())
        return sorted(found)

    def kill_all(self, deadline_s: float = _KILL_DEADLINE_S, *, spare: int | None = None) -> bool:
        """SIGKILL every process in the cgroup until it is empty; True when it emptied.

        `spare` (the outer bwrap, our own child) is left alone: it reaps its child when the
        namespace dies and exits by itself, instead of leaving that child to the host's init.
        """
        kill_file = next(iter(self.dirs.values())) / "cgroup.kill"
        if spare is None and self.version == 2 and kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        end = time.monotonic() + deadline_s
        while True:
            pids = [pid for pid in self.pids() if pid != spare]
            if not pids:
                return True
            # Killing the PID namespace's init makes the kernel kill the rest; the loop covers
            # processes caught mid-fork.
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > end:
                return False
            time.sleep(0.002)

    def counter(self, controller: str, name: str) -> int | None:
        """A value from `<controller>.events`-style files, e.g. ("pids", "max")."""
        directory = self.dirs.get(controller)
        if directory is None:
            return None
        try:
            text = (directory / f"{controller}.events").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == name and value.strip().isdigit():
                return int(value)
        return None

    def remove(self) -> None:
        for directory in dict.fromkeys(self.dirs.values()):
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    time.sleep(0.01)  # v1 memcg may take a moment to release the last task
        self.dirs.clear()


def create_cgroup(name: str, *, pids_max: int, memory_bytes: int) -> tuple[Cgroup | None, str]:
    """Create a cgroup with both limits under this process's own cgroup.

    Returns (cgroup, "") or (None, why not). Never raises for an unwritable hierarchy.
    """
    own = _own_cgroups()
    if (_CGROUP_ROOT / "cgroup.controllers").exists():
        return _create_v2(name, own.get("", "/"), pids_max, memory_bytes)
    return _create_v1(name, own, pids_max, memory_bytes)


def _own_cgroups() -> dict[str, str]:
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                found[controller] = path
    return found


def _remove_stale(parent: Path) -> None:
    """Remove empty cgroups left by agentbench processes that died without closing."""
    for path in parent.glob("agentbench-*-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError):
                path.rmdir()  # fails (EBUSY) while anything still runs in it


def _create_v1(
    name: str, own: dict[str, str], pids_max: int, memory_bytes: int
) -> tuple[Cgroup | None, str]:
    cgroup = Cgroup(version=1)
    try:
        for controller in ("pids", "memory"):
            base = _CGROUP_ROOT / controller
            if not (base / "cgroup.procs").exists():
                raise OSError(f"no cgroup v1 {controller} hierarchy at {base}")
            parent = base / own.get(controller, "/").lstrip("/")
            _remove_stale(parent)
            directory = parent / name
            directory.mkdir()
            cgroup.dirs[controller] = directory
        pids_dir, mem_dir = cgroup.dirs["pids"], cgroup.dirs["memory"]
        (pids_dir / "pids.max").write_text(str(pids_max))
        (mem_dir / "memory.limit_in_bytes").write_text(str(memory_bytes))
        swap = mem_dir / "memory.memsw.limit_in_bytes"
        if swap.exists():  # memory+swap == memory: no swapping past the limit
            swap.write_text(str(memory_bytes))
    except OSError as exc:
        cgroup.remove()
        return None, f"cgroup v1 not usable: {exc}"
    return cgroup, ""


def _create_v2(
    name: str, own_path: str, pids_max: int, memory_bytes: int
) -> tuple[Cgroup | None, str]:
    parent = _CGROUP_ROOT / own_path.lstrip("/")
    try:
        enabled = (parent / "cgroup.subtree_control").read_text().split()
    except OSError as exc:
        return None, f"cgroup v2 not usable: {exc}"
    missing = {"pids", "memory"} - set(enabled)
    if missing:
        return None, f"cgroup v2 controllers not delegated to {parent}: {sorted(missing)}"
    _remove_stale(parent)
    directory = parent / name
    cgroup = Cgroup(version=2)
    try:
        directory.mkdir()
        cgroup.dirs = {"pids": directory, "memory": directory}
        (directory / "pids.max").write_text(str(pids_max))
        (directory / "memory.max").write_text(str(memory_bytes))
        with contextlib.suppress(OSError):
            (directory / "memory.swap.max").write_text("0")
    except OSError as exc:
        cgroup.remove()
        return None, f"cgroup v2 not usable: {exc}"
    return cgroup, ""


class BwrapSandbox(ShellSandbox):
    """A bubblewrap sandbox. See the module docstring for its layout, privileges and limits.

    Raises SandboxStartError from `start()` when bubblewrap or the root file system is missing
    or the shell does not come up; SandboxError from `exec()` when the shell cannot be restarted.
    """

    name = "bwrap"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        accounts: Accounts | None = None,
        *,
        rootfs: Path | None = None,
        hostname: str = HOSTNAME,
    ):
        super().__init__(config, accounts)
        self._rootfs = rootfs
        self._hostname = hostname
        self._workspace: HostWorkspace | None = None
        self._cgroup: Cgroup | None = None
        self._cgroup_note = ""
        self._shell: PersistentShell | None = None
        self._privileged = os.geteuid() == 0

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def workspace_host_path(self) -> Path:
        if self._workspace is None:
            raise SandboxError("sandbox is not started")
        return self._workspace.path

    def start(self) -> None:
        if self._shell is not None:
            return
        version = bwrap_version()
        if version is None:
            raise SandboxStartError("bubblewrap (bwrap) is not installed or does not run")
        if version < (0, 5):
            raise SandboxStartError(f"bubblewrap {version} is too old; 0.5 or newer is needed")
        if self._rootfs is None:
            from agentbench.sandbox.rootfs import RootfsError, ensure_rootfs

            try:
                self._rootfs = ensure_rootfs()
            except (RootfsError, OSError) as exc:
                raise SandboxStartError(f"no sandbox root file system: {exc}") from exc
        if not (self._rootfs / "bin" / "bash").exists():
            raise SandboxStartError(f"{self._rootfs} is not a root file system (no /bin/bash)")
        try:
            if self._workspace is None:
                self._workspace = HostWorkspace(
                    self.config.workspace_limit_mb, max_files=self.config.workspace_max_files
                )
            if self._cgroup is None and not self._cgroup_note:
                self._cgroup, self._cgroup_note = create_cgroup(
                    f"agentbench-{os.getpid()}-{secrets.token_hex(4)}",
                    pids_max=self.config.pids_limit,
                    memory_bytes=self.config.memory_limit_mb * 2**20,
                )
                self._start_processes()
        except BaseException:
            self.close()
            raise

    def _start_processes(self) -> None:
        if self._workspace is None:
            raise SandboxStartError("sandbox is not started")
        self._shell = PersistentShell(
            self._argv(), kill=self._kill, env=_host_env(), initial_dir=WORKSPACE
        )
        self._shell.start()

    def _stop_processes(self) -> None:
        shell, self._shell = self._shell, None
        if shell is not None:
            shell.stop()
        # A reset must not rebuild the workspace while anything of the last episode still runs.
        if self._cgroup is not None and not self._cgroup.kill_all():
            raise SandboxError(f"sandbox processes survived SIGKILL: {self._cgroup.pids()}")

    def close(self) -> None:
        try:
            self._stop_processes()
        finally:
            if self._cgroup is not None:
                self._cgroup.kill_all()
                self._cgroup.remove()
                self._cgroup = None
            self._cgroup_note = ""
            if self._workspace is not None:
                self._workspace.close()
                self._workspace = None

    # -- commands ----------------------------------------------------------------------------
    def _active_shell(self) -> PersistentShell | None:
        return self._shell

    def info(self) -> SandboxInfo:
        version = bwrap_version()
        quota = self._workspace.quota_enforced if self._workspace else False
        has_size = version is not None and version >= (0, 8)
        limits = {
            "network": True,
            "filesystem": True,
            "pids": self._cgroup is not None,
            "memory": self._cgroup is not None,
            "workspace_quota": quota,
            "tmp_quota": has_size,
            "chown": self._privileged,
            "capabilities_dropped": self._privileged,
            "cpu": False,
        }
        extra: dict[str, object] = {
            "bwrap_version": ".".join(map(str, version)) if version else None,
            "host_uid": os.geteuid(),
            "capabilities": list(CAPABILITIES) if self._privileged else "user namespace",
        }
        if self._cgroup is not None:
            extra["cgroup"] = {k: str(v) for k, v in self._cgroup.dirs.items()}
            extra["cgroup_version"] = self._cgroup.version
        else:
            extra["cgroup_fallback"] = self._cgroup_note or "not started"
            extra["rlimits"] = self._rlimit_argv() != []
        return SandboxInfo(
            backend=self.name,
            image=str(self._rootfs) if self._rootfs else None,
            limits_enforced=limits,
            extra=extra,
        )

    @property
    def cgroup(self) -> Cgroup | None:
        """The sandbox's cgroup (None when limits fell back to rlimits)."""
        return self._cgroup

    # -- internals ---------------------------------------------------------------------------
    def _argv(self) -> list[str]:
        assert self._workspace is not None and self._rootfs is not None
        version = bwrap_version() or (0,)
        wrapper = ["/bin/sh", "-c", _WRAPPER, "agentbench-sandbox"]
        if self._cgroup is not None:
            wrapper += [str(p) for p in self._cgroup.procs_files]
        wrapper += ["--"]
        if self._cgroup is None:
            wrapper += self._rlimit_argv()

        def tmpfs(path: str, mode: str, size_mb: int) -> list[str]:
            size = ["--size", str(size_mb * 2**20)] if version >= (0, 8) else []
            return ["--perms", mode, *size, "--tmpfs", path]

        argv = [
            "bwrap",
            "--ro-bind", str(self._rootfs), "/",
            "--dev", "/dev",
            "--proc", "/proc",
            *_proc_hardening(),
            *tmpfs("/tmp", "01777", TMP_LIMIT_MB),
            *tmpfs("/root", "0700", HOME_LIMIT_MB),
            *tmpfs("/dev/shm", "01777", SHM_LIMIT_MB),
            "--bind", str(self._workspace.path), WORKSPACE,
            "--chdir", WORKSPACE,
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname", self._hostname,
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--setenv", "PATH", PATH,
            "--setenv", "HOME", "/root",
            "--setenv", "LANG", "C.UTF-8",
            "--setenv", "TERM", "dumb",
            "--setenv", "USER", "root",
            "--setenv", "HOSTNAME", self._hostname,
        ]  # fmt: skip
        if self._privileged:
            argv += ["--cap-drop", "ALL"]
            for cap in CAPABILITIES:
                argv += ["--cap-add", cap]
        else:
            argv += ["--unshare-user", "--uid", "0", "--gid", "0"]
        argv += ["/bin/bash", "--noprofile", "--norc"]
        return wrapper + argv

    def _rlimit_argv(self) -> list[str]:
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            return []
        limits = [f"--as={self.config.memory_limit_mb * 2**20}"]
        if not self._privileged:
            # RLIMIT_NPROC counts every process of the uid; for root that would be the host's.
            limits.append(f"--nproc={self.config.pids_limit}")
        return [prlimit, *limits, "--"]

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        if self._cgroup is not None:
            # Everything but the outer bwrap first; it then reaps the namespace and exits, so
            # no zombie is left to a host init that may never reap it.
            self._cgroup.kill_all(spare=proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        # The wrapper became bwrap (same pid, own process group); its PID-namespace child dies
        # with it (--die-with-parent), taking the namespace down.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


# Run as real root without a user namespace, bubblewrap does not make /proc/sys read-only: a
# writable /proc/sys/kernel/core_pattern would let the sandbox run a program as root on the host.
# So every /proc entry that changes the kernel is bound read-only (from the host's /proc: sysctl
# files answer for the *reader's* namespaces), and those that leak kernel memory are masked; the
# lists follow Docker's default masked/read-only paths.
_PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "scsi", "asound")
_PROC_MASKED_FILES = ("kcore", "keys", "timer_list", "sched_debug", "latency_stats", "kallsyms")


def _proc_hardening() -> list[str]:
    argv: list[str] = []
    for name in _PROC_READ_ONLY:
        if os.path.exists(f"/proc/{name}"):
            argv += ["--ro-bind", f"/proc/{name}", f"/proc/{name}"]
    for name in _PROC_MASKED_FILES:
        if os.path.exists(f"/proc/{name}"):
            argv += ["--ro-bind", "/dev/null", f"/proc/{name}"]
    return argv


def _host_env() -> dict[str, str]:
    # bwrap itself runs on the host; --clearenv gives the sandbox its own environment.
    return {"PATH": os.environ.get("PATH", PATH), "LANG": "C.UTF-8"}
