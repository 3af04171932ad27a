"""Shared fixtures: one throwaway PostgreSQL cluster per session, a template database at
0000_initial with generated data, and a fresh copy of it per test."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import psycopg2
import pytest

from support import SAMPLE, alembic, generate
from testing.pgcluster import Cluster

_names = itertools.count(1)


@pytest.fixture(scope="session")
def cluster():
    top = Path(tempfile.mkdtemp(prefix="vibes-app-tests-"))
    top.chmod(0o711)  # the postgres user must reach its data dir inside
    c = Cluster(top / "pg").start()
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def template(cluster):
    cluster.create_database("vibes_template")
    env = cluster.env("vibes_template")
    alembic(env, "upgrade", "0000_initial")
    generate(env, **SAMPLE)
    return "vibes_template"


class Database:
    def __init__(self, cluster: Cluster, name: str):
        self.cluster, self.name = cluster, name
        self.env = cluster.env(name)

    def connect(self):
        conn = psycopg2.connect(self.cluster.url(self.name), passfile=str(self.cluster.pgpass))
        conn.autocommit = True
        return conn

    def query(self, sql, params=None):
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()


@pytest.fixture
def fresh_db(cluster, template) -> Database:
    """A database at 0000_initial holding the SAMPLE data."""
    name = f"t{next(_names)}_{os.getpid()}"
    cluster.create_database(name, template=template)
    return Database(cluster, name)


@pytest.fixture
def empty_db(cluster) -> Database:
    """A database at 0000_initial with no rows."""
    name = f"e{next(_names)}_{os.getpid()}"
    cluster.create_database(name)
    db = Database(cluster, name)
    alembic(db.env, "upgrade", "0000_initial")
    return db
