"""Alembic environment: online mode only, URL from DATABASE_URL, all pending revisions in one
transaction (PostgreSQL's DDL is transactional, so a failure leaves the schema untouched)."""

import os
import sys
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool, text

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Alembic takes no lock of its own: this transaction-scoped advisory lock stops a second
# concurrent run instead of letting two migrations interleave.
MIGRATION_LOCK_KEY = 0x76696265  # "vibe"

url = os.environ.get("DATABASE_URL", "").strip()
if not url:
    sys.exit("DATABASE_URL is not set (postgresql://user@host:port/db; password via PGPASSFILE)")
if url.startswith("postgres://"):
    url = "postgresql://" + url[len("postgres://"):]


def run_migrations_online() -> None:
    # vibes-hooks names the sessions of the commands it runs (PGAPPNAME), to end those a failed
    # or timed-out command leaves running; by hand the session is "vibes-alembic".
    app_name = os.environ.get("PGAPPNAME") or "vibes-alembic"
    engine = create_engine(url, poolclass=pool.NullPool, connect_args={"application_name": app_name})
    with engine.connect() as connection:
        # vibes-hooks migrate passes the schema it read the revision from: the record stays there
        # whatever search_path a revision sets.
        version_schema = os.environ.get("VIBES_VERSION_TABLE_SCHEMA") or None
        context.configure(connection=connection, transaction_per_migration=False, version_table_schema=version_schema)
        with context.begin_transaction():
            got_lock = connection.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY}).scalar()
            if not got_lock:
                raise RuntimeError("another migration holds the vibes migration lock; try again when it has finished")
            context.run_migrations()


if context.is_offline_mode():
    sys.exit("offline (--sql) mode is not supported: run against a database")
run_migrations_online()
