"""The fault-injected replacements for 001 behave as documented, and still carry the real SQL."""

import importlib.util
import shutil

import pytest

import support
from support import APP_DIR, alembic

FAULTY = APP_DIR / "testing" / "faulty_revisions"
REAL = APP_DIR / "migrations" / "versions" / "001_uuid_schema_migration.py"


def load(path):
    spec = importlib.util.spec_from_file_location(f"rev_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def app_with(tmp_path, variant):
    """A copy of the app whose 001 revision is the named faulty variant."""
    copy = tmp_path / "app"
    shutil.copytree(APP_DIR, copy, ignore=shutil.ignore_patterns(".run", "__pycache__", "tests"))
    shutil.copy(FAULTY / f"{variant}.py", copy / "migrations" / "versions" / "001_uuid_schema_migration.py")
    return copy


@pytest.mark.parametrize("variant", ["fail_halfway", "drop_rows", "reparent"])
def test_variant_matches_the_real_revision(variant):
    real, faulty = load(REAL), load(FAULTY / f"{variant}.py")
    assert (faulty.revision, faulty.down_revision) == (real.revision, real.down_revision)
    assert faulty.UPGRADE_SQL == real.UPGRADE_SQL and faulty.DOWNGRADE_SQL == real.DOWNGRADE_SQL


def test_fail_halfway_leaves_0000_untouched(fresh_db, tmp_path):
    before = (support.content(fresh_db), support.schema(fresh_db), support.key_types(fresh_db))
    done = alembic(fresh_db.env, "upgrade", "001_uuid_schema_migration", app_dir=app_with(tmp_path, "fail_halfway"),
                   check=False)
    assert done.returncode != 0 and "fault injected" in done.stderr
    assert support.revision(fresh_db) == "0000_initial"
    assert (support.content(fresh_db), support.schema(fresh_db), support.key_types(fresh_db)) == before


def test_drop_rows_completes_but_loses_journals(fresh_db, tmp_path):
    before = support.content(fresh_db)
    alembic(fresh_db.env, "upgrade", "001_uuid_schema_migration", app_dir=app_with(tmp_path, "drop_rows"))
    after = support.content(fresh_db)
    assert support.revision(fresh_db) == "001_uuid_schema_migration"
    assert 0 < after["counts"]["users"] == before["counts"]["users"]
    assert after["counts"]["journals"] < before["counts"]["journals"]


def test_reparent_completes_but_moves_journals(fresh_db, tmp_path):
    before = support.content(fresh_db)
    alembic(fresh_db.env, "upgrade", "001_uuid_schema_migration", app_dir=app_with(tmp_path, "reparent"))
    after = support.content(fresh_db)
    assert support.revision(fresh_db) == "001_uuid_schema_migration"
    assert after["counts"] == before["counts"]
    assert after["journals"] != before["journals"]
    # same journals, different owners
    assert sorted(r[1:] for r in after["journals"]) == sorted(r[1:] for r in before["journals"])
