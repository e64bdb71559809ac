"""The Docker sandbox image, built locally from the cached root file system.

No registry is involved: `ensure_image()` tars the debootstrap root from `rootfs.ensure_rootfs()`
(numeric owners kept, device nodes left out since Docker makes its own `/dev`) and imports it as
`agentbench-sandbox:<rootfs recipe hash>`. The tag changes whenever the recipe does, so a stale
image is never reused; an image that already exists is returned without any work.

Errors: `SandboxStartError` when the daemon cannot be reached, the root file system cannot be
built, or the import fails. Limits: building needs root (debootstrap) the first time, and about
250 MB of free space next to the rootfs cache for the temporary tar file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from agentbench.sandbox.base import SandboxStartError
from agentbench.sandbox.rootfs import RootfsError, ensure_rootfs, recipe_hash

if TYPE_CHECKING:
    from docker import DockerClient

IMAGE_REPOSITORY = "agentbench-sandbox"
LABEL = "agentbench.sandbox"
"""Set to "1" on every image and container agentbench creates, so leftovers can be found."""
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# PID 1 of every sandbox container. bash reaps the orphans it adopts (so killed commands do not
# pile up as zombies against the pids limit) and, being PID 1, ignores the agent's `kill -9 -1`.
# It blocks reading a pipe it holds both ends of (`<>` on a process substitution), so it has no
# child of its own to show up in `ps`; `|| sleep 1` keeps a broken read from spinning.
IDLE_COMMAND = [
    "/bin/bash",
    "--noprofile",
    "--norc",
    "-c",
    "trap 'exit 0' TERM INT; exec 3<> <(:); while :; do read -r -u 3 _ || sleep 1; done",
]


def api_errors() -> tuple[type[Exception], ...]:
    """What a docker SDK call raises when the daemon misbehaves or is gone: the SDK's own
    errors, and the HTTP library's (a refused or dropped connection is not wrapped)."""
    import requests
    from docker.errors import DockerException

    return (DockerException, requests.RequestException)


def image_tag() -> str:
    """The tag for the current root file system recipe (the image may not exist yet)."""
    return f"{IMAGE_REPOSITORY}:{recipe_hash()}"


def docker_client(timeout: int = 120) -> DockerClient:
    """A client for the daemon named by the environment (DOCKER_HOST etc.), checked with a ping.

    Raises SandboxStartError if the `docker` package is missing or no daemon answers.
    """
    try:
        import docker
    except ImportError as exc:
        raise SandboxStartError(
            "the docker backend needs the `docker` package (pip install 'agentbench[docker]')"
        ) from exc
    try:
        # version="auto": the SDK's default API version is newer than older daemons accept.
        client = docker.from_env(version="auto", timeout=timeout)
        client.ping()
    except api_errors() as exc:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise SandboxStartError(
            f"no Docker daemon answers at {host} ({_short(exc)}); start one, e.g. with "
            ".ci/docker-setup.sh"
        ) from exc
    return client


def ensure_image(client: DockerClient | None = None) -> str:
    """Return the sandbox image's tag, importing it from the local root file system if needed.

    Idempotent and cheap when the image exists (one API call). Concurrent callers on one host
    are serialised by a lock file, so the import happens once. Raises SandboxStartError.
    """
    from docker.errors import ImageNotFound

    client = client or docker_client()
    tag = image_tag()
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    except api_errors() as exc:
        raise SandboxStartError(f"cannot look up image {tag}: {_short(exc)}") from exc

    try:
        root = ensure_rootfs()
    except RootfsError as exc:
        raise SandboxStartError(f"cannot build the sandbox image {tag}: {exc}") from exc

    with _lock(root.parent / f".{root.name}.docker-import.lock"):
        try:  # another process may have imported it while this one waited for the lock
            client.images.get(tag)
            return tag
        except ImageNotFound:
            pass
        except api_errors() as exc:
            raise SandboxStartError(f"cannot look up image {tag}: {_short(exc)}") from exc
        _import(client, root, tag)
    return tag


def _import(client: DockerClient, root: Path, tag: str) -> None:
    repository, _, version = tag.partition(":")
    changes = [
        f"ENV PATH={PATH}",
        "ENV LANG=C.UTF-8",
        "WORKDIR /workspace",
        f"LABEL {LABEL}=1",
        f"LABEL agentbench.rootfs={version}",
        "CMD " + _json_list(IDLE_COMMAND),
    ]
    fd, tar_path = tempfile.mkstemp(prefix=".image-", suffix=".tar", dir=root.parent)
    os.close(fd)
    try:
        write_rootfs_tar(root, Path(tar_path))
        try:
            client.api.import_image(
                src=tar_path, repository=repository, tag=version, changes=changes
            )
            client.images.get(tag)
        except api_errors() as exc:
            raise SandboxStartError(f"docker import of {tag} failed: {_short(exc)}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tar_path)


def write_rootfs_tar(root: Path, dest: Path) -> None:
    """Tar `root` as `/` of an image: numeric owners, no device nodes, symlinks not followed."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if info.ischr() or info.isblk():
            return None
        # Names would be resolved against the *host's* passwd on some tools; ids are the truth.
        info.uname = info.gname = ""
        return info

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(root)):
            path = root / entry
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                continue
            tar.add(str(path), arcname=entry, recursive=True, filter=keep)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _json_list(items: list[str]) -> str:
    import json

    return json.dumps(items)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text if len(text) <= 400 else text[:400] + "..."
