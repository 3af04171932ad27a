"""FAULT-INJECTED replacement for 001_uuid_schema_migration.py (tests only).

Revision ID: 001_uuid_schema_migration
Revises: 0000_initial

Runs the first half of the real upgrade, then raises. Alembic's single transaction must roll
everything back: the database stays at 0000_initial, unchanged.
The revision's own code is the real one's: testing/install_fault.py keeps the real revision
beside this file as real_001.py (outside versions/, so alembic sees one 001 only).
"""
from alembic import op

from testing.faulty_revisions import real_001 as real
from testing.faulty_revisions.real_001 import branch_labels, depends_on, down_revision, downgrade, revision  # noqa: F401


def upgrade() -> None:
    real.set_lock_timeout()
    for statement in real.UPGRADE_SQL[: len(real.UPGRADE_SQL) // 2]:
        op.execute(statement)
    raise RuntimeError("fault injected: fail_halfway stopped the uuid migration halfway")
