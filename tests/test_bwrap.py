"""What only the bubblewrap backend promises: layout, privileges, cgroups and their cleanup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SandboxFactory

from agentbench.sandbox import Fixture, FixtureEntry, SandboxConfig, SandboxStartError
from agentbench.sandbox import bwrap as bwrap_module
from agentbench.sandbox.bwrap import BwrapSandbox

pytestmark = [pytest.mark.bwrap, pytest.mark.usefixtures("bwrap_rootfs")]


@pytest.fixture(scope="module")
def shared(module_sandbox_factory: SandboxFactory) -> BwrapSandbox:
    sandbox = module_sandbox_factory("bwrap", SandboxConfig(pids_limit=64, memory_limit_mb=256))
    assert isinstance(sandbox, BwrapSandbox)
    return sandbox


@pytest.fixture
def sb(shared: BwrapSandbox) -> Iterator[BwrapSandbox]:
    shared.reset(Fixture())
    yield shared


def test_registry_builds_bwrap() -> None:
    from agentbench.sandbox import make_sandbox

    assert isinstance(make_sandbox("bwrap"), BwrapSandbox)


def test_info_reports_enforced_limits(sb: BwrapSandbox) -> None:
    info = sb.info()
    assert info.backend == "bwrap" and info.image and Path(info.image).is_dir()
    for limit in ("network", "filesystem", "pids", "memory", "workspace_quota", "chown"):
        assert info.limits_enforced[limit], limit
    assert info.limits_enforced["cpu"] is False
    cgroup = sb.cgroup
    assert cgroup is not None
    assert (cgroup.dirs["pids"] / "pids.max").read_text().strip() == "64"
    memory_file = "memory.max" if cgroup.version == 2 else "memory.limit_in_bytes"
    assert int((cgroup.dirs["memory"] / memory_file).read_text()) == 256 * 2**20


def test_layout_and_environment(sb: BwrapSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    # env in a command without a pipeline: a concurrent command's processes also see the two
    # variables that make their stderr line-buffered (agentbench.sandbox.output_order)
    result = sb.exec("pwd; hostname; id -u; env > /tmp/e")
    names = sb.exec("cut -d= -f1 /tmp/e | sort | tr '\\n' ' '")
    lines = [*result.stdout.splitlines(), names.stdout]
    assert lines[:3] == ["/workspace", "sandbox", "0"]
    assert set(lines[3].split()) <= {
        *("PATH", "HOME", "LANG", "TERM", "USER", "HOSTNAME", "PWD", "OLDPWD", "SHLVL", "_")
    }
    assert sb.exec("test -e /work || test -e /var/tmp/agentbench-canary-x; echo $?").stdout == "1\n"
    mounts = sb.exec("df --output=target,size -B1M /tmp /root /dev/shm /workspace | sed 1d").stdout
    sizes = {line.split()[0]: int(line.split()[1]) for line in mounts.splitlines()}
    assert sizes == {
        "/tmp": bwrap_module.TMP_LIMIT_MB,
        "/root": bwrap_module.HOME_LIMIT_MB,
        "/dev/shm": bwrap_module.SHM_LIMIT_MB,
        "/workspace": sb.config.workspace_limit_mb,
    }


def test_host_environment_does_not_leak(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTBENCH_TEST_SECRET", "hunter2")
    with BwrapSandbox() as sandbox:
        assert "hunter2" not in sandbox.exec("env; cat /proc/1/environ").stdout


def test_workspace_mount_is_nosuid_on_the_host(sb: BwrapSandbox) -> None:
    assert sb.exec("cp /bin/sh shell && chmod 4755 shell && stat -c %a shell").stdout == "4755\n"
    options = [
        line.split()[5]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4] == str(sb.workspace_host_path)
    ]
    assert options and all("nosuid" in o and "nodev" in o for o in options), options


def test_tmp_is_capped(sb: BwrapSandbox) -> None:
    result = sb.exec(f"dd if=/dev/zero of=/tmp/fill bs=1M count={bwrap_module.TMP_LIMIT_MB * 2}")
    assert result.exit_code != 0 and "No space left" in result.stderr
    assert sb.exec("rm /tmp/fill && echo ok").stdout == "ok\n"


def test_permission_tools_work_on_the_workspace(sb: BwrapSandbox) -> None:
    sb.reset(Fixture(entries=(FixtureEntry(path="f", text="x", mode=0o600),)))
    script = (
        "chown bob:developers f && setfacl -m u:alice:r f && chmod g+s . && "
        "su alice -s /bin/sh -c 'cat f' && su carol -s /bin/sh -c 'cat f' ; echo rc=$?"
    )
    result = sb.exec(script)
    assert result.stdout == "xrc=1\n" and "Permission denied" in result.stderr
    entry = sb.snapshot().entries["f"]
    assert (entry.owner, entry.group) == ("bob", "developers") and entry.acl


def test_timeout_kills_the_whole_cgroup(sb: BwrapSandbox) -> None:
    cgroup = sb.cgroup
    assert cgroup is not None
    sb.exec("(trap '' TERM HUP; sleep 1000) & disown; sleep 1000 &")
    before = set(cgroup.pids())
    assert len(before) >= 5  # bwrap, its init, bash and the two sleeps
    result = sb.exec("sleep 60", timeout=0.5)
    assert result.timed_out and result.shell_restarted
    after = set(cgroup.pids())
    assert after and not (before & after)
    assert "sleep" not in sb.exec("ps -e -o comm=").stdout


def test_reset_kills_leftovers(sb: BwrapSandbox) -> None:
    cgroup = sb.cgroup
    assert cgroup is not None
    sb.exec("sleep 1000 &")
    before = set(cgroup.pids())
    sb.reset(Fixture())
    assert not (before & set(cgroup.pids()))


def test_two_sandboxes_are_isolated(sandbox_factory: SandboxFactory) -> None:
    a, b = sandbox_factory("bwrap"), sandbox_factory("bwrap")
    a.exec("echo mine > only-a; sleep 1000 &")
    assert a.exec("ls -A").stdout == "only-a\n" and "sleep" in a.exec("ps -e").stdout
    assert b.exec("ls -A").stdout == "" and "sleep" not in b.exec("ps -e").stdout
    assert a.workspace_host_path != b.workspace_host_path


def test_close_removes_cgroup_workspace_and_mount(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory("bwrap")
    assert isinstance(sandbox, BwrapSandbox)
    sandbox.exec("sleep 1000 &")
    cgroup = sandbox.cgroup
    assert cgroup is not None
    dirs = list(cgroup.dirs.values())
    workspace = sandbox.workspace_host_path
    sandbox.close()
    sandbox.close()
    assert not any(d.exists() for d in dirs)
    assert not workspace.exists()
    assert str(workspace) not in Path("/proc/self/mountinfo").read_text()


def test_missing_rootfs_is_a_start_error(tmp_path: Path) -> None:
    sandbox = BwrapSandbox(rootfs=tmp_path)
    with pytest.raises(SandboxStartError, match="not a root file system"):
        sandbox.start()
    sandbox.close()


def test_missing_bwrap_is_a_start_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bwrap_module, "bwrap_version", lambda: None)
    with pytest.raises(SandboxStartError, match="not installed"):
        BwrapSandbox().start()


def test_rlimit_fallback_without_cgroups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        bwrap_module, "create_cgroup", lambda *a, **k: (None, "disabled for this test")
    )
    with BwrapSandbox(SandboxConfig(memory_limit_mb=64)) as sandbox:
        info = sandbox.info()
        assert not info.limits_enforced["pids"] and not info.limits_enforced["memory"]
        assert info.extra["cgroup_fallback"] == "disabled for this test"
        if info.extra["rlimits"]:
            grab = sandbox.exec("python3 -c 'bytearray(512 * 2**20)'")
            assert grab.exit_code != 0 and "MemoryError" in grab.stderr
        assert sandbox.exec("echo ok").stdout == "ok\n"


def test_user_namespace_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a non-root host gets: a fake root in a user namespace, limits from rlimits. Forced
    # here as root (the venv lives under /root, out of reach of an unprivileged user).
    monkeypatch.setattr(bwrap_module, "create_cgroup", lambda *a, **k: (None, "off"))
    sandbox = BwrapSandbox(SandboxConfig(memory_limit_mb=64, pids_limit=32))
    sandbox._privileged = False
    with sandbox:
        assert not sandbox.info().limits_enforced["chown"]
        result = sandbox.exec("id -u; cat /proc/self/uid_map | wc -l; touch f; chown bob f")
        assert result.stdout.split() == ["0", "1"] and result.exit_code != 0
        limits = sandbox.exec("grep -E 'Max (processes|address space)' /proc/self/limits")
        assert [
            line.split()[2 if "processes" in line else 3] for line in limits.stdout.splitlines()
        ] == [
            "32",
            str(64 * 2**20),
        ]
