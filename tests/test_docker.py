"""Docker-specific behaviour of the `docker` backend, against a real daemon and the real image.

The backend-neutral contract (exec, files, reset, snapshots) lives in test_sandbox_contract.py;
these tests cover what only Docker has: the imported image, container settings, killing inside
the container, container turnover on reset, and infrastructure failures.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SandboxFactory, require_backend

from agentbench.sandbox import Fixture, FixtureEntry, SandboxConfig, SandboxError, SandboxStartError
from agentbench.sandbox.docker import OWNER_LABEL, DockerSandbox, remove_leftovers
from agentbench.sandbox.image import (
    IDLE_COMMAND,
    LABEL,
    docker_client,
    ensure_image,
    image_tag,
    write_rootfs_tar,
)
from agentbench.sandbox.rootfs import recipe_hash

pytestmark = pytest.mark.docker

CONFIG = SandboxConfig(command_timeout_s=15, memory_limit_mb=128, pids_limit=64, cpus=0.5)
# CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, FSETID 4, KILL 5, SETGID 6, SETUID 7
EXPECTED_CAPS = sum(1 << n for n in (0, 1, 3, 4, 5, 6, 7))


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    require_backend("docker")
    c = docker_client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def shared(module_sandbox_factory: SandboxFactory) -> DockerSandbox:
    sandbox = module_sandbox_factory("docker", CONFIG)
    assert isinstance(sandbox, DockerSandbox)
    return sandbox


@pytest.fixture
def sb(shared: DockerSandbox) -> DockerSandbox:
    shared.reset(Fixture())
    return shared


@pytest.fixture
def own(sandbox_factory: SandboxFactory) -> Iterator[DockerSandbox]:
    """A sandbox of the test's own, for tests that break or close it."""
    sandbox = sandbox_factory("docker", CONFIG)
    assert isinstance(sandbox, DockerSandbox)
    yield sandbox


def _container_ids(client: Any, pid: int | None = None) -> set[str]:
    owner = f"{os.uname().nodename}:{pid or os.getpid()}"
    found = client.containers.list(
        all=True, sparse=True, filters={"label": f"{OWNER_LABEL}={owner}"}
    )
    return {c.id for c in found}


# -- image ---------------------------------------------------------------------------------------
def test_image_is_imported_from_the_local_rootfs(client: Any) -> None:
    tag = ensure_image(client)
    assert tag == image_tag() == f"agentbench-sandbox:{recipe_hash()}"
    image = client.images.get(tag)
    assert image.labels[LABEL] == "1"
    assert image.labels["agentbench.rootfs"] == recipe_hash()
    config = image.attrs["Config"]
    assert config["WorkingDir"] == "/workspace"
    assert any(e.startswith("PATH=") and "/usr/bin" in e for e in config["Env"])
    # Idempotent: the second call finds the same image instead of importing another.
    assert ensure_image(client) == tag
    assert client.images.get(tag).id == image.id


def test_image_has_the_sandbox_accounts(sb: DockerSandbox) -> None:
    result = sb.exec("id bob; id -u; getent group developers")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"uid={sb.accounts.uid('bob')}(bob)")
    assert lines[1] == "0"
    assert lines[2].startswith("developers:")


