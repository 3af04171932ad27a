"""FAULT-INJECTED replacement for 001_uuid_schema_migration.py (tests only).

Revision ID: 001_uuid_schema_migration
Revises: 0000_initial

Runs the real upgrade, then drops the CHECK constraint journals_title_not_blank (the tests
add it before the backup), as a migration that recreates a table without it would.
The revision's own code is the real one's: testing/install_fault.py keeps the real revision
beside this file as real_001.py (outside versions/, so alembic sees one 001 only).
"""
from alembic import op

from testing.faulty_revisions import real_001 as real
from testing.faulty_revisions.real_001 import branch_labels, depends_on, down_revision, downgrade, revision  # noqa: F401

FAULT_SQL = "ALTER TABLE journals DROP CONSTRAINT IF EXISTS journals_title_not_blank"


def upgrade() -> None:
    real.upgrade()
    op.execute(FAULT_SQL)
