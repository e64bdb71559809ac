"""Reading and writing bundle archives (gzip-compressed tar) safely.

Writing is deterministic (sorted members, zero times and owners) so that the same run gives
the same bytes. Reading never touches the file system: members come back as bytes in memory,
and an archive is refused (`BundleError`, naming what failed) for anything but plain files
with plain relative names: absolute paths, `..`, links, devices, duplicates, too many members,
a compressed or uncompressed size over the limits (a decompression bomb) or a truncated or
corrupt stream.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from agentbench.errors import DataError


class BundleError(DataError, ValueError):
    """Raised when a bundle (or the run it is built from) cannot be read or does not verify; the
    message names what failed."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 200 * 2**20
    """Largest archive accepted (compressed)."""
    max_unpacked_bytes: int = 2 * 2**30
    """Largest total of member sizes."""
    max_members: int = 10_000
    max_ratio: float = 200.0
    """Largest unpacked / packed ratio (text compresses ~10x; a bomb by far more)."""


DEFAULT_LIMITS = Limits()
_NAME = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+){0,3}$")


def write_archive(files: dict[str, bytes], out: Path) -> Path:
    """Write `files` (archive path -> bytes) as a reproducible .tar.gz at `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    # mtime=0 and no file name in the gzip header: equal inputs give equal bytes.
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(files):
            check_name(name)
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)
    return out


def check_name(name: str) -> None:
    """Refuse any member name but a short relative path of plain characters."""
    if not _NAME.match(name) or any(part in (".", "..") for part in name.split("/")):
        raise BundleError(f"archive member {name!r}: not a plain relative path (refused)")


def read_archive(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, bytes]:
    """The members of an archive as {path: bytes}; raises BundleError for anything unsafe."""
    if len(data) > limits.max_bytes:
        raise BundleError(
            f"bundle is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes (refused)"
        )
    if not data.startswith(b"\x1f\x8b"):
        raise BundleError("bundle is not a gzip-compressed tar archive (bad magic bytes)")
    budget = min(limits.max_unpacked_bytes, int(max(len(data), 4096) * limits.max_ratio))
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|gz") as tar:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isreg():
                    kind = "link" if member.issym() or member.islnk() else "special file"
                    raise BundleError(f"archive member {member.name!r} is a {kind} (refused)")
                check_name(member.name)
                if member.name in files:
                    raise BundleError(f"archive member {member.name!r} appears twice (refused)")
                if len(files) >= limits.max_members:
                    raise BundleError(f"archive has over {limits.max_members} members (refused)")
                total += member.size
                if total > budget:
                    raise BundleError(
                        f"archive unpacks to over {budget:,} bytes (from {len(data):,} packed): "
                        "a decompression bomb or over the size limit (refused)"
                    )
                fh = tar.extractfile(member)
                assert fh is not None  # a regular file always has data
                content = fh.read()
                if len(content) != member.size:
                    raise BundleError(f"archive member {member.name!r} is truncated")
                files[member.name] = content
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise BundleError(f"bundle archive is truncated or corrupt: {exc}") from None
    return files
