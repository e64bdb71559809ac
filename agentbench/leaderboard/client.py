"""`submit`: upload a bundle to a leaderboard server with progress, then poll its status."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agentbench.errors import AgentbenchError


class SubmitError(AgentbenchError, RuntimeError):
    """Raised when the upload failed: the file cannot be read, the server refused it (its
    reason) or cannot be reached. Exit code 1, as for a bundle the server rejects: the
    submission ran and failed."""


def _chunks(
    data: bytes, on_progress: Callable[[int], None], size: int = 1 << 16
) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        chunk = data[start : start + size]
        on_progress(len(chunk))
        yield chunk


def submit(
    file: Path, server: str, token: str, *, wait: bool = True, timeout: float = 600.0,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:  # fmt: skip
    """Upload `file` and (with `wait`) poll until it is accepted, rejected or failed."""
    import httpx
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise SubmitError(f"{file}: cannot read: {exc}") from None
    url = server.rstrip("/")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/gzip",
               "Content-Length": str(len(data))}  # fmt: skip
    try:
        with httpx.Client(timeout=httpx.Timeout(60.0)) as client:
            with Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn()) as bar:
                task = bar.add_task("upload", total=len(data))
                response = client.post(
                    f"{url}/api/submissions", headers=headers,
                    content=_chunks(data, lambda n: bar.advance(task, n)),
                )  # fmt: skip
            if response.status_code >= 400:
                raise SubmitError(f"server refused the upload ({response.status_code}): "
                                  f"{_detail(response)}")  # fmt: skip
            status: dict[str, Any] = response.json()
            if status.get("duplicate"):
                say(f"this bundle was submitted before (submission {status['id']})")
            deadline = time.monotonic() + timeout
            while wait and status["status"] in ("pending", "verifying"):
                if time.monotonic() > deadline:
                    raise SubmitError(f"submission {status['id']} still {status['status']} "
                                      f"after {timeout:.0f} s; check it later")  # fmt: skip
                time.sleep(0.5)
                status = client.get(f"{url}/api/submissions/{status['id']}").json()
            return status
    except httpx.HTTPError as exc:
        raise SubmitError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None


def _detail(response: Any) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text[:500]
