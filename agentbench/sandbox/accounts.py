"""The users and groups that exist inside every sandbox (`sandboxes/accounts/`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from agentbench.paths import data_dir


@dataclass(frozen=True)
class Accounts:
    """Name <-> id maps read from passwd/group files in the sandbox's format."""

    users: dict[str, int]
    groups: dict[str, int]
    passwd_path: Path
    group_path: Path

    @classmethod
    def load(cls, folder: Path) -> Accounts:
        passwd, group = folder / "passwd", folder / "group"
        return cls(
            users=_read_ids(passwd), groups=_read_ids(group), passwd_path=passwd, group_path=group
        )

    @classmethod
    def default(cls) -> Accounts:
        return _default_accounts()

    def uid(self, name: str) -> int:
        try:
            return self.users[name]
        except KeyError:
            raise KeyError(f"unknown sandbox user {name!r}; known: {sorted(self.users)}") from None

    def gid(self, name: str) -> int:
        try:
            return self.groups[name]
        except KeyError:
            raise KeyError(
                f"unknown sandbox group {name!r}; known: {sorted(self.groups)}"
            ) from None

    def user_name(self, uid: int) -> str:
        return self._user_names.get(uid, str(uid))

    def group_name(self, gid: int) -> str:
        return self._group_names.get(gid, str(gid))

    @cached_property
    def _user_names(self) -> dict[int, str]:
        return {v: k for k, v in self.users.items()}

    @cached_property
    def _group_names(self) -> dict[int, str]:
        return {v: k for k, v in self.groups.items()}


@cache
def _default_accounts() -> Accounts:
    return Accounts.load(data_dir("sandboxes") / "accounts")


def _read_ids(path: Path) -> dict[str, int]:
    ids: dict[str, int] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            fields = line.split(":")
            ids[fields[0]] = int(fields[2])
    return ids
