"""The leaderboard's work, apart from HTTP: users and tokens, uploads, the verification
worker, flags, and the rows of the page.

Lifecycle of an upload: `upload` refuses an unreadable archive at once (size, traversal,
links, bombs, truncation: `archive.read_archive`), stores the file under its content hash
(written to a temporary name, then renamed) and inserts a `pending` submission; the same
bundle again returns the existing submission. The worker claims a pending submission
(`pending -> verifying`, a conditional update, so two workers never take the same one),
runs `verify_bundle` and writes the verdict and the page's rows in one transaction. A server
killed mid-verification leaves `verifying` rows; `recover` at start puts them back to
`pending` (or `failed` after `MAX_ATTEMPTS`), so no work is lost and no row is half-written.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from agentbench.bundle.archive import DEFAULT_LIMITS, BundleError, Limits, read_archive
from agentbench.bundle.schema import CONFIG, MANIFEST
from agentbench.bundle.writer import sha256
from agentbench.errors import ConfigError, DataError
from agentbench.leaderboard.db import (
    ROLES,
    Entry,
    Submission,
    User,
    make_engine,
    migrate,
    now,
    sessions,
    token_hash,
)
from agentbench.leaderboard.rows import assign_ranks, bundle_rows

MAX_ATTEMPTS = 3


class AuthError(ConfigError, PermissionError):
    """Raised for a missing, unknown or insufficient token (the API answers 401/403)."""


class NotFound(DataError, LookupError):
    """Raised for a submission or entry that does not exist (the API answers 404)."""


@dataclass(frozen=True)
class ServiceConfig:
    db_url: str
    data_dir: Path
    limits: Limits = DEFAULT_LIMITS
    backend: str = "bwrap"
    replay_fraction: float = 1.0
    poll_s: float = 0.5


class Leaderboard:
    def __init__(self, config: ServiceConfig):
        self.config = config
        self.engine = make_engine(config.db_url)
        migrate(self.engine)
        self.Session = sessions(self.engine)
        self.bundles = config.data_dir / "bundles"
        self.bundles.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._archives: dict[str, dict[str, bytes]] = {}

    # -- users ------------------------------------------------------------------------------
    def add_user(self, name: str, role: str = "submitter") -> str:
        """Create a user; returns its token (shown once: only its hash is stored)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {ROLES}")
        if not name.strip() or len(name) > 200:
            raise ValueError("a user name is 1 to 200 characters")
        token = secrets.token_urlsafe(32)
        with self.Session.begin() as s:
            if s.scalar(select(User).where(User.name == name)) is not None:
                raise ValueError(f"user {name!r} exists")
            s.add(User(name=name, role=role, token_sha256=token_hash(token)))
        return token

    def authenticate(self, token: str | None, role: str | None = None) -> User:
        if not token:
            raise AuthError("no token: send `Authorization: Bearer <token>`")
        with self.Session() as s:
            user = s.scalar(select(User).where(User.token_sha256 == token_hash(token)))
        if user is None:
            raise AuthError("unknown token")
        if role is not None and user.role != role:
            raise AuthError(f"this needs the {role} role; {user.name} is a {user.role}")
        return user

    # -- uploads ----------------------------------------------------------------------------
    def upload(self, user: User, data: bytes) -> tuple[dict[str, Any], bool]:
        """Store a bundle and queue it: (status, duplicate). Raises BundleError for an
        archive that cannot be read safely (nothing is stored then)."""
        files = read_archive(data, self.config.limits)
        if MANIFEST not in files:
            raise BundleError(f"{MANIFEST}: missing from the bundle")
        bundle_id = sha256(files[MANIFEST])
        path = self.bundles / f"{bundle_id}.tar.gz"
        if not path.exists():
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        try:
            with self.Session.begin() as s:
                sub = Submission(
                    bundle_id=bundle_id, file_sha256=sha256(data), size=len(data),
                    user_id=user.id, status="pending",
                )  # fmt: skip
                s.add(sub)
                s.flush()
                sub_id = sub.id
        except IntegrityError:
            existing = self._by_bundle(bundle_id)
            return existing, True
        self._wake.set()
        return self.status(sub_id), False

    def _by_bundle(self, bundle_id: str) -> dict[str, Any]:
        with self.Session() as s:
            sub = s.scalar(select(Submission).where(Submission.bundle_id == bundle_id))
            if sub is None:
                raise NotFound(f"no submission of bundle {bundle_id}")
            sub.user  # noqa: B018 (load it inside the session)
            return sub.status_dict()

    def status(self, sub_id: int) -> dict[str, Any]:
        with self.Session() as s:
            sub = s.get(Submission, sub_id)
            if sub is None:
                raise NotFound(f"no submission {sub_id}")
            sub.user  # noqa: B018
            return sub.status_dict()

    def submissions(self) -> list[dict[str, Any]]:
        with self.Session() as s:
            subs = s.scalars(select(Submission).order_by(Submission.id)).all()
            return [sub.status_dict() for sub in subs]

    # -- the worker -------------------------------------------------------------------------
    def recover(self) -> None:
        """Put submissions a killed server left in `verifying` back in the queue (or mark
        them failed after MAX_ATTEMPTS)."""
        with self.Session.begin() as s:
            s.execute(
                update(Submission)
                .where(Submission.status == "verifying", Submission.attempts >= MAX_ATTEMPTS)
                .values(status="failed", updated_at=now(), errors_json=json.dumps(
                    [f"verification was interrupted {MAX_ATTEMPTS} times"]))
            )  # fmt: skip
            s.execute(
                update(Submission)
                .where(Submission.status == "verifying")
                .values(status="pending", updated_at=now())
            )

    def claim(self) -> int | None:
        """Take the oldest pending submission (pending -> verifying); None when none."""
        with self.Session.begin() as s:
            ids = s.scalars(
                select(Submission.id).where(Submission.status == "pending")
                .order_by(Submission.id).limit(5)
            ).all()  # fmt: skip
            for sub_id in ids:
                done = s.execute(
                    update(Submission)
                    .where(Submission.id == sub_id, Submission.status == "pending")
                    .values(status="verifying", attempts=Submission.attempts + 1,
                            updated_at=now())
                )  # fmt: skip
                if done.rowcount == 1:
                    return int(sub_id)
        return None

    def process(self, sub_id: int) -> None:
        """Verify one claimed submission and commit the verdict (and rows) in one go."""
        from agentbench.bundle.verify import verify_bundle

        with self.Session() as s:
            sub = s.get(Submission, sub_id)
            assert sub is not None
            path = self.bundles / f"{sub.bundle_id}.tar.gz"
        try:
            data = path.read_bytes()
        except OSError as exc:
            self._finish(sub_id, "failed", [f"stored bundle unreadable: {exc}"], [], None)
            return
        report = verify_bundle(
            data, replay_fraction=self.config.replay_fraction, backend=self.config.backend,
            limits=self.config.limits,
        )  # fmt: skip
        status = "accepted" if report.ok else "failed" if report.infrastructure else "rejected"
        self._finish(sub_id, status, report.errors, report.warnings, report)

    def _finish(
        self, sub_id: int, status: str, errors: list[str], warnings: list[str], report: Any
    ) -> None:
        with self.Session.begin() as s:
            sub = s.get(Submission, sub_id)
            assert sub is not None
            sub.status = status
            sub.errors_json = json.dumps(errors[:200])
            sub.warnings_json = json.dumps(warnings[:50])
            sub.updated_at = now()
            if report is None:
                return
            sub.episodes, sub.replayed = report.episodes, report.replayed
            if report.metadata is not None:
                sub.metadata_json = report.metadata.model_dump_json()
            if report.config is not None:
                sub.track = report.config.track
            if status != "accepted":
                return
            assert report.metadata is not None and report.results is not None
            meta = report.metadata.model_dump(mode="json")
            for row in bundle_rows(report.results, meta, sub.track):
                s.add(Entry(
                    submission_id=sub_id, teacher=row["teacher"], student=row["student"],
                    trait=row["trait"], student_init=row["student_init"], track=row["track"],
                    difference=row["difference"], p_value=row["p_value"],
                    row_json=json.dumps(row),
                ))  # fmt: skip

    def work_once(self) -> bool:
        sub_id = self.claim()
        if sub_id is None:
            return False
        try:
            self.process(sub_id)
        except Exception as exc:  # a verifier bug must not kill the worker: record it
            self._finish(sub_id, "failed", [f"verifier error: {type(exc).__name__}: {exc}"],
                         [], None)  # fmt: skip
        return True

    def start_worker(self) -> None:
        self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="lb-verify", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.work_once():
                self._wake.wait(self.config.poll_s)
                self._wake.clear()

    def stop_worker(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    # -- admin ------------------------------------------------------------------------------
    def flag(self, sub_id: int, reason: str, *, flagged: bool = True, hidden: bool = False) -> None:
        with self.Session.begin() as s:
            sub = s.get(Submission, sub_id)
            if sub is None:
                raise NotFound(f"no submission {sub_id}")
            sub.flagged, sub.hidden, sub.flag_reason = flagged, hidden, reason
            sub.updated_at = now()

    # -- the page ---------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """Every visible accepted entry, with its submission's badges and a rank."""
        with self.Session() as s:
            found = s.execute(
                select(Entry, Submission).join(Submission)
                .where(Submission.status == "accepted", Submission.hidden.is_(False))
                .order_by(Entry.id)
            ).all()  # fmt: skip
            rows = []
            for entry, sub in found:
                row = json.loads(entry.row_json)
                row.update(submission_id=sub.id, date=sub.created_at.strftime("%Y-%m-%d"),
                           verified=True, flagged=sub.flagged, flag_reason=sub.flag_reason,
                           replayed=sub.replayed, episodes=sub.episodes)  # fmt: skip
                rows.append(row)
        return assign_ranks(rows)

    def detail(self, sub_id: int) -> dict[str, Any]:
        """A submission's status, metadata, rows, results and episode index (for its page)."""
        status = self.status(sub_id)
        if status["hidden"]:
            raise NotFound(f"submission {sub_id} is hidden: {status['flag_reason']}")
        files = self._archive(status["bundle_id"])
        config = json.loads(files.get(CONFIG, b"{}"))
        with self.Session() as s:
            sub = s.get(Submission, sub_id)
            assert sub is not None
            meta = json.loads(sub.metadata_json)
        return {
            "status": status,
            "metadata": meta,
            "rows": [r for r in self.rows() if r["submission_id"] == sub_id],
            "results": json.loads(files.get("results.json", b"{}")),
            "stages": config.get("stages", []),
        }

    def episodes(self, sub_id: int, stage_key: str) -> list[dict[str, Any]]:
        status = self.status(sub_id)
        if status["hidden"]:
            raise NotFound(f"submission {sub_id} is hidden")
        files = self._archive(status["bundle_id"])
        data = files.get(f"episodes/{stage_key}.jsonl")
        if data is None:
            raise NotFound(f"submission {sub_id} has no stage {stage_key}")
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def _archive(self, bundle_id: str) -> dict[str, bytes]:
        if bundle_id not in self._archives:
            path = self.bundles / f"{bundle_id}.tar.gz"
            try:
                self._archives[bundle_id] = read_archive(path.read_bytes(), self.config.limits)
            except (OSError, BundleError) as exc:
                raise NotFound(f"bundle {bundle_id}: {exc}") from None
        return self._archives[bundle_id]
