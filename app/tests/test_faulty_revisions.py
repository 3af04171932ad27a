"""The fault-injected replacements for 001 behave as documented, on top of the real revision."""

import shutil

import support
from support import APP_DIR, alembic
from testing.install_fault import install_fault


def app_with(tmp_path, variant):
    """A copy of the app whose 001 revision is the named faulty variant."""
    copy = tmp_path / "app"
    shutil.copytree(APP_DIR, copy, ignore=shutil.ignore_patterns(".run", "__pycache__", "tests"))
    install_fault(copy, variant)
    return copy


def test_variants_run_the_real_revision_and_roll_back_with_it(fresh_db, tmp_path):
    # drop_rows upgrades with the real revision's code, and downgrades with it too.
    app = app_with(tmp_path, "drop_rows")
    alembic(fresh_db.env, "upgrade", "001_uuid_schema_migration", app_dir=app)
    assert {t for t, _ in support.key_types(fresh_db).values()} == {"uuid"}
    alembic(fresh_db.env, "downgrade", "0000_initial", app_dir=app)
    assert support.revision(fresh_db) == "0000_initial"
    assert {t for t, _ in support.key_types(fresh_db).values()} == {"integer"}


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
