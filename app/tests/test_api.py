"""The app over HTTP, started with scripts/start.sh, before and after the uuid migration."""

import uuid

import httpx
import pytest

import support
from support import APP_DIR, alembic
from testing.pgcluster import free_port

ADMIN_TOKEN = "test-admin-token"


class App:
    def __init__(self, db, run_dir, **extra_env):
        self.port = free_port()
        self.env = dict(db.env, VIBES_RUN_DIR=str(run_dir), VIBES_PORT=str(self.port),
                        VIBES_ADMIN_TOKEN=ADMIN_TOKEN, VIBES_START_TIMEOUT="20")
        self.env.update(extra_env)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def start(self, check=True):
        return support.run([str(APP_DIR / "scripts" / "start.sh")], self.env, check=check)

    def stop(self):
        return support.run([str(APP_DIR / "scripts" / "stop.sh")], self.env)

    def restart(self):
        self.stop()
        self.start()

    def signup(self, email, password="pw-123456"):
        created = self.http.post("/api/v1/users", json={"email": email, "password": password})
        assert created.status_code == 201, created.text
        token = self.http.post("/api/v1/auth/token", json={"email": email, "password": password})
        assert token.status_code == 200 and token.json()["token_type"] == "bearer"
        return created.json(), {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture
def app(fresh_db, tmp_path):
    a = App(fresh_db, tmp_path / "run")
    a.start()
    yield a
    a.stop()
    a.http.close()


def test_serves_integer_ids_then_uuids_after_migration(app, fresh_db):
    http = app.http
    generated_email = fresh_db.query("SELECT email FROM users ORDER BY email LIMIT 1")[0][0]
    status = http.get("/api/v1/status").json()
    assert status == {"version": "1.0.0", "schema_revision": "0000_initial", "id_type": "integer", "maintenance": False}
    old_user, old_auth = app.signup("before@example.test")
    assert isinstance(old_user["id"], int)
    assert http.get("/api/v1/users/not-a-number").status_code == 422
    assert http.post("/api/v1/users", json={"email": "before@example.test", "password": "x"}).status_code == 409

    alembic(fresh_db.env, "upgrade", "001_uuid_schema_migration")
    app.restart()  # as the deployment does

    status = http.get("/api/v1/status").json()
    assert (status["schema_revision"], status["id_type"]) == ("001_uuid_schema_migration", "uuid")
    assert http.get("/api/v1/health/uuid-validation").json()["all_ids_uuid"] is True
    assert http.get(f"/api/v1/users/{old_user['id']}").status_code == 422  # integer id no longer valid
    assert http.get("/api/v1/users/me", headers=old_auth).status_code == 401  # token carried an integer id
    assert http.get(f"/api/v1/users/{uuid.uuid4()}").status_code == 404

    # the user made before the migration kept its account (by email) and password
    token = http.post("/api/v1/auth/token", json={"email": "before@example.test", "password": "pw-123456"})
    assert token.status_code == 200

    user, auth = app.signup("after@example.test")
    assert uuid.UUID(user["id"])
    journal = http.post("/api/v1/journals", headers=auth,
                        json={"title": "First", "content": "hello", "tags": ["calm", "new-tag"]})
    assert journal.status_code == 201, journal.text
    body = journal.json()
    assert uuid.UUID(body["id"]) and body["user_id"] == user["id"] and body["tags"] == ["calm", "new-tag"]
    assert http.get("/api/v1/users/me", headers=auth).json()["id"] == user["id"]
    assert http.get(f"/api/v1/users/{user['id']}").json()["email"] == "after@example.test"
    assert http.get(f"/api/v1/journals/{body['id']}", headers=auth).json()["title"] == "First"

    # a generated user still sees exactly their journals
    gen_token = http.post("/api/v1/auth/token", json={"email": generated_email, "password": "vibes-sample-password"}).json()
    journals = http.get("/api/v1/journals", headers={"Authorization": f"Bearer {gen_token['access_token']}"}).json()
    assert len(journals) == support.SAMPLE["journals_per_user"]

    # deleting: only oneself, and the journals go too
    other, _ = app.signup("other@example.test")
    assert http.delete(f"/api/v1/users/{other['id']}", headers=auth).status_code == 403
    assert http.delete(f"/api/v1/users/{user['id']}", headers=auth).status_code == 200
    assert fresh_db.query("SELECT count(*) FROM journals WHERE id = %s", (body["id"],))[0][0] == 0
    assert http.get(f"/api/v1/users/{user['id']}").status_code == 404

    metrics = http.get("/api/v1/metrics").json()
    assert metrics["requests"] > 0 and set(metrics["row_counts"]) == set(support.TABLES)


def test_updates_a_journal_title_content_and_tags_owner_only(app):
    http = app.http
    _, auth = app.signup("writer@example.test")
    _, other = app.signup("reader@example.test")
    made = http.post("/api/v1/journals", headers=auth, json={"title": "Draft", "content": "a", "tags": ["calm", "old-tag"]}).json()
    changed = http.put(f"/api/v1/journals/{made['id']}", headers=auth, json={"title": "Final", "content": "b", "tags": ["calm", "fresh-tag"]})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["id"], body["title"], body["content"], body["tags"]) == (made["id"], "Final", "b", ["calm", "fresh-tag"])
    assert http.get(f"/api/v1/journals/{made['id']}", headers=auth).json()["tags"] == ["calm", "fresh-tag"]
    assert http.put(f"/api/v1/journals/{made['id']}", headers=other, json={"title": "x", "content": "y"}).status_code == 404
    assert http.put("/api/v1/journals/not-a-number", headers=auth, json={"title": "x", "content": "y"}).status_code == 422


