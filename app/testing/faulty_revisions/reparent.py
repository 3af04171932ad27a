"""FAULT-INJECTED replacement for 001_uuid_schema_migration.py (tests only).

Revision ID: 001_uuid_schema_migration
Revises: 0000_initial

Runs the real upgrade, then moves about a tenth of the journals (at least one) to another
user: row counts still match, relationships do not. Needs at least two users. The SQL
constants below are the real revision's, verbatim (app/tests check that they still match).
"""
import os
import re

from alembic import op

revision = "001_uuid_schema_migration"
down_revision = "0000_initial"
branch_labels = None
depends_on = None

# Take every lock up front, in one order, so the migration never waits halfway through
# holding some of them (lock_timeout bounds this single wait).
LOCK_TABLES = "LOCK TABLE users, journals, tags, journal_tags IN ACCESS EXCLUSIVE MODE"

DROP_KEYS = (
    "ALTER TABLE journal_tags DROP CONSTRAINT journal_tags_journal_id_fkey,"
    " DROP CONSTRAINT journal_tags_tag_id_fkey, DROP CONSTRAINT journal_tags_pkey",
    "ALTER TABLE journals DROP CONSTRAINT journals_user_id_fkey, DROP CONSTRAINT journals_pkey",
    "ALTER TABLE users DROP CONSTRAINT users_pkey",
    "ALTER TABLE tags DROP CONSTRAINT tags_pkey",
    "DROP INDEX ix_journals_user_id, ix_journal_tags_tag_id",
)

SWAP_COLUMNS = (
    "ALTER TABLE users DROP COLUMN id",
    "ALTER TABLE users RENAME COLUMN new_id TO id",
    "ALTER TABLE tags DROP COLUMN id",
    "ALTER TABLE tags RENAME COLUMN new_id TO id",
    "ALTER TABLE journals DROP COLUMN id, DROP COLUMN user_id",
    "ALTER TABLE journals RENAME COLUMN new_id TO id",
    "ALTER TABLE journals RENAME COLUMN new_user_id TO user_id",
    "ALTER TABLE journal_tags DROP COLUMN journal_id, DROP COLUMN tag_id",
    "ALTER TABLE journal_tags RENAME COLUMN new_journal_id TO journal_id",
    "ALTER TABLE journal_tags RENAME COLUMN new_tag_id TO tag_id",
    # SET NOT NULL also proves every child found its parent's new key.
    "ALTER TABLE journals ALTER COLUMN id SET NOT NULL, ALTER COLUMN user_id SET NOT NULL",
    "ALTER TABLE journal_tags ALTER COLUMN journal_id SET NOT NULL, ALTER COLUMN tag_id SET NOT NULL",
)

RESTORE_KEYS = (
    "ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY (id)",
    "ALTER TABLE tags ADD CONSTRAINT tags_pkey PRIMARY KEY (id)",
    "ALTER TABLE journals ADD CONSTRAINT journals_pkey PRIMARY KEY (id)",
    "ALTER TABLE journal_tags ADD CONSTRAINT journal_tags_pkey PRIMARY KEY (journal_id, tag_id)",
    "CREATE INDEX ix_journals_user_id ON journals (user_id)",
    "CREATE INDEX ix_journal_tags_tag_id ON journal_tags (tag_id)",
    # NOT VALID then VALIDATE: the check scan runs under a weaker lock when run on its own.
    "ALTER TABLE journals ADD CONSTRAINT journals_user_id_fkey FOREIGN KEY (user_id)"
    " REFERENCES users (id) ON DELETE CASCADE NOT VALID",
    "ALTER TABLE journal_tags ADD CONSTRAINT journal_tags_journal_id_fkey FOREIGN KEY (journal_id)"
    " REFERENCES journals (id) ON DELETE CASCADE NOT VALID",
    "ALTER TABLE journal_tags ADD CONSTRAINT journal_tags_tag_id_fkey FOREIGN KEY (tag_id)"
    " REFERENCES tags (id) ON DELETE CASCADE NOT VALID",
    "ALTER TABLE journals VALIDATE CONSTRAINT journals_user_id_fkey",
    "ALTER TABLE journal_tags VALIDATE CONSTRAINT journal_tags_journal_id_fkey",
    "ALTER TABLE journal_tags VALIDATE CONSTRAINT journal_tags_tag_id_fkey",
)

