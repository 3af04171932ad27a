"""FAULT-INJECTED replacement for 001_uuid_schema_migration.py (tests only).

Revision ID: 001_uuid_schema_migration
Revises: 0000_initial

Runs the real upgrade, then recreates journal_tags_tag_id_fkey without its ON DELETE CASCADE
(the default NO ACTION): deleting a tag now fails where it cascaded.
The revision's own code is the real one's: testing/install_fault.py keeps the real revision
beside this file as real_001.py (outside versions/, so alembic sees one 001 only).
"""
from alembic import op

from testing.faulty_revisions import real_001 as real
from testing.faulty_revisions.real_001 import branch_labels, depends_on, down_revision, downgrade, revision  # noqa: F401

FAULT_SQL = (
    "ALTER TABLE journal_tags DROP CONSTRAINT journal_tags_tag_id_fkey,"
    " ADD CONSTRAINT journal_tags_tag_id_fkey FOREIGN KEY (tag_id) REFERENCES tags (id)"
)


def upgrade() -> None:
    real.upgrade()
    op.execute(FAULT_SQL)
