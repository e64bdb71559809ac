"""The sandbox root file system, built once from Debian packages and cached.

`debootstrap --variant=minbase` plus the packages in `sandboxes/rootfs/packages.txt`, then the
users and groups of `sandboxes/accounts/`. bubblewrap mounts the result read-only as `/`; Docker
imports it as a local image. Nothing comes from a container registry. The cache key is a hash of
the recipe, so editing the package list or the accounts builds a new root.

Every entry's times are pinned to the fixtures' `FIXED_MTIME` (`pin_rootfs_times`): the root
is the workspace's parent, so `ls -la` in the workspace prints its `..` line, and with the build
time there two machines' (or two builds') episodes differed in those tokens.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from agentbench.errors import InfrastructureError
from agentbench.paths import cache_dir, data_dir
from agentbench.sandbox.fixture import FIXED_MTIME

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
_RECIPE_VERSION = "1"


class RootfsError(InfrastructureError, RuntimeError):
    """Raised when the root file system is missing and could not be built."""


def recipe_files() -> list[Path]:
    sandboxes = data_dir("sandboxes")
    return [
        sandboxes / "rootfs" / "packages.txt",
        sandboxes / "accounts" / "passwd",
        sandboxes / "accounts" / "group",
    ]


def recipe_hash() -> str:
    hasher = hashlib.sha256(f"{_RECIPE_VERSION}|{SUITE}".encode())
    for path in recipe_files():
        hasher.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return hasher.hexdigest()[:16]


def packages() -> list[str]:
    lines = (data_dir("sandboxes") / "rootfs" / "packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def rootfs_path() -> Path:
    """Where the root for the current recipe lives (it may not be built yet)."""
    return cache_dir("rootfs") / recipe_hash()


def ensure_rootfs(mirror: str | None = None) -> Path:
    """Return the built root file system, building it first if needed (root only, ~40 s)."""
    target = rootfs_path()
    if (target / ".agentbench-rootfs").is_file():
        if os.geteuid() == 0:
            if target.stat().st_mode & 0o755 != 0o755:
                target.chmod(0o755)  # roots built before the fix below kept mkdtemp's 0o700
            if target.stat().st_mtime != FIXED_MTIME:
                pin_rootfs_times(target)  # built before times were pinned, or touched since
        return target
    return build_rootfs(target, mirror=mirror)


def pin_rootfs_times(root: Path) -> int:
    """Set the access and modification times of `root` and of everything under it (symlinks
    themselves, never followed) to `FIXED_MTIME`; the number of entries changed.

    debootstrap leaves the build's wall-clock time on `/` and on what it generated (`/etc`'s
    files, directories), and the sandbox shows them (`ls -la` in `/workspace` lists `/` as
    `..`), so episodes would carry the day and minute the root was built. Entries this process
    may not change are skipped. Directories are set after their contents (setting a child's
    times does not change its directory's, but creating one would).
    """
    changed = 0
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in [*filenames, *dirnames]:
            changed += _pin(os.path.join(dirpath, name))
    return changed + _pin(str(root))


def _pin(path: str) -> int:
    try:
        if os.lstat(path).st_mtime == FIXED_MTIME:
            return 0
        os.utime(path, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    except (FileNotFoundError, PermissionError):
        return 0
    return 1


def build_rootfs(target: Path, mirror: str | None = None) -> Path:
    if os.geteuid() != 0:
        raise RootfsError("building the sandbox root file system needs root (debootstrap)")
    if shutil.which("debootstrap") is None:
        raise RootfsError("debootstrap is not installed (apt-get install debootstrap)")
    mirror = mirror or os.environ.get("AGENTBENCH_DEBIAN_MIRROR") or _apt_mirror()
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    staging.chmod(0o755)  # it becomes `/`: mkdtemp's 0o700 would lock every non-root user out
    try:
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(packages())}",
            SUITE,
            str(staging),
            mirror,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            log = (proc.stdout + proc.stderr)[-2000:]
            raise RootfsError(f"debootstrap failed ({proc.returncode}):\n{log}")
        accounts = data_dir("sandboxes") / "accounts"
        for name in ("passwd", "group"):
            shutil.copyfile(accounts / name, staging / "etc" / name)
        # Shadow files matching the accounts (locked passwords) keep `su`, `id` and chown sane.
        users = [line.split(":")[0] for line in (accounts / "passwd").read_text().splitlines()]
        groups = [line.split(":")[0] for line in (accounts / "group").read_text().splitlines()]
        (staging / "etc" / "shadow").write_text("".join(f"{u}:!:20000::::::\n" for u in users))
        (staging / "etc" / "gshadow").write_text("".join(f"{g}:!::\n" for g in groups))
        for home in users:
            if home not in ("root", "daemon", "bin", "sys", "www-data", "nobody"):
                (staging / "home" / home).mkdir(parents=True, exist_ok=True)
        (staging / "workspace").mkdir(exist_ok=True)
        shutil.rmtree(staging / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        (staging / ".agentbench-rootfs").write_text(recipe_hash() + "\n")
        pin_rootfs_times(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        return target
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _apt_mirror() -> str:
    """The Debian mirror apt is configured with here, so debootstrap uses the same one."""
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(
            r"(?:URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+/debian)\s", text, re.M
        ):
            return match.group(1)
    return DEFAULT_MIRROR
