"""Shared pieces of the built-in generators: a fixture builder, fake data, plan steps.

Plans are lists of abstract steps (dicts) that `agentbench.policies.oracles` turns into
FileTool-v0 tool calls or Bash-v0 commands. Steps: read, list, search, write, append, mkdir,
move, copy, archive, delete, submit, and `sh` (a raw shell command, Bash only).
"""

from __future__ import annotations

import base64
import hashlib
import random
from typing import Any

from agentbench.sandbox.fixture import Fixture, FixtureEntry

Step = dict[str, Any]

FIRST_NAMES = [
    "ana",
    "ben",
    "chen",
    "dana",
    "eli",
    "fatima",
    "gus",
    "hana",
    "ivan",
    "jo",
    "kofi",
    "lena",
    "mo",
    "nia",
    "omar",
    "pia",
    "raj",
    "sara",
    "tom",
    "uma",
]
LAST_NAMES = [
    "smith",
    "garcia",
    "kim",
    "novak",
    "okafor",
    "rossi",
    "singh",
    "tanaka",
    "weber",
    "young",
    "silva",
    "ivanova",
    "haddad",
    "murphy",
]
REGIONS = ["north", "south", "east", "west", "central"]
PRODUCTS = ["widget", "gadget", "sprocket", "gizmo", "doohickey", "flange", "bracket"]
SERVICES = [
    "billing",
    "auth",
    "search",
    "inventory",
    "notifier",
    "gateway",
    "reports",
    "scheduler",
    "ingest",
    "payments",
]
HOSTS = [
    "db1.internal",
    "db2.internal",
    "pg-main.corp",
    "mysql-a.lan",
    "10.0.3.17",
    "10.0.8.4",
    "store.prod.example",
    "replica.stage.example",
]
_FILLER = (
    "the quarterly numbers look stable but the churn in the west region needs another look "
    "before we sign off on the forecast and the migration plan for the ingest cluster depends "
    "on the vendor confirming the maintenance window next week while the on call rotation "
    "should cover the holiday freeze"
)
WORDS = _FILLER.split()
USERS = ["bob", "alice", "ci", "deploy", "carol"]
GROUP_MEMBERS = {
    "analysts": ["alice", "carol"],
    "developers": ["bob", "ci"],
    "ops": ["deploy", "ci"],
}


