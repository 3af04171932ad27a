"""migrations/sql/ (migrationMode sql) is what alembic's offline mode makes of the revisions, so
the SQL files and the alembic revisions cannot drift apart."""

import importlib.util
import sys

from support import APP_DIR

SQL_DIR = APP_DIR / "migrations" / "sql"


def load_generator():
    spec = importlib.util.spec_from_file_location("sql_generate", SQL_DIR / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode, saved = True, sys.dont_write_bytecode
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


def test_committed_sql_files_equal_what_alembic_generates():
    generated = load_generator().render()
    committed = {p.name: p.read_text() for p in SQL_DIR.glob("*.sql")}
    assert sorted(committed) == sorted(generated), "run: cd app && python3 migrations/sql/generate.py"
    for name, text in generated.items():
        assert committed[name] == text, f"{name} is stale; run: cd app && python3 migrations/sql/generate.py"


def test_every_revision_has_both_directions_without_alembic_or_transaction_statements():
    generated = load_generator().render()
    assert list(generated) == [f"{rev}.{d}.sql" for rev in ("0000_initial", "001_uuid_schema_migration") for d in ("up", "down")]
    for name, text in generated.items():
        lowered = text.lower()
        assert "alembic_version" not in lowered and "lock_timeout" not in lowered, name
        assert not any(line.strip().rstrip(";").upper() in ("BEGIN", "COMMIT") for line in text.splitlines()), name
    assert "ALTER TABLE users ADD COLUMN new_id uuid" in generated["001_uuid_schema_migration.up.sql"]