def test_maintenance_blocks_writes_and_survives_restart(app):
    http, admin = app.http, {"X-Admin-Token": ADMIN_TOKEN}
    assert http.post("/admin/maintenance/enable").status_code == 401
    assert http.post("/admin/maintenance/enable", headers={"X-Admin-Token": "wrong"}).status_code == 401
    assert http.post("/admin/maintenance/enable", headers=admin).json() == {"maintenance": True, "changed": True}
    assert http.post("/admin/maintenance/enable", headers=admin).json() == {"maintenance": True, "changed": False}

    blocked = http.post("/api/v1/users", json={"email": "m@example.test", "password": "pw"})
    assert blocked.status_code == 503 and blocked.json()["maintenance"] is True
    assert http.get("/api/v1/status").json()["maintenance"] is True  # reads still work
    assert http.get("/health").status_code == 200
    # Deploy-time smoke checks write with the admin token while maintenance is on.
    bypass = http.post("/api/v1/users", json={"email": "smoke@example.test", "password": "pw"}, headers=admin)
    assert bypass.status_code == 201
    wrong = {"X-Admin-Token": "wrong"}
    assert http.post("/api/v1/users", json={"email": "w@example.test", "password": "pw"}, headers=wrong).status_code == 503

    app.restart()
    assert http.get("/api/v1/status").json()["maintenance"] is True
    assert http.post("/api/v1/users", json={"email": "m@example.test", "password": "pw"}).status_code == 503

    assert http.post("/admin/maintenance/disable", headers=admin).json() == {"maintenance": False, "changed": True}
    assert http.post("/admin/maintenance/disable", headers=admin).json() == {"maintenance": False, "changed": False}
    assert http.post("/api/v1/users", json={"email": "m@example.test", "password": "pw"}).status_code == 201


def test_start_is_idempotent_and_stop_is_a_no_op_when_stopped(app):
    again = app.start()
    assert "already running" in again.stderr
    assert app.stop().returncode == 0
    assert "not running" in app.stop().stderr
    with pytest.raises(httpx.TransportError):
        app.http.get("/health")


def test_unreachable_database_gives_503_and_start_fails_with_the_log_tail(fresh_db, tmp_path):
    # A URL with a password must still never reach the log.
    app = App(fresh_db, tmp_path / "run", VIBES_START_TIMEOUT="3")
    app.env["DATABASE_URL"] = f"postgresql://vibes:hunter2secret@127.0.0.1:{free_port()}/nowhere"
    try:
        started = app.start(check=False)
        assert started.returncode != 0 and "did not answer 200" in started.stderr
        health = app.http.get("/health")
        assert health.status_code == 503 and health.json()["database"] == "unreachable"
        assert app.http.get("/api/v1/health/database").status_code == 503
    finally:
        app.stop()
    log = (tmp_path / "run" / "vibes.log").read_text()
    assert "nowhere" in log and "hunter2secret" not in log


def test_start_moves_a_password_from_the_environment_into_a_private_passfile(fresh_db, cluster, tmp_path):
    # The deployment's local restart hands the password over as VIBES_DB_PASSWORD.
    app = App(fresh_db, tmp_path / "run", VIBES_DB_PASSWORD=cluster.password)
    app.env.pop("PGPASSFILE")
    app.start()
    try:
        assert app.http.get("/health").json()["database"] == "ok"
        passfile = tmp_path / "run" / "pgpass"
        assert passfile.stat().st_mode & 0o777 == 0o600
        pid = (tmp_path / "run" / "vibes.pid").read_text().strip()
        environ = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        assert cluster.password not in environ and cluster.password not in cmdline
        assert cluster.password not in (tmp_path / "run" / "vibes.log").read_text()
    finally:
        app.stop()
        app.http.close()
    assert not (tmp_path / "run" / "pgpass").exists()