UPGRADE_SQL = (
    LOCK_TABLES,
    # A volatile default is evaluated per row: every existing row gets its own uuid.
    "ALTER TABLE users ADD COLUMN new_id uuid NOT NULL DEFAULT gen_random_uuid()",
    "ALTER TABLE tags ADD COLUMN new_id uuid NOT NULL DEFAULT gen_random_uuid()",
    "ALTER TABLE journals ADD COLUMN new_id uuid, ADD COLUMN new_user_id uuid",
    # One pass over journals fills both its new key and its parent's new key.
    "UPDATE journals j SET new_id = gen_random_uuid(), new_user_id = u.new_id FROM users u WHERE u.id = j.user_id",
    "ALTER TABLE journal_tags ADD COLUMN new_journal_id uuid, ADD COLUMN new_tag_id uuid",
    "UPDATE journal_tags jt SET new_journal_id = j.new_id, new_tag_id = t.new_id"
    " FROM journals j, tags t WHERE j.id = jt.journal_id AND t.id = jt.tag_id",
) + DROP_KEYS + SWAP_COLUMNS + (
    "ALTER TABLE journals ALTER COLUMN id SET DEFAULT gen_random_uuid()",
) + RESTORE_KEYS

DOWNGRADE_SQL = (
    LOCK_TABLES,
    # Fresh sequence-backed ids under the names serial would give; the default numbers
    # existing rows during the table rewrite and stays as the id default.
    "CREATE SEQUENCE users_id_seq AS integer",
    "CREATE SEQUENCE tags_id_seq AS integer",
    "CREATE SEQUENCE journals_id_seq AS integer",
    "ALTER TABLE users ADD COLUMN new_id integer NOT NULL DEFAULT nextval('users_id_seq')",
    "ALTER TABLE tags ADD COLUMN new_id integer NOT NULL DEFAULT nextval('tags_id_seq')",
    "ALTER TABLE journals ADD COLUMN new_id integer NOT NULL DEFAULT nextval('journals_id_seq'),"
    " ADD COLUMN new_user_id integer",
    "UPDATE journals j SET new_user_id = u.new_id FROM users u WHERE u.id = j.user_id",
    "ALTER TABLE journal_tags ADD COLUMN new_journal_id integer, ADD COLUMN new_tag_id integer",
    "UPDATE journal_tags jt SET new_journal_id = j.new_id, new_tag_id = t.new_id"
    " FROM journals j, tags t WHERE j.id = jt.journal_id AND t.id = jt.tag_id",
) + DROP_KEYS + SWAP_COLUMNS + (
    "ALTER SEQUENCE users_id_seq OWNED BY users.id",
    "ALTER SEQUENCE tags_id_seq OWNED BY tags.id",
    "ALTER SEQUENCE journals_id_seq OWNED BY journals.id",
    "SELECT setval('users_id_seq', COALESCE(max(id), 1), max(id) IS NOT NULL) FROM users",
    "SELECT setval('tags_id_seq', COALESCE(max(id), 1), max(id) IS NOT NULL) FROM tags",
    "SELECT setval('journals_id_seq', COALESCE(max(id), 1), max(id) IS NOT NULL) FROM journals",
) + RESTORE_KEYS


def set_lock_timeout() -> None:
    # Bounded waits: an ALTER queued behind a long reader would block every later query.
    timeout = os.environ.get("VIBES_LOCK_TIMEOUT", "5s")
    if not re.fullmatch(r"[0-9]+\s*(ms|s|min)?", timeout):
        raise ValueError(f"VIBES_LOCK_TIMEOUT must be a PostgreSQL duration like 5s, got {timeout!r}")
    op.execute(f"SET LOCAL lock_timeout = '{timeout}'")


FAULT_SQL = (
    "WITH thief AS (SELECT id FROM users ORDER BY email LIMIT 1)"
    " UPDATE journals SET user_id = (SELECT id FROM thief) WHERE id IN ("
    " SELECT id FROM journals WHERE user_id <> (SELECT id FROM thief) ORDER BY created_at, title"
    " LIMIT GREATEST(1, (SELECT count(*) FROM journals) / 10))"
)


def upgrade() -> None:
    set_lock_timeout()
    for statement in UPGRADE_SQL:
        op.execute(statement)
    op.execute(FAULT_SQL)


def downgrade() -> None:
    set_lock_timeout()
    for statement in DOWNGRADE_SQL:
        op.execute(statement)
