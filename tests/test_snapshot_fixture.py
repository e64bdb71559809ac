"""Fixtures (validation, materialize) and snapshots (walk, hash, diff) on the host file system."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import threading
from pathlib import Path, PurePosixPath

import pytest
from conftest import HostCanary
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agentbench.sandbox import Fixture, FixtureEntry, FixtureError, diff, take_snapshot
from agentbench.sandbox.accounts import Accounts
from agentbench.sandbox.fixture import (
    FIXED_MTIME,
    check_relative_path,
    clear_directory,
    materialize,
)
from agentbench.sandbox.snapshot import pin_mtimes

ACCOUNTS = Accounts.default()
AS_ROOT = os.geteuid() == 0

TREE = Fixture(
    entries=(
        FixtureEntry(path="a.txt", text="alpha\n"),
        FixtureEntry(path="ro", kind="dir", mode=0o500),
        FixtureEntry(path="ro/inside.txt", text="x", mode=0o400, owner="bob", group="developers"),
        FixtureEntry(path="deep/er/est.bin", data_b64="AP8="),
        FixtureEntry(path="setgid", kind="dir", mode=0o2775, group="ops"),
        FixtureEntry(path="out", kind="symlink", target="/etc/passwd"),
        FixtureEntry(path="up", kind="symlink", target="../../.."),
    )
)


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad", ["", "/abs", "../x", "a/../../b", "a/..", ".", "a\0b", "x" * 1100, "a//../b"]
)
def test_bad_paths_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        check_relative_path(bad)
    with pytest.raises(ValidationError):
        FixtureEntry(path=bad)


@given(st.lists(st.sampled_from(["a", "b", ".", "..", "", "ü", "-x", " "]), min_size=1))
def test_accepted_paths_stay_under_the_root(parts: list[str]) -> None:
    try:
        normal = check_relative_path("/".join(parts))
    except ValueError:
        return
    joined = PurePosixPath("/root") / normal
    assert ".." not in joined.parts and joined.is_relative_to("/root") and joined != Path("/root")


@pytest.mark.parametrize(
    "entries",
    [
        [{"path": "a"}, {"path": "a"}],
        [{"path": "l", "kind": "symlink"}],
        [{"path": "d", "kind": "dir", "text": "x"}],
        [{"path": "f", "text": "x", "data_b64": "eA=="}],
        [{"path": "f", "target": "x"}],
        [{"path": "f", "mode": 0o10000}],
        [{"path": "l", "kind": "symlink", "target": "/tmp"}, {"path": "l/x", "text": "x"}],
        [{"path": "f", "text": "x"}, {"path": "f/g", "text": "y"}],
        [{"path": "f", "unknown": 1}],
    ],
)
def test_malformed_fixtures_are_rejected(entries: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError):
        Fixture.model_validate({"entries": entries})


def test_unknown_owner_is_a_fixture_error(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="mallory"):
        materialize(Fixture(entries=(FixtureEntry(path="f", owner="mallory"),)), tmp_path, ACCOUNTS)


def test_digest_is_canonical() -> None:
    same = Fixture.model_validate(TREE.model_dump())
    assert same.digest() == TREE.digest()
    other = TREE.model_copy(update={"entries": TREE.entries[:-1]})
    assert other.digest() != TREE.digest()


# -- materialize -------------------------------------------------------------------------------
def test_materialize_writes_modes_owners_and_links(tmp_path: Path) -> None:
    materialize(TREE, tmp_path, ACCOUNTS)
    assert (tmp_path / "a.txt").read_text() == "alpha\n"
    assert (tmp_path / "deep/er/est.bin").read_bytes() == b"\x00\xff"
    assert stat.S_IMODE((tmp_path / "ro").stat().st_mode) == 0o500
    assert stat.S_IMODE((tmp_path / "setgid").stat().st_mode) == 0o2775
    assert os.readlink(tmp_path / "out") == "/etc/passwd"
    assert os.readlink(tmp_path / "up") == "../../.."
    for path in tmp_path.rglob("*"):
        assert path.lstat().st_mtime == FIXED_MTIME
    if AS_ROOT:
        st_inside = (tmp_path / "ro/inside.txt").stat()
        assert (st_inside.st_uid, st_inside.st_gid) == (1001, 2002)
        assert (tmp_path / "setgid").stat().st_gid == 2003


def test_clear_directory_never_follows_links(tmp_path: Path, host_canary: HostCanary) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "to-canary").symlink_to(host_canary.path)
    (ws / "to-secret").symlink_to(host_canary.path / "secret.txt")
    locked = ws / "locked" / "inner"
    locked.mkdir(parents=True)
    (locked / "f").write_text("x")
    locked.chmod(0)
    (ws / "locked").chmod(0)
    os.mkfifo(ws / "fifo")
    clear_directory(ws)
    assert list(ws.iterdir()) == []
    host_canary.assert_unchanged()


def test_materialize_twice_is_byte_identical(tmp_path: Path) -> None:
    materialize(TREE, tmp_path, ACCOUNTS)
    first = take_snapshot(tmp_path, ACCOUNTS)
    (tmp_path / "a.txt").write_text("changed")
    (tmp_path / "extra").mkdir()
    materialize(TREE, tmp_path, ACCOUNTS)
    assert take_snapshot(tmp_path, ACCOUNTS).digest() == first.digest()


# -- snapshots ---------------------------------------------------------------------------------
def test_snapshot_describes_entries_without_following(tmp_path: Path) -> None:
    materialize(TREE, tmp_path, ACCOUNTS)
    snap = take_snapshot(tmp_path, ACCOUNTS)
    assert sorted(snap.entries) == [
        "a.txt", "deep", "deep/er", "deep/er/est.bin", "out", "ro", "ro/inside.txt", "setgid",
        "up",
    ]  # fmt: skip
    out = snap.entries["out"]
    assert (out.kind, out.target, out.sha256, out.size) == ("symlink", "/etc/passwd", None, 0)
    assert snap.entries["a.txt"].sha256 == hashlib.sha256(b"alpha\n").hexdigest()
    assert snap.entries["ro"].mode == 0o500
    if AS_ROOT:
        assert (snap.entries["ro/inside.txt"].owner, snap.entries["ro/inside.txt"].group) == (
            "bob",
            "developers",
        )
    assert set(snap.files()) == {"a.txt", "deep/er/est.bin", "ro/inside.txt"}


def test_pin_mtimes_sets_newer_entries_only_and_never_follows(
    tmp_path: Path, host_canary: HostCanary
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    materialize(TREE, ws, ACCOUNTS)
    (ws / "a.txt").write_text("changed")
    (ws / "deep/new.txt").write_text("new")
    (ws / "to-host").symlink_to(host_canary.path / "secret.txt")
    outside = (host_canary.path / "secret.txt").lstat().st_mtime
    tick = FIXED_MTIME + 60
    # a.txt, deep/new.txt, the link, and the two directories whose entries changed.
    assert pin_mtimes(ws, FIXED_MTIME, tick) == 5
    times = {p: (ws / p).lstat().st_mtime for p in take_snapshot(ws, ACCOUNTS).entries}
    pinned = {"a.txt", "deep", "deep/new.txt", "to-host"}
    assert {p for p, t in times.items() if t == tick} == pinned
    assert {p for p, t in times.items() if t == FIXED_MTIME} == set(times) - pinned
    assert ws.lstat().st_mtime == tick
    assert (host_canary.path / "secret.txt").lstat().st_mtime == outside
    assert pin_mtimes(ws, tick, tick + 60) == 0  # nothing changed since
    host_canary.assert_unchanged()


def test_snapshot_does_not_hang_on_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dev").symlink_to("/dev/zero")
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(take_snapshot(tmp_path, ACCOUNTS)))
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "snapshot hung on a FIFO"
    snap = result[0]
    assert snap.entries["pipe"].kind == "other"  # type: ignore[attr-defined]
    assert snap.entries["dev"].kind == "symlink"  # type: ignore[attr-defined]


def test_diff_categories(tmp_path: Path) -> None:
    materialize(TREE, tmp_path, ACCOUNTS)
    before = take_snapshot(tmp_path, ACCOUNTS)
    assert diff(before, before).empty
    (tmp_path / "a.txt").chmod(0o600)
    (tmp_path / "deep/er/est.bin").write_bytes(b"new")
    (tmp_path / "out").unlink()
    (tmp_path / "out").symlink_to("/etc/shadow")
    (tmp_path / "up").unlink()
    (tmp_path / "up").mkdir()
    (tmp_path / "new.txt").write_text("n")
    if AS_ROOT:
        os.chown(tmp_path / "setgid", 1002, 2001)
    acl = subprocess.run(
        ["setfacl", "-m", "u:1005:r", str(tmp_path / "a.txt")], capture_output=True, check=False
    )
    changes = diff(before, take_snapshot(tmp_path, ACCOUNTS))
    assert changes.created == ("new.txt",)
    assert changes.deleted == ()
    assert set(changes.content_changed) == {"deep/er/est.bin", "out"}
    assert "a.txt" in changes.mode_changed and "up" in changes.kind_changed
    if AS_ROOT:
        assert changes.owner_changed == ("setgid",)
    if acl.returncode == 0:
        assert changes.acl_changed == ("a.txt",)
    assert not changes.empty
