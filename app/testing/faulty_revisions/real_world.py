"""FAULT-INJECTED replacement for 001_uuid_schema_migration.py (tests only).

Revision ID: 001_uuid_schema_migration
Revises: 0000_initial

A migration as a team wrote it: its upgrade leaves the foreign key journals.user_id nullable
(alter_column(nullable=True)); its downgrade recreates the integer ids without their nextval()
defaults (the sequences exist, unattached) and leaves user_id nullable too.
The revision's own code is the real one's: testing/install_fault.py keeps the real revision
beside this file as real_001.py (outside versions/, so alembic sees one 001 only).
"""
from alembic import op

from testing.faulty_revisions import real_001 as real
from testing.faulty_revisions.real_001 import branch_labels, depends_on, down_revision, revision  # noqa: F401

UPGRADE_FAULT = "ALTER TABLE journals ALTER COLUMN user_id DROP NOT NULL"
DOWNGRADE_FAULT = (
    "ALTER TABLE users ALTER COLUMN id DROP DEFAULT",
    "ALTER TABLE tags ALTER COLUMN id DROP DEFAULT",
    "ALTER TABLE journals ALTER COLUMN id DROP DEFAULT",
    "ALTER TABLE journals ALTER COLUMN user_id DROP NOT NULL",
)


def upgrade() -> None:
    real.upgrade()
    op.execute(UPGRADE_FAULT)


def downgrade() -> None:
    real.downgrade()
    for statement in DOWNGRADE_FAULT:
        op.execute(statement)
