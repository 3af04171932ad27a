"""FAULT-INJECTED replacement for 001_uuid_schema_migration.py (tests only).

Revision ID: 001_uuid_schema_migration
Revises: 0000_initial

Runs the real upgrade, then hangs inside the migration's transaction, holding its locks: the
command must be stopped on its timeout, and its session ended before anything is checked.
"""
from alembic import op

from testing.faulty_revisions import real_001 as real
from testing.faulty_revisions.real_001 import branch_labels, depends_on, down_revision, downgrade, revision  # noqa: F401


def upgrade() -> None:
    real.upgrade()
    op.execute("SELECT pg_sleep(600)")
