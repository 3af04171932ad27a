"""Database access shared by the endpoints: the engine and what the catalog says about ids."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine

TABLES = ("users", "journals", "tags", "journal_tags")
# Every key column the integer -> uuid change touches.
KEY_COLUMNS = {
    "users": ("id",),
    "journals": ("id", "user_id"),
    "tags": ("id",),
    "journal_tags": ("journal_id", "tag_id"),
}


def make_engine(database_url: str) -> Engine:
    return create_engine(
        database_url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 5, "application_name": "vibes"},
    )


def id_type(conn: Connection) -> str | None:
    """'integer' or 'uuid' from the catalog (None before the schema exists), so the same code
    serves both sides of the migration."""
    return conn.execute(
        text(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'users' AND column_name = 'id'"
        )
    ).scalar()


def key_column_types(conn: Connection) -> dict[str, dict[str, str]]:
    rows = conn.execute(
        text(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ANY(:tables)"
        ),
        {"tables": list(TABLES)},
    )
    found: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        if column in KEY_COLUMNS[table]:
            found.setdefault(table, {})[column] = data_type
    return found


def schema_revision(conn: Connection) -> str | None:
    if conn.execute(text("SELECT to_regclass('alembic_version')")).scalar() is None:
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def row_counts(conn: Connection) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is not None:
            counts[table] = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    return counts


def parse_id(raw: str, kind: str | None):
    """The id in the column's Python type, or None when it is not valid for that type."""
    if kind == "uuid":
        try:
            return uuid.UUID(raw)
        except ValueError:
            return None
    if kind == "integer":
        if not re.fullmatch(r"-?[0-9]{1,10}", raw):
            return None
        value = int(raw)
        return value if -(2**31) <= value < 2**31 else None
    return None


def json_id(value):
    return str(value) if isinstance(value, uuid.UUID) else value