def test_rootfs_tar_keeps_numeric_owners_and_drops_devices(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "dev").mkdir()
    (root / "etc" / "owned").write_text("x")
    os.chown(root / "etc" / "owned", 1001, 2002)
    (root / "bin").symlink_to("usr/bin")
    os.mknod(root / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    dest = tmp_path / "root.tar"
    write_rootfs_tar(root, dest)
    with tarfile.open(dest) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "dev/null" not in members
    assert "dev" in members
    owned = members["etc/owned"]
    assert (owned.uid, owned.gid, owned.uname, owned.gname) == (1001, 2002, "", "")
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"


# -- container settings --------------------------------------------------------------------------
def test_container_host_config_has_the_limits(sb: DockerSandbox, client: Any) -> None:
    container = client.containers.get(sb.container_id)
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["Memory"] == CONFIG.memory_limit_mb * 2**20
    assert host["MemorySwap"] == CONFIG.memory_limit_mb * 2**20
    assert host["NanoCpus"] == int(CONFIG.cpus * 1e9)
    assert host["PidsLimit"] == CONFIG.pids_limit
    assert host["CapDrop"] == ["ALL"]
    assert "DAC_READ_SEARCH" not in host["CapAdd"] and "SYS_ADMIN" not in host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert "size=64m" in host["Tmpfs"]["/tmp"]
    binds = [(m["Target"], m["Source"]) for m in host["Mounts"]]
    assert binds == [("/workspace", str(sb.workspace_host_path))]
    assert container.labels[LABEL] == "1"
    assert container.labels[OWNER_LABEL] == f"{os.uname().nodename}:{os.getpid()}"


def test_capabilities_and_no_new_privs_inside(sb: DockerSandbox) -> None:
    result = sb.exec("grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status")
    fields = dict(line.split(":\t") for line in result.stdout.splitlines())
    assert int(fields["CapEff"], 16) == EXPECTED_CAPS
    assert int(fields["CapBnd"], 16) == EXPECTED_CAPS
    assert fields["NoNewPrivs"] == "1"


def test_network_is_none(sb: DockerSandbox) -> None:
    assert sb.exec("ls /sys/class/net").stdout.split() == ["lo"]
    probe = (
        "python3 -c 'import socket; s=socket.socket(); s.settimeout(3);"
        ' s.connect(("1.1.1.1", 53))\''
    )
    result = sb.exec(probe)
    assert result.exit_code != 0
    assert "unreachable" in result.stderr.lower()


def test_root_is_read_only_but_workspace_and_tmp_are_writable(sb: DockerSandbox) -> None:
    result = sb.exec("touch /etc/x")
    assert result.exit_code != 0 and "Read-only file system" in result.stderr
    assert sb.exec("touch /usr/bin/x").exit_code != 0
    assert sb.exec("echo hi > /workspace/out && echo t > /tmp/t && echo h > ~/h").exit_code == 0
    assert (sb.workspace_host_path / "out").read_text() == "hi\n"


def test_memory_limit_kills_a_hog(sb: DockerSandbox) -> None:
    result = sb.exec("python3 -c 'b = bytearray(400 * 2**20); print(len(b))'")
    assert result.exit_code == 137, result
    assert sb.exec("echo alive").stdout == "alive\n"


def test_pids_limit_stops_forking(sb: DockerSandbox) -> None:
    script = (
        "import os, signal\n"
        "kids = []\n"
        "try:\n"
        "    while len(kids) < 500:\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            signal.pause()\n"
        "            os._exit(0)\n"
        "        kids.append(pid)\n"
        "except OSError as exc:\n"
        "    print(len(kids), exc.errno)\n"
        "for pid in kids:\n"
        "    os.kill(pid, 9)\n"
        "    os.waitpid(pid, 0)\n"
    )
    sb.write_file("forker.py", script.encode())
    result = sb.exec("python3 forker.py")
    assert result.exit_code == 0, result
    started, errno = map(int, result.stdout.split())
    assert errno == 11  # EAGAIN from the pids cgroup
    assert started < CONFIG.pids_limit


# -- killing inside the container ----------------------------------------------------------------
def _agent_processes(sb: DockerSandbox) -> list[str]:
    """Command lines in the container other than PID 1, this shell and the `ps` itself."""
    out = sb.exec("ps -eo pid=,args=").stdout
    found = []
    for line in out.splitlines():
        pid, args = line.split(None, 1)
        if pid == "1" or args.startswith(("/bin/bash --noprofile --norc", "ps -eo")):
            continue
        found.append(args)
    return found


def test_timeout_kills_processes_inside_the_container(sb: DockerSandbox) -> None:
    first = sb.container_id
    sb.exec("cd /tmp")
    result = sb.exec("sleep infinity & setsid su bob -c 'sleep 990' & sleep 1000", timeout=1)
    assert result.timed_out and result.shell_restarted
    assert _agent_processes(sb) == []
    assert sb.exec("pwd").stdout == "/tmp\n"  # the shell came back where it was
    assert sb.container_id == first


def test_fork_bomb_dies_on_timeout(own: DockerSandbox) -> None:
    # Every copy sleeps after forking, so the bomb holds the whole pids limit until killed (the
    # classic `:(){ :|:& };:` dies out by itself once forks fail).
    result = own.exec("bomb() { bomb | bomb & sleep 1000; }; bomb", timeout=3)
    assert result.timed_out
    assert _agent_processes(own) == []
    assert own.exec("echo alive").stdout == "alive\n"


def test_agent_kill_all_leaves_the_sandbox_usable(sb: DockerSandbox, client: Any) -> None:
    first = sb.container_id
    sb.exec("sleep 500 &")
    result = sb.exec("/bin/kill -9 -1")  # kills this very shell too
    assert result.shell_restarted
    assert sb.exec("echo still here").stdout == "still here\n"
    assert sb.container_id == first
    assert client.containers.get(first).status == "running"
    assert _agent_processes(sb) == []


# -- container turnover --------------------------------------------------------------------------
def test_reset_gives_a_fresh_container(sb: DockerSandbox, client: Any) -> None:
    from docker.errors import NotFound

    assert sb.exec("echo x > /tmp/marker && sleep 300 &").exit_code == 0
    first = sb.container_id
    sb.reset(Fixture(entries=(FixtureEntry(path="a.txt", text="a"),)))
    assert sb.container_id != first
    with pytest.raises(NotFound):
        client.containers.get(first)
    result = sb.exec("ls /tmp; cat a.txt")
    assert result.stdout == "a"
    assert _agent_processes(sb) == []


@pytest.mark.parametrize("pool", [0, 2])
def test_reset_with_other_pool_sizes(sandbox_factory: SandboxFactory, pool: int) -> None:
    sandbox = sandbox_factory("docker", CONFIG, pool=pool)
    assert isinstance(sandbox, DockerSandbox)
    seen = set()
    for i in range(4):
        seen.add(sandbox.container_id)
        assert sandbox.exec(f"ls /tmp; echo {i} > /tmp/mark; cat /tmp/mark").stdout == f"{i}\n"
        sandbox.reset(Fixture())
    assert len(seen) == 4
    assert sandbox.info().extra["pool"] == pool


def test_close_removes_every_container(client: Any) -> None:
    before = _container_ids(client)
    sandbox = DockerSandbox(CONFIG)
    sandbox.start()
    sandbox.reset(Fixture())  # leaves a pre-started spare and a removal in flight
    workspace = sandbox.workspace_host_path
    assert len(_container_ids(client) - before) >= 1
    sandbox.close()
    assert _container_ids(client) == before
    assert not workspace.exists()
    sandbox.close()  # twice is fine


def test_remove_leftovers_only_takes_dead_owners(client: Any, shared: DockerSandbox) -> None:
    orphan = client.containers.create(
        image_tag(),
        command=IDLE_COMMAND,
        labels={LABEL: "1", OWNER_LABEL: f"{os.uname().nodename}:999999999"},
        network_mode="none",
    )
    try:
        removed = remove_leftovers(client)
        assert orphan.id in removed
        assert shared.container_id not in removed
        assert client.containers.get(shared.container_id).status == "running"
    finally:
        from docker.errors import NotFound

        with contextlib.suppress(NotFound):
            orphan.remove(force=True)


# -- infrastructure failures ---------------------------------------------------------------------
def test_killed_container_raises_sandbox_error(own: DockerSandbox, client: Any) -> None:
    cid = own.container_id
    client.containers.get(cid).kill()
    with pytest.raises(SandboxError, match="exited"):
        own.exec("echo hi")
    own.reset(Fixture())  # a reset brings a new container
    assert own.exec("echo back").stdout == "back\n"


class SocketProxy:
    """Relays a unix socket to the Docker daemon's, so a test can make "the daemon" vanish
    for one sandbox without stopping the daemon other tests use."""

    def __init__(self, path: Path, target: str):
        self.target = target
        self.sockets: list[socket.socket] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(32)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self.sockets += [conn, upstream]
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_daemon_going_away_raises_sandbox_error(client: Any, tmp_path: Path) -> None:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip(f"the relay needs a unix-socket daemon, not {host}")
    proxy = SocketProxy(tmp_path / "docker.sock", host.removeprefix("unix://"))
    sandbox = DockerSandbox(CONFIG, base_url=f"unix://{tmp_path}/docker.sock", pool=0)
    cid = None
    try:
        sandbox.start()
        cid = sandbox.container_id
        assert sandbox.exec("echo via relay").stdout == "via relay\n"
        proxy.close()
        with pytest.raises(SandboxError, match="could not be restarted"):
            sandbox.exec("echo hi")
        with pytest.raises((SandboxError, SandboxStartError), match="Connection"):
            sandbox.reset(Fixture())  # the old container cannot be removed
        sandbox.close()  # logs, does not raise
    finally:
        proxy.close()
        sandbox.close()
        if cid is not None:
            with contextlib.suppress(Exception):
                client.containers.get(cid).remove(force=True)


def test_no_daemon_raises_start_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = f"unix://{tmp_path}/docker.sock"
    sandbox = DockerSandbox(CONFIG, base_url=missing)
    with pytest.raises(SandboxStartError, match="no Docker daemon answers"):
        sandbox.start()
    sandbox.close()
    monkeypatch.setenv("DOCKER_HOST", missing)
    with pytest.raises(SandboxStartError, match="no Docker daemon answers"):
        ensure_image()


def test_missing_image_raises_start_error(client: Any) -> None:
    sandbox = DockerSandbox(CONFIG, image="agentbench-sandbox:does-not-exist")
    with pytest.raises(SandboxStartError, match="does-not-exist"):
        sandbox.start()
    sandbox.close()
