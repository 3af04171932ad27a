"""Writes the SQL-files form of the alembic revisions (migrationMode sql, docs/architecture.md):
<revision>.up.sql and <revision>.down.sql for every revision, from alembic's offline (as_sql) mode.

    cd app && /usr/bin/python3 migrations/sql/generate.py           # rewrite the files
    cd app && /usr/bin/python3 migrations/sql/generate.py --check   # exit 1 when they differ

migrations/env.py runs online only, so this drives the offline mode itself: each revision's
upgrade() / downgrade() runs against an offline MigrationContext, which writes the SQL instead
of executing it. Left out on purpose, because `vibes-hooks migrate --mode sql` does them:
- alembic_version statements: the hook records the revision in the files' transaction;
- transaction control: the hook runs the files under psql --single-transaction;
- 001's SET LOCAL lock_timeout: the hook sets lock_timeout (VIBES_LOCK_TIMEOUT) for the session.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

SQL_DIR = Path(__file__).resolve().parent
APP_DIR = SQL_DIR.parent.parent
LEFT_OUT = re.compile(r"SET LOCAL lock_timeout = '[^']*';")


class _Statements:
    """An output buffer that keeps each statement alembic writes (one write per statement)."""

    def __init__(self):
        self.statements: list[str] = []

    def write(self, text: str) -> None:
        self.statements.append(text.strip())

    def flush(self) -> None:
        pass


def _offline_sql(module, direction: str) -> list[str]:
    out = _Statements()
    context = MigrationContext.configure(
        dialect_name="postgresql", opts={"as_sql": True, "output_buffer": out, "transactional_ddl": False})
    with Operations.context(context):
        getattr(module, f"{direction}grade")()
    return [s for s in out.statements if s and not LEFT_OUT.fullmatch(s)]


def render() -> dict[str, str]:
    """File name -> content, for every revision, oldest first."""
    script = ScriptDirectory.from_config(Config(str(APP_DIR / "alembic.ini")))
    revisions = list(reversed(list(script.walk_revisions())))
    for previous, rev in zip([None, *revisions], revisions):
        if rev.down_revision != (previous.revision if previous else None):
            sys.exit(f"{rev.revision}: the SQL files need one line of history (down_revision {rev.down_revision!r})")
    names = [r.revision for r in revisions]
    if names != sorted(names, key=lambda n: n.encode()):
        sys.exit(f"revision ids {names} do not sort in history order: the hook orders SQL files by name")
    files = {}
    for rev in revisions:
        source = Path(rev.path).relative_to(APP_DIR)
        for direction in ("up", "down"):
            header = (f"-- {rev.revision} {direction}: generated from {source} by migrations/sql/generate.py"
                      " (alembic offline mode); do not edit.\n")
            files[f"{rev.revision}.{direction}.sql"] = header + "\n" + "\n\n".join(_offline_sql(rev.module, direction)) + "\n"
    return files


def main(argv: list[str]) -> int:
    files = render()
    if argv == ["--check"]:
        on_disk = {p.name: p.read_text() for p in SQL_DIR.glob("*.sql")}
        stale = sorted(n for n in files.keys() | on_disk.keys() if files.get(n) != on_disk.get(n))
        if stale:
            print(f"out of date: {', '.join(stale)}; run: cd app && python3 migrations/sql/generate.py", file=sys.stderr)
        return 1 if stale else 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    for stale in SQL_DIR.glob("*.sql"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (SQL_DIR / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
