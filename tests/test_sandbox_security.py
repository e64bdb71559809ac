"""Escape and abuse attempts against the isolating backends (bwrap, docker).

Every test checks that a host canary (random files outside any workspace) is byte-for-byte
unchanged and that the sandbox still works afterwards (or was cleanly restarted).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ISOLATED_BACKENDS, HostCanary, SandboxFactory, backend_params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentbench.sandbox import Fixture, FixtureEntry, Sandbox, SandboxConfig, SandboxFileError

pytestmark = pytest.mark.usefixtures("host_canary")

TIGHT = SandboxConfig(
    command_timeout_s=10,
    pids_limit=48,
    memory_limit_mb=128,
    workspace_limit_mb=8,
    workspace_max_files=500,
    output_kill_bytes=2 * 2**20,
)
SEED = Fixture(entries=(FixtureEntry(path="notes.txt", text="seed\n"),))
# Capabilities that would open a way out (numbers from linux/capability.h).
DANGEROUS_CAPS = {
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_NET_ADMIN": 12,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_TIME": 25,
}


@pytest.fixture(scope="module", params=backend_params(ISOLATED_BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def shared(backend: str, module_sandbox_factory: SandboxFactory) -> Sandbox:
    return module_sandbox_factory(backend, SandboxConfig(command_timeout_s=10))


@pytest.fixture(scope="module")
def tight_shared(backend: str, module_sandbox_factory: SandboxFactory) -> Sandbox:
    return module_sandbox_factory(backend, TIGHT)


@pytest.fixture
def sb(shared: Sandbox) -> Iterator[Sandbox]:
    shared.reset(SEED)
    yield shared
    assert_works(shared)


@pytest.fixture
def tight(tight_shared: Sandbox) -> Iterator[Sandbox]:
    tight_shared.reset(SEED)
    yield tight_shared
    assert_works(tight_shared)


def assert_works(sandbox: Sandbox) -> None:
    token = secrets.token_hex(4)
    result = sandbox.exec(f"echo {token} > probe && cat probe && rm probe", timeout=10)
    assert result.stdout == f"{token}\n", result


def cap_bits(sandbox: Sandbox, command: str) -> int:
    result = sandbox.exec(command)
    assert result.exit_code == 0, result
    return int(result.stdout.strip(), 16)


# -- the file system ---------------------------------------------------------------------------
def test_file_helpers_cannot_traverse_to_the_host(sb: Sandbox, host_canary: HostCanary) -> None:
    up = "../" * 12
    secret = host_canary.path / "secret.txt"
    for path in (f"{up}{str(secret).lstrip('/')}", str(secret)):
        with pytest.raises(SandboxFileError):
            sb.read_file(path)
        with pytest.raises(SandboxFileError):
            sb.write_file(path, b"pwned")
        with pytest.raises(SandboxFileError):
            sb.list_dir(os.path.dirname(path))
    # What `..` reaches is the sandbox's own root, not the host's.
    assert sb.exec("hostname").stdout == sb.exec(f"cat {up}proc/sys/kernel/hostname").stdout
    assert sb.exec("hostname").stdout.strip() != socket.gethostname() or sb.name == "local"


def test_symlinks_out_of_the_workspace(sb: Sandbox, host_canary: HostCanary) -> None:
    canary = str(host_canary.path)
    result = sb.exec(f"ln -s / root && ln -s {canary} canary && ln -s /proc/1/root p1")
    assert result.ok, result
    for link in ("root" + canary, "canary", "p1" + canary):
        with pytest.raises(SandboxFileError):
            sb.read_file(f"{link}/secret.txt")
        with pytest.raises(SandboxFileError):
            sb.write_file(f"{link}/secret.txt", b"pwned")
        with pytest.raises(SandboxFileError):
            sb.write_file(f"{link}/new.txt", b"pwned")
    # The host side never follows them either: the snapshot sees three symlinks, nothing more.
    snapshot = sb.snapshot()
    assert {p: e.kind for p, e in snapshot.entries.items()} == {
        "canary": "symlink",
        "notes.txt": "file",
        "p1": "symlink",
        "root": "symlink",
    }
    assert snapshot.entries["root"].target == "/"
    sb.reset(SEED)  # clearing a workspace full of outward links must not follow them
    assert not (host_canary.path / "new.txt").exists()


def test_root_file_system_is_read_only(sb: Sandbox) -> None:
    attempts = [
        "touch /etc/pwned",
        "mount -o remount,rw /",
        "unshare -U -r -m sh -c 'mount -o remount,rw / && touch /etc/pwned'",
        "chattr -i /etc/passwd",
        "echo x >> /bin/bash",
    ]
    for command in attempts:
        assert sb.exec(command).exit_code != 0, command
    assert sb.exec("test -e /etc/pwned").exit_code == 1
    assert sb.exec("head -c 4 /bin/bash | od -c | head -1").stdout.split()[1:5] == [
        "177",
        "E",
        "L",
        "F",
    ]


def test_proc_does_not_lead_out(sb: Sandbox, host_canary: HostCanary) -> None:
    canary = str(host_canary.path)
    result = sb.exec(f"cat /proc/*/root{canary}/secret.txt /proc/*/cwd/../..{canary}/secret.txt")
    assert result.exit_code != 0 and result.stdout == ""
    assert sb.exec("readlink /proc/self/cwd").stdout == f"{sb.workspace_path}\n"
    # A private PID namespace: only the sandbox's own few processes are visible.
    pids = sb.exec("ls -d /proc/[0-9]* | wc -l").stdout
    assert 1 <= int(pids) <= 8, pids
    assert str(os.getpid()) not in sb.exec("ls /proc").stdout.split() or os.getpid() < 10
    mounts = sb.exec("cat /proc/self/mountinfo").stdout
    assert canary not in mounts
    # Kernel knobs are read-only (core_pattern would run a host program as root). The attempt
    # writes the current value back, so that even a failing test leaves the host as it was.
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    knob = "/proc/sys/kernel/core_pattern"
    rewrite = sb.exec(f"v=$(cat {knob}) && printf '%s\\n' \"$v\" > {knob}")
    assert rewrite.exit_code != 0, "/proc/sys is writable from the sandbox"
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before


def test_capabilities_are_dropped(sb: Sandbox) -> None:
    effective = cap_bits(sb, "awk '/^CapEff/ {print $2}' /proc/self/status")
    bounding_child = cap_bits(sb, "sh -c \"awk '/^CapPrm/ {print \\$2}' /proc/self/status\"")
    for name, bit in DANGEROUS_CAPS.items():
        assert not effective & (1 << bit), f"{name} is effective in the sandbox"
        assert not bounding_child & (1 << bit), f"{name} is regained by a child process"
    as_bob = sb.exec("su bob -s /bin/sh -c \"awk '/^CapEff/ {print \\$2}' /proc/self/status\"")
    assert int(as_bob.stdout.strip(), 16) == 0, as_bob


# -- the network -------------------------------------------------------------------------------
def test_no_network(sb: Sandbox) -> None:
    interfaces = sb.exec("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '").stdout.split()
    assert interfaces == ["lo"]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        bash = sb.exec(f"timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'")
        assert bash.exit_code not in (0, 124), bash
        py = sb.exec(
            'python3 -c "import socket; s=socket.socket(); s.settimeout(3); '
            f"s.connect(('127.0.0.1', {port}))\""
        )
        assert py.exit_code != 0 and "Error" in py.stderr, py
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached the host's loopback
    outside = sb.exec("timeout 5 bash -c 'exec 3<>/dev/tcp/1.1.1.1/80'")
    assert outside.exit_code not in (0, 124), outside


# -- resource abuse ----------------------------------------------------------------------------
def test_fork_bomb_is_contained(tight: Sandbox) -> None:
    result = tight.exec("bomb() { bomb | bomb & }; bomb; sleep 30", timeout=3)
    assert result.timed_out and result.shell_restarted
    # Everything the bomb started died with the sandbox's processes.
    listing = tight.exec("ps -e -o comm= | sort").stdout.split()
    assert "bash" in listing and len(listing) <= 4, listing
    tight.reset(SEED)
    assert tight.exec("for i in 1 2 3; do (true); done; echo fine").stdout == "fine\n"


def test_pids_limit_stops_forks(tight: Sandbox) -> None:
    limit = tight.config.pids_limit
    script = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while n < 10000:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print(n, e.errno)\n"
    )
    result = tight.exec(f"python3 -c {shlex.quote(script)}", timeout=8)
    assert not result.timed_out, result
    started, errno_ = map(int, result.stdout.split())
    assert started < limit and errno_ == 11, result  # EAGAIN at the limit
    tight.reset(SEED)


def test_memory_limit(tight: Sandbox) -> None:
    grab = tight.config.memory_limit_mb * 4 * 2**20
    result = tight.exec(f"python3 -c 'b = bytearray({grab}); b[::4096] = b\"x\" * len(b[::4096])'")
    assert result.exit_code != 0 and not result.timed_out, result


def test_filling_the_disk_hits_the_quota(tight: Sandbox) -> None:
    limit_mb = tight.config.workspace_limit_mb
    result = tight.exec(f"dd if=/dev/zero of=big bs=1M count={limit_mb * 8}")
    assert result.exit_code != 0 and "No space left" in result.stderr, result
    size = (tight.workspace_host_path / "big").stat().st_size
    assert size <= limit_mb * 2**20
    assert tight.exec("rm big && echo freed").stdout == "freed\n"


def test_millions_of_files_hit_the_file_quota(tight: Sandbox) -> None:
    limit = tight.config.workspace_max_files
    result = tight.exec(
        f"mkdir many && cd many && for i in $(seq {limit * 2}); do : > f$i || break; done; "
        "ls | wc -l",
        timeout=60,
    )
    assert "No space left" in result.stderr, result
    assert int(result.stdout.strip()) < limit
    assert len(tight.snapshot().entries) <= limit
    tight.reset(SEED)


def test_huge_output_is_capped_and_flood_killed(tight: Sandbox) -> None:
    capped = tight.exec("head -c 1000000 /dev/urandom | base64")
    assert capped.stdout_truncated and len(capped.stdout) <= tight.config.output_limit_bytes
    assert capped.exit_code == 0
    flood = tight.exec("yes flood", timeout=30)
    assert flood.output_flooded and flood.shell_restarted and not flood.timed_out
    assert flood.exit_code is None and len(flood.stdout) == tight.config.output_limit_bytes


def test_command_that_never_ends(tight: Sandbox) -> None:
    tight.exec("mkdir -p here && cd here")
    result = tight.exec(
        "(trap '' TERM HUP INT; sleep 1000) & disown; trap '' TERM INT; while :; do :; done",
        timeout=1,
    )
    assert result.timed_out and result.shell_restarted
    assert tight.exec("pwd").stdout == f"{tight.workspace_path}/here\n"
    assert "sleep" not in tight.exec("ps -e -o comm=").stdout


# -- garbage in --------------------------------------------------------------------------------
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=120) | st.text(max_size=120))
def test_garbage_commands(shared: Sandbox, raw: bytes | str) -> None:
    command = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    result = shared.exec(command, timeout=5)
    assert result.exit_code is None or 0 <= result.exit_code <= 255
    assert shared.exec("echo alive").stdout == "alive\n"


_SEGMENTS = st.sampled_from(["..", ".", "etc", "tmp", "x", "var", "proc", "self", "root", "/"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(_SEGMENTS, min_size=1, max_size=8))
def test_random_paths_stay_inside(shared: Sandbox, parts: list[str]) -> None:
    token = "ab-" + secrets.token_hex(6)
    path = "/".join(parts) + "/" + token
    with contextlib.suppress(SandboxFileError):
        shared.write_file(path, b"x")
    for host_dir in ("/", "/tmp", "/var/tmp", "/etc", "/root"):
        assert not (Path(host_dir) / token).exists(), path
    with contextlib.suppress(SandboxFileError):
        shared.read_file(path)
