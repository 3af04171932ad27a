"""Helpers for the tests: running alembic and the generator, and snapshots of what the
migration must preserve, in terms that do not depend on the id values."""

import subprocess
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"
SAMPLE = {"users": 12, "journals_per_user": 4, "tags": 6, "seed": 42}


def run(cmd, env, cwd=APP_DIR, check=True):
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def alembic(env, *args, app_dir=APP_DIR, check=True):
    return run([PYTHON, "-m", "alembic", *args], env, cwd=app_dir, check=check)


def generate(env, users, journals_per_user, tags, seed):
    return run([PYTHON, "-m", "vibes.generate", "--users", str(users), "--journals-per-user",
                str(journals_per_user), "--tags", str(tags), "--seed", str(seed)], env)


TABLES = ("users", "journals", "tags", "journal_tags")


def content(db) -> dict:
    """Each user's journals with their tags, keyed by email and title, plus row counts."""
    rows = db.query(
        """SELECT u.email, j.title, j.content, j.created_at::text,
                  COALESCE((SELECT array_agg(t.name ORDER BY t.name) FROM journal_tags jt
                            JOIN tags t ON t.id = jt.tag_id WHERE jt.journal_id = j.id), '{}')
           FROM users u LEFT JOIN journals j ON j.user_id = u.id ORDER BY 1, 2"""
    )
    counts = {t: db.query(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
    tags = [r[0] for r in db.query("SELECT name FROM tags ORDER BY name")]
    return {"journals": rows, "counts": counts, "tags": tags}


def schema(db) -> dict:
    constraints = db.query(
        """SELECT conrelid::regclass::text, conname, contype, confdeltype, convalidated
           FROM pg_constraint WHERE connamespace = 'public'::regnamespace
             AND conrelid::regclass::text = ANY(%s) ORDER BY 1, 2""",
        (list(TABLES),),
    )
    indexes = db.query(
        "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY(%s) ORDER BY 1, 2",
        (list(TABLES),),
    )
    return {"constraints": constraints, "indexes": indexes}


def key_types(db) -> dict:
    rows = db.query(
        """SELECT table_name || '.' || column_name, data_type, COALESCE(column_default, '')
           FROM information_schema.columns WHERE table_schema = 'public'
             AND (table_name, column_name) IN (('users','id'), ('journals','id'), ('journals','user_id'),
                 ('tags','id'), ('journal_tags','journal_id'), ('journal_tags','tag_id'))"""
    )
    return {name: (data_type, default) for name, data_type, default in rows}


def revision(db):
    return db.query("SELECT version_num FROM alembic_version")[0][0]
