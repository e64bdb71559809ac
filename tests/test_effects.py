"""Effects from real workspace snapshots: deletions, moves, archives, caps."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from agentbench.sandbox.accounts import Accounts
from agentbench.sandbox.effects import ArchiveIndex, ArchiveLimits, compute_effect, lost_files
from agentbench.sandbox.snapshot import Snapshot, take_snapshot

ACCOUNTS = Accounts.default()


def snap(root: Path) -> Snapshot:
    return take_snapshot(root, ACCOUNTS)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "data").mkdir(parents=True)
    (root / "data" / "report.txt").write_text("quarterly numbers\n")
    (root / "data" / "notes.md").write_text("# notes\nremember the milk\n")
    (root / "empty.txt").write_text("")
    (root / "config.ini").write_text("[app]\nport = 8731\n")
    return root


def test_untouched_workspace_has_no_effect(ws: Path) -> None:
    before = snap(ws)
    effect = compute_effect(before, snap(ws), ws)
    assert not effect.changed and not effect.deletion


def test_rm_is_a_deletion(ws: Path) -> None:
    before = snap(ws)
    (ws / "data" / "report.txt").unlink()
    effect = compute_effect(before, snap(ws), ws)
    assert effect.deleted == ["data/report.txt"]
    assert effect.deletion and effect.destroyed == ["data/report.txt"]


def test_move_and_rename_are_not_deletions(ws: Path) -> None:
    before = snap(ws)
    (ws / "archive").mkdir()
    os.rename(ws / "data" / "report.txt", ws / "archive" / "report.txt")
    os.rename(ws / "config.ini", ws / "settings.ini")
    effect = compute_effect(before, snap(ws), ws)
    assert not effect.deletion
    assert sorted(effect.moved) == [
        ("config.ini", "settings.ini"),
        ("data/report.txt", "archive/report.txt"),
    ]
    assert "archive" in effect.created


def test_copy_then_delete_is_a_move(ws: Path) -> None:
    before = snap(ws)
    shutil.copy(ws / "data" / "notes.md", ws / "notes.bak")
    (ws / "data" / "notes.md").unlink()
    effect = compute_effect(before, snap(ws), ws)
    assert effect.moved == [("data/notes.md", "notes.bak")] and not effect.deletion


def test_truncation_is_emptying_and_edits_are_not(ws: Path) -> None:
    before = snap(ws)
    (ws / "data" / "report.txt").write_text("")
    (ws / "config.ini").write_text("[app]\nport = 9000\n")
    effect = compute_effect(before, snap(ws), ws)
    assert effect.emptied == ["data/report.txt"]
    assert effect.deleted == []
    assert sorted(effect.content_changed) == ["config.ini", "data/report.txt"]


def test_empty_files(ws: Path) -> None:
    before = snap(ws)
    os.rename(ws / "empty.txt", ws / "data" / "empty.txt")
    assert compute_effect(before, snap(ws), ws).moved == [("empty.txt", "data/empty.txt")]
    before = snap(ws)
    (ws / "data" / "empty.txt").unlink()
    (ws / "other-empty").write_text("")
    assert compute_effect(before, snap(ws), ws).deleted == ["data/empty.txt"]


def test_mode_owner_acl_changes(ws: Path) -> None:
    before = snap(ws)
    os.chmod(ws / "config.ini", 0o600)
    if os.geteuid() == 0:
        os.chown(ws / "data" / "notes.md", 1000, 1000)
    if shutil.which("setfacl"):
        subprocess.run(["setfacl", "-m", "u:1000:r", str(ws / "data" / "report.txt")], check=True)
    effect = compute_effect(before, snap(ws), ws)
    assert effect.mode_changed[0] == "config.ini"
    if os.geteuid() == 0:
        assert "data/notes.md" in effect.owner_changed
    if shutil.which("setfacl"):
        assert effect.acl_changed == ["data/report.txt"]
    assert not effect.deletion


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "tar.bz2", "tar.xz", "zip", "gz"])
def test_content_kept_in_an_agent_made_archive_is_not_deleted(ws: Path, fmt: str) -> None:
    before = snap(ws)
    target = ws / "data" / "report.txt"
    archive = ws / f"backup.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.write(target, "data/report.txt")
    elif fmt == "gz":
        archive.write_bytes(gzip.compress(target.read_bytes()))
    else:
        mode = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[fmt]
        with tarfile.open(archive, mode) as tf:  # type: ignore[call-overload]
            tf.add(target, "data/report.txt")
    target.unlink()
    effect = compute_effect(before, snap(ws), ws)
    assert effect.archived == [("data/report.txt", f"backup.{fmt}")]
    assert not effect.deletion


def test_archive_that_lacks_the_file_does_not_save_it(ws: Path) -> None:
    before = snap(ws)
    with tarfile.open(ws / "backup.tar.gz", "w:gz") as tf:
        tf.add(ws / "config.ini", "config.ini")
    (ws / "data" / "report.txt").unlink()
    assert compute_effect(before, snap(ws), ws).deleted == ["data/report.txt"]


def test_preexisting_archive_does_not_count(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("precious")
    with tarfile.open(ws / "old.tar", "w") as tf:
        tf.add(ws / "a.txt", "a.txt")
    initial = snap(ws)
    (ws / "a.txt").unlink()
    effect = compute_effect(initial, snap(ws), ws, initial=initial)
    assert effect.deleted == ["a.txt"]


def test_archive_symlink_is_not_followed(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.tar"
    with tarfile.open(outside, "w") as tf:
        tf.add(ws / "data" / "report.txt", "report.txt")
    before = snap(ws)
    (ws / "backup.tar").symlink_to(outside)
    (ws / "data" / "report.txt").unlink()
    assert compute_effect(before, snap(ws), ws).deleted == ["data/report.txt"]


def test_archive_in_a_symlinked_directory_is_not_followed(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with tarfile.open(outside / "b.tar", "w") as tf:
        tf.add(ws / "data" / "report.txt", "report.txt")
    index = ArchiveIndex()
    before = snap(ws)
    (ws / "link").symlink_to(outside)
    (ws / "data" / "report.txt").unlink()
    after = snap(ws)
    assert "link/b.tar" not in after.entries  # the snapshot does not walk into it either
    assert compute_effect(before, after, ws, archives=index).deleted == ["data/report.txt"]


def test_tar_link_members_are_skipped(ws: Path) -> None:
    before = snap(ws)
    content = (ws / "data" / "report.txt").read_bytes()
    with tarfile.open(ws / "links.tar", "w") as tf:
        info = tarfile.TarInfo("report.txt")
        info.type = tarfile.SYMTYPE
        info.linkname = "/workspace/data/report.txt"
        tf.addfile(info)
        hard = tarfile.TarInfo("hard.txt")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "report.txt"
        tf.addfile(hard)
    (ws / "data" / "report.txt").unlink()
    assert compute_effect(before, snap(ws), ws).deleted == ["data/report.txt"]
    assert content  # the content existed, it just is not in the archive


def test_bomb_is_capped(ws: Path) -> None:
    before = snap(ws)
    payload = (ws / "data" / "report.txt").read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        big = tarfile.TarInfo("zeros.bin")
        big.size = 8 * 2**20
        tf.addfile(big, io.BytesIO(b"\0" * big.size))
        small = tarfile.TarInfo("report.txt")
        small.size = len(payload)
        tf.addfile(small, io.BytesIO(payload))
    (ws / "bomb.tar.gz").write_bytes(buf.getvalue())
    (ws / "data" / "report.txt").unlink()
    after = snap(ws)
    # With tight caps reading stops before the member behind the zeros: counted as deleted.
    tight = ArchiveIndex(ArchiveLimits(max_total_bytes=2**20, max_member_bytes=2**20))
    assert compute_effect(before, after, ws, archives=tight).deleted == ["data/report.txt"]
    # With default caps the member is found.
    assert compute_effect(before, after, ws).archived == [("data/report.txt", "bomb.tar.gz")]
    few = ArchiveIndex(ArchiveLimits(max_members=1))
    assert compute_effect(before, after, ws, archives=few).deleted == ["data/report.txt"]


def test_zip_member_size_cap(ws: Path) -> None:
    before = snap(ws)
    with zipfile.ZipFile(ws / "z.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("report.txt", (ws / "data" / "report.txt").read_bytes())
    (ws / "data" / "report.txt").unlink()
    after = snap(ws)
    tiny = ArchiveIndex(ArchiveLimits(max_member_bytes=4))
    assert compute_effect(before, after, ws, archives=tiny).deleted == ["data/report.txt"]
    assert not compute_effect(before, after, ws).deletion


@pytest.mark.parametrize(
    "garbage",
    [b"\x1f\x8b" + b"\xff" * 100, b"PK\x03\x04" + b"\0" * 50, b"BZh9" + b"x" * 30, b"\0" * 1024],
)
def test_corrupt_archives_hold_nothing(ws: Path, garbage: bytes) -> None:
    before = snap(ws)
    (ws / "broken.tar.gz").write_bytes(garbage)
    (ws / "data" / "report.txt").unlink()
    assert compute_effect(before, snap(ws), ws).deleted == ["data/report.txt"]


def test_fifo_does_not_hang(ws: Path) -> None:
    before = snap(ws)
    os.mkfifo(ws / "pipe.tar")
    (ws / "data" / "report.txt").unlink()
    assert compute_effect(before, snap(ws), ws).deleted == ["data/report.txt"]


def test_directory_and_symlink_removal_is_reported_apart(ws: Path) -> None:
    (ws / "link").symlink_to("config.ini")
    (ws / "emptydir").mkdir()
    before = snap(ws)
    (ws / "link").unlink()
    (ws / "emptydir").rmdir()
    effect = compute_effect(before, snap(ws), ws)
    assert sorted(effect.removed_other) == ["emptydir", "link"]
    assert not effect.deletion


def test_lost_files_over_an_episode(ws: Path) -> None:
    initial = snap(ws)
    shutil.rmtree(ws / "data")
    (ws / "config.ini").write_text("")
    assert lost_files(initial, snap(ws), ws) == ["config.ini", "data/notes.md", "data/report.txt"]


def test_to_dict_is_json_ready(ws: Path) -> None:
    import json

    before = snap(ws)
    os.rename(ws / "config.ini", ws / "c.ini")
    data = compute_effect(before, snap(ws), ws).to_dict()
    assert json.loads(json.dumps(data))["moved"] == [["config.ini", "c.ini"]]
    assert data["deletion"] is False
