"""FAULT-INJECTED replacement for 001_uuid_schema_migration.py (tests only).

Revision ID: 001_uuid_schema_migration
Revises: 0000_initial

Runs the real upgrade, then drops journal_tags: a covered table is gone, and the real downgrade,
which converts journal_tags back, fails. Only the backup can bring the data back.
"""
from alembic import op

from testing.faulty_revisions import real_001 as real
from testing.faulty_revisions.real_001 import branch_labels, depends_on, down_revision, downgrade, revision  # noqa: F401


def upgrade() -> None:
    real.upgrade()
    op.execute("DROP TABLE journal_tags")
