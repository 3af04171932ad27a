"""Fills an empty Vibes database with deterministic sample data.

    python3 -m vibes.generate --users N --journals-per-user N --tags N --seed S

DATABASE_URL comes from the environment (password via PGPASSFILE). The same seed gives the
same emails, titles, contents, timestamps and tag links. Rows go in with COPY, in batches,
in one transaction. Every generated user's password is SAMPLE_PASSWORD.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import random
import sys
import time
import uuid


from vibes import db
from vibes.config import normalise_database_url
from vibes.security import hash_password

SAMPLE_PASSWORD = "vibes-sample-password"
BATCH_ROWS = 50_000
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)

# Plain lowercase words: nothing that COPY's text format would need escaped.
WORDS = (
    "amber autumn bright breeze calm candle cedar cloud coffee coral dawn desert dream drift echo "
    "ember evening fern field flame forest garden gentle glow harbor haze honey horizon island "
    "journey lantern leaf light maple meadow mellow misty moon morning mountain night ocean orchard "
    "pebble pine quiet rain river rose sand shadow shore silver sky slow snow spark spring star "
    "stone storm summer sun thunder tide trail twilight valley velvet walk warm wave willow wind "
    "winter wonder yellow zephyr"
).split()


class Generator:
    def __init__(self, seed: int, id_type: str):
        self.rng = random.Random(seed)
        self.id_type = id_type
        self.next_int = 0

    def new_id(self):
        if self.id_type == "uuid":
            return uuid.UUID(int=self.rng.getrandbits(128), version=4)
        self.next_int += 1
        return self.next_int

    def timestamp(self) -> str:
        return (EPOCH + dt.timedelta(seconds=self.rng.randrange(365 * 86400))).isoformat()


def copy_rows(cursor, table: str, columns: str, buffer: io.StringIO) -> None:
    buffer.seek(0)
    cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", buffer)


def generate(engine, users: int, journals_per_user: int, tags: int, seed: int, log=lambda msg: None) -> dict:
    started = time.monotonic()
    with engine.connect() as conn:
        kind = db.id_type(conn)
        if kind is None:
            raise SystemExit("the schema does not exist: run alembic upgrade 0000_initial first")
        counts = db.row_counts(conn)
    if any(counts.values()):
        raise SystemExit(f"the database already has data ({counts}); the generator fills an empty database")

    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        result = _fill(cursor, kind, users, journals_per_user, tags, seed, log)
        if kind == "integer":
            # Explicit ids bypassed the sequences: move them past the rows we wrote.
            for table in ("users", "journals", "tags"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(max(id), 1), max(id) IS NOT NULL)"
                    f" FROM {table}"
                )
        raw.commit()
    finally:
        raw.close()
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def _fill(cursor, kind, n_users, per_user, n_tags, seed, log) -> dict:
    gen = Generator(seed, kind)
    salt = hashlib.sha256(f"vibes-generate-{seed}".encode()).digest()[:16]
    # One hash for all: pbkdf2 per user would dominate the run time.
    password_hash = hash_password(SAMPLE_PASSWORD, salt=salt)

    tag_ids = []
    buf = io.StringIO()
    for k in range(n_tags):
        tag_id = gen.new_id()
        tag_ids.append(tag_id)
        buf.write(f"{tag_id}\t{gen.rng.choice(WORDS)}-{k + 1}\n")
    copy_rows(cursor, "tags", "id, name", buf)

    user_ids = []
    buf = io.StringIO()
    for i in range(n_users):
        user_id = gen.new_id()
        user_ids.append(user_id)
        buf.write(f"{user_id}\t{gen.rng.choice(WORDS)}.{gen.rng.choice(WORDS)}{i + 1}@example.test\t"
                  f"{password_hash}\t{gen.timestamp()}\n")
    copy_rows(cursor, "users", "id, email, password_hash, created_at", buf)
    log(f"users {n_users}, tags {n_tags}")

    journals = links = 0
    jbuf, tbuf = io.StringIO(), io.StringIO()
    rng, words = gen.rng, WORDS
    max_links = min(3, n_tags)

    def flush():
        copy_rows(cursor, "journals", "id, user_id, title, content, created_at", jbuf)
        copy_rows(cursor, "journal_tags", "journal_id, tag_id", tbuf)
        jbuf.seek(0), jbuf.truncate(), tbuf.seek(0), tbuf.truncate()

    for user_id in user_ids:
        for j in range(per_user):
            journal_id = gen.new_id()
            # The running number keeps titles unique within a user.
            title = f"{rng.choice(words).capitalize()} {rng.choice(words)} {j + 1}"
            content = " ".join(rng.choices(words, k=rng.randint(8, 30)))
            jbuf.write(f"{journal_id}\t{user_id}\t{title}\t{content}\t{gen.timestamp()}\n")
            for tag_id in rng.sample(tag_ids, rng.randint(0, max_links)):
                tbuf.write(f"{journal_id}\t{tag_id}\n")
                links += 1
            journals += 1
            if journals % BATCH_ROWS == 0:
                flush()
                log(f"journals {journals}")
    flush()
    return {"id_type": kind, "users": n_users, "tags": n_tags, "journals": journals, "journal_tags": links}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m vibes.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--journals-per-user", type=int, default=5)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if min(args.users, args.journals_per_user, args.tags) < 0:
        parser.error("counts must not be negative")
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        parser.error("DATABASE_URL is not set")
    engine = db.make_engine(normalise_database_url(url))
    result = generate(engine, args.users, args.journals_per_user, args.tags, args.seed,
                      log=lambda msg: print(f"[generate] {msg}", file=sys.stderr, flush=True))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
