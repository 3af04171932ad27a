"""The real revisions against a real PostgreSQL: 0000_initial <-> 001_uuid_schema_migration."""

import support
from support import alembic

UUID_REV, INITIAL = "001_uuid_schema_migration", "0000_initial"


def test_upgrade_keeps_every_row_relationship_and_name(fresh_db):
    before_content, before_schema = support.content(fresh_db), support.schema(fresh_db)
    assert before_content["counts"]["journals"] == 12 * 4 and before_content["counts"]["journal_tags"] > 0

    alembic(fresh_db.env, "upgrade", UUID_REV)

    assert support.revision(fresh_db) == UUID_REV
    assert support.content(fresh_db) == before_content
    assert support.schema(fresh_db) == before_schema
    types = support.key_types(fresh_db)
    assert {name: t for name, (t, _) in types.items()} == dict.fromkeys(types, "uuid") and len(types) == 6
    for table in ("users", "journals", "tags"):
        assert types[f"{table}.id"][1] == "gen_random_uuid()"
    fks = [c for c in support.schema(fresh_db)["constraints"] if c[2] == "f"]
    assert len(fks) == 3 and all(c[3] == "c" and c[4] for c in fks)  # ON DELETE CASCADE, validated
    # the serial sequences went with the integer columns
    assert fresh_db.query("SELECT count(*) FROM pg_class WHERE relkind = 'S'")[0][0] == 0


def test_downgrade_restores_integer_ids_and_relationships(fresh_db):
    before_content, before_schema = support.content(fresh_db), support.schema(fresh_db)
    alembic(fresh_db.env, "upgrade", UUID_REV)
    alembic(fresh_db.env, "downgrade", INITIAL)

    assert support.revision(fresh_db) == INITIAL
    assert support.content(fresh_db) == before_content
    assert support.schema(fresh_db) == before_schema
    types = support.key_types(fresh_db)
    assert all(t == "integer" for t, _ in types.values()) and len(types) == 6
    assert types["users.id"][1] == "nextval('users_id_seq'::regclass)"
    # sequences sit at max(id): the next insert gets max + 1, no collision
    max_id = fresh_db.query("SELECT max(id) FROM users")[0][0]
    new_id = fresh_db.query("INSERT INTO users (email, password_hash) VALUES ('new@example.test', 'x') RETURNING id")
    assert new_id[0][0] == max_id + 1
    # and the round trip can be repeated
    alembic(fresh_db.env, "upgrade", UUID_REV)
    assert support.content(fresh_db)["counts"]["users"] == before_content["counts"]["users"] + 1


def test_upgrade_gives_up_on_a_held_lock_instead_of_queueing(fresh_db):
    blocker = fresh_db.connect()
    blocker.autocommit = False
    try:
        blocker.cursor().execute("SELECT count(*) FROM journals")  # holds AccessShareLock until rollback
        env = dict(fresh_db.env, VIBES_LOCK_TIMEOUT="300ms")
        done = alembic(env, "upgrade", UUID_REV, check=False)
    finally:
        blocker.rollback()
        blocker.close()
    assert done.returncode != 0 and "lock timeout" in done.stderr
    assert support.revision(fresh_db) == INITIAL


def test_generator_is_deterministic_and_fills_at_revision_0000(fresh_db, empty_db, cluster):
    support.generate(empty_db.env, **support.SAMPLE)
    assert support.content(empty_db) == support.content(fresh_db)  # fresh_db came from the same seed
    titles = empty_db.query("SELECT count(*) FROM (SELECT user_id, title FROM journals GROUP BY 1, 2 HAVING count(*) > 1) d")
    assert titles[0][0] == 0
    # sequences moved past the explicit ids
    assert empty_db.query("INSERT INTO tags (name) VALUES ('brand-new') RETURNING id")[0][0] == support.SAMPLE["tags"] + 1
    # it refuses to add to a database that has data
    refused = support.run([support.PYTHON, "-m", "vibes.generate", "--users", "1"], empty_db.env, check=False)
    assert refused.returncode != 0 and "already has data" in refused.stderr

    cluster.create_database("other_seed")
    other = type(empty_db)(cluster, "other_seed")
    alembic(other.env, "upgrade", INITIAL)
    support.generate(other.env, **dict(support.SAMPLE, seed=7))
    assert support.content(other)["journals"] != support.content(fresh_db)["journals"]
