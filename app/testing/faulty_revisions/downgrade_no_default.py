"""FAULT-INJECTED replacement for 001_uuid_schema_migration.py (tests only).

Revision ID: 001_uuid_schema_migration
Revises: 0000_initial

The real upgrade; its downgrade recreates the integer ids but detaches users.id from its
sequence (the sequence exists, the default is gone): every insert that leaves out the id fails.
The revision's own code is the real one's: testing/install_fault.py keeps the real revision
beside this file as real_001.py (outside versions/, so alembic sees one 001 only).
"""
from alembic import op

from testing.faulty_revisions import real_001 as real
from testing.faulty_revisions.real_001 import branch_labels, depends_on, down_revision, revision  # noqa: F401

FAULT_SQL = "ALTER TABLE users ALTER COLUMN id DROP DEFAULT"


def upgrade() -> None:
    real.upgrade()


def downgrade() -> None:
    real.downgrade()
    op.execute(FAULT_SQL)
