"""The leaderboard's database: SQLAlchemy 2 models, engine set-up and Alembic migrations.

Tables: `users` (name, role, sha256 of the API token: tokens are 32 random bytes, so a fast
hash is enough and the database never holds one), `submissions` (one per distinct bundle,
keyed by the sha256 of its manifest; status pending -> verifying -> accepted | rejected |
failed, with reasons) and `entries` (the page's rows, written with the accepted status in one
transaction). The schema is created and changed only by the Alembic migrations in
`migrations/` (`migrate(engine)`), on SQLite (default) and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

STATUSES = ("pending", "verifying", "accepted", "rejected", "failed")
ROLES = ("submitter", "admin")


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="submitter")
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now)


class Submission(Base):
    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bundle_id: Mapped[str] = mapped_column(String(64), unique=True)
    """sha256 of the bundle's manifest.json: the same bundle twice is one submission."""
    file_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    errors_json: Mapped[str] = mapped_column(Text, default="[]")
    warnings_json: Mapped[str] = mapped_column(Text, default="[]")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    episodes: Mapped[int] = mapped_column(Integer, default=0)
    replayed: Mapped[int] = mapped_column(Integer, default=0)
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")
    track: Mapped[str] = mapped_column(String(100), default="")
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=now)

    user: Mapped[User] = relationship()
    entries: Mapped[list[Entry]] = relationship(back_populates="submission")

    def errors(self) -> list[str]:
        return list(json.loads(self.errors_json))

    def status_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bundle_id": self.bundle_id,
            "status": self.status,
            "errors": self.errors(),
            "warnings": list(json.loads(self.warnings_json)),
            "episodes": self.episodes,
            "replayed": self.replayed,
            "track": self.track,
            "submitter": self.user.name if self.user else None,
            "hidden": self.hidden,
            "flagged": self.flagged,
            "flag_reason": self.flag_reason,
            "created_at": self.created_at.isoformat() + "Z",
            "updated_at": self.updated_at.isoformat() + "Z",
        }


class Entry(Base):
    """One leaderboard row (see `rows.bundle_rows`); its numbers as columns for sorting and
    the whole row as JSON for the page."""

    __tablename__ = "entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    teacher: Mapped[str] = mapped_column(String(500))
    student: Mapped[str] = mapped_column(String(500))
    trait: Mapped[str] = mapped_column(String(100))
    student_init: Mapped[str] = mapped_column(String(50))
    track: Mapped[str] = mapped_column(String(100))
    difference: Mapped[float | None] = mapped_column(Float, nullable=True)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    row_json: Mapped[str] = mapped_column(Text)

    submission: Mapped[Submission] = relationship(back_populates="entries")


def make_engine(url: str) -> Engine:
    """An engine for `url` (sqlite:///file.db, postgresql+psycopg://...). SQLite gets WAL and
    a busy timeout so that the worker and many uploads can write without `database is
    locked`, and enforced foreign keys."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` with the Alembic migrations shipped here."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def sessions(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)
