"""Initial schema: users, submissions, entries.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("bundle_id", sa.String(64), nullable=False, unique=True),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("errors_json", sa.Text, nullable=False),
        sa.Column("warnings_json", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("episodes", sa.Integer, nullable=False),
        sa.Column("replayed", sa.Integer, nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("track", sa.String(100), nullable=False),
        sa.Column("hidden", sa.Boolean, nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("flag_reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_submissions_status", "submissions", ["status"])
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("submission_id", sa.Integer, sa.ForeignKey("submissions.id"), nullable=False),
        sa.Column("teacher", sa.String(500), nullable=False),
        sa.Column("student", sa.String(500), nullable=False),
        sa.Column("trait", sa.String(100), nullable=False),
        sa.Column("student_init", sa.String(50), nullable=False),
        sa.Column("track", sa.String(100), nullable=False),
        sa.Column("difference", sa.Float, nullable=True),
        sa.Column("p_value", sa.Float, nullable=True),
        sa.Column("row_json", sa.Text, nullable=False),
    )
    op.create_index("ix_entries_submission_id", "entries", ["submission_id"])


def downgrade() -> None:
    op.drop_table("entries")
    op.drop_table("submissions")
    op.drop_table("users")