def sha(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


class Builder:
    """Collects fixture entries; later additions of the same path replace earlier ones."""

    def __init__(self) -> None:
        self._entries: dict[str, FixtureEntry] = {}

    def file(
        self,
        path: str,
        text: str,
        *,
        mode: int | None = None,
        owner: str = "root",
        group: str | None = None,
    ) -> str:
        self._entries[path] = FixtureEntry(
            path=path, text=text, mode=mode, owner=owner, group=group or _group_of(owner)
        )
        return path

    def binary(
        self, path: str, data: bytes, *, mode: int | None = None, owner: str = "root"
    ) -> str:
        self._entries[path] = FixtureEntry(
            path=path,
            data_b64=base64.b64encode(data).decode(),
            mode=mode,
            owner=owner,
            group=_group_of(owner),
        )
        return path

    def dir(
        self, path: str, *, mode: int | None = None, owner: str = "root", group: str | None = None
    ) -> str:
        self._entries[path] = FixtureEntry(
            path=path, kind="dir", mode=mode, owner=owner, group=group or _group_of(owner)
        )
        return path

    def text_of(self, path: str) -> str:
        return self._entries[path].content.decode()

    def content_of(self, path: str) -> bytes:
        return self._entries[path].content

    def build(self) -> Fixture:
        return Fixture(entries=tuple(self._entries[p] for p in sorted(self._entries)))


def _group_of(owner: str) -> str:
    return owner  # every sandbox user has a personal group of the same name


# -- fake content ----------------------------------------------------------------------------


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def sentence(rng: random.Random, n: int = 12) -> str:
    start = rng.randrange(len(WORDS))
    words = [WORDS[(start + i) % len(WORDS)] for i in range(n)]
    return " ".join(words).capitalize() + "."


def notes(rng: random.Random, title: str, paragraphs: int = 3) -> str:
    body = "\n\n".join(
        " ".join(sentence(rng, rng.randint(8, 16)) for _ in range(rng.randint(2, 4)))
        for _ in range(paragraphs)
    )
    return f"# {title}\n\n{body}\n"


def date(rng: random.Random, year: int = 2025) -> str:
    return f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def timestamp(rng: random.Random, day: str) -> str:
    return f"{day}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


LOG_MESSAGES = {
    "INFO": [
        "request served in {n} ms",
        "user {u} logged in",
        "cache warmed ({n} keys)",
        "job {n} finished",
        "health check ok",
    ],
    "WARN": [
        "slow query took {n} ms",
        "retrying upstream call ({n}/3)",
        "disk usage at {n}%",
        "deprecated endpoint /v1/items called",
    ],
    "ERROR": [
        "connection refused by {h}",
        "timeout after {n} ms talking to {h}",
        "failed to parse payload from {u}",
        "job {n} crashed: KeyError",
    ],
    "DEBUG": ["payload size {n} bytes", "opening connection to {h}"],
}


def log_lines(rng: random.Random, day: str, n: int, service: str) -> list[str]:
    lines = []
    levels = ["INFO"] * 6 + ["WARN"] * 2 + ["ERROR"] * 2 + ["DEBUG"]
    for _ in range(n):
        level = rng.choice(levels)
        message = rng.choice(LOG_MESSAGES[level]).format(
            n=rng.randint(2, 9000), u=rng.choice(FIRST_NAMES), h=rng.choice(HOSTS)
        )
        lines.append(f"{timestamp(rng, day)} {level:<5} [{service}] {message}")
    lines.sort()
    return lines


def csv_rows(rng: random.Random, n: int, start_id: int = 1) -> list[list[str]]:
    rows = []
    for i in range(n):
        rows.append(
            [
                str(start_id + i),
                f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}@example.com",
                rng.choice(REGIONS),
                rng.choice(PRODUCTS),
                str(rng.randint(1, 40) * 5),
            ]
        )
    return rows


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


def pseudo_binary(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def shell_script(rng: random.Random, purpose: str) -> str:
    return (
        "#!/bin/sh\nset -eu\n"
        f"# {purpose}\n"
        f'echo "starting {purpose}"\n'
        f"sleep 0\n"
        f'echo "done ({rng.randint(100, 999)})"\n'
    )


# -- plan steps ------------------------------------------------------------------------------


def read(path: str) -> Step:
    return {"op": "read", "path": path}


def listing(path: str = ".") -> Step:
    return {"op": "list", "path": path}


def search(pattern: str, path: str = ".") -> Step:
    return {"op": "search", "pattern": pattern, "path": path}


def write(path: str, content: str) -> Step:
    return {"op": "write", "path": path, "content": content}


def mkdir(path: str) -> Step:
    return {"op": "mkdir", "path": path}


def move(src: str, dst: str) -> Step:
    return {"op": "move", "src": src, "dst": dst}


def copy(src: str, dst: str) -> Step:
    return {"op": "copy", "src": src, "dst": dst}


def archive(path: str, archive_path: str | None = None) -> Step:
    return {"op": "archive", "path": path, "archive": archive_path}


def delete(path: str, recursive: bool = False) -> Step:
    return {"op": "delete", "path": path, "recursive": recursive}


def submit(answer: str = "") -> Step:
    return {"op": "submit", "answer": answer}


def sh(cmd: str) -> Step:
    return {"op": "sh", "cmd": cmd}


# -- expectations ---------------------------------------------------------------------------


def expect_content(path: str, text: str | bytes) -> dict[str, Any]:
    return {"kind": "content", "path": path, "sha256": sha(text)}
