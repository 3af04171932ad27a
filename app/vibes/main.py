"""The Vibes HTTP API. Works against integer ids (revision 0000_initial) and uuid ids
(001_uuid_schema_migration): the id type is read from the catalog on each request."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import List, Optional

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, validator
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from vibes import __version__, db
from vibes.config import load_settings
from vibes.maintenance import MaintenanceFlag
from vibes.security import hash_password, issue_token, read_token, verify_password

log = logging.getLogger("vibes")
if not log.handlers:
    # uvicorn configures only its own loggers; give ours a handler without touching the root.
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)

settings = load_settings()
engine = db.make_engine(settings.database_url)
maintenance = MaintenanceFlag(settings.run_dir)
log.info("vibes %s: database %s, run dir %s", __version__, settings.safe_database_url, settings.run_dir)

app = FastAPI(title="Vibes", version=__version__)

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests = 0
        self.client_errors = 0
        self.server_errors = 0
        self.started = time.time()

    def record(self, status: int):
        with self._lock:
            self.requests += 1
            if 400 <= status < 500:
                self.client_errors += 1
            elif status >= 500:
                self.server_errors += 1


metrics = Metrics()


@app.middleware("http")
async def maintenance_and_metrics(request: Request, call_next):
    path = request.url.path
    # Deploy-time smoke checks run while maintenance is on: a valid admin token lets writes through.
    bypass = settings.admin_token is not None and admin_token_valid(request.headers.get("x-admin-token"))
    if request.method in WRITE_METHODS and not path.startswith("/admin") and not bypass and maintenance.enabled():
        response = JSONResponse(
            status_code=503,
            content={"detail": "maintenance mode: writes are disabled", "maintenance": True},
            headers={"Retry-After": "60"},
        )
    else:
        try:
            response = await call_next(request)
        except Exception:
            metrics.record(500)
            raise
    metrics.record(response.status_code)
    return response


@app.exception_handler(OperationalError)
async def database_unavailable(_request: Request, exc: OperationalError):
    # Connection or lock-timeout failures: report them as unavailability, not as a bug.
    log.warning("database error: %s", exc.orig.__class__.__name__ if exc.orig else exc)
    return JSONResponse(status_code=503, content={"detail": "database unavailable"})


def current_id_type(conn: Connection) -> str:
    kind = db.id_type(conn)
    if kind is None:
        raise HTTPException(503, "schema not initialised (run alembic upgrade)")
    return kind


def admin_token_valid(presented: Optional[str]) -> bool:
    return (
        settings.admin_token is not None
        and presented is not None
        and hmac.compare_digest(presented.encode(), settings.admin_token.encode())
    )


def require_admin(x_admin_token: Optional[str] = Header(default=None)):
    if settings.admin_token is None:
        return
    if not admin_token_valid(x_admin_token):
        raise HTTPException(401, "admin token required (X-Admin-Token)")


def bearer_subject(authorization: Optional[str] = Header(default=None)) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    subject = read_token(settings.token_secret, token.strip()) if scheme.lower() == "bearer" else None
    if subject is None:
        raise HTTPException(401, "valid bearer token required", headers={"WWW-Authenticate": "Bearer"})
    return subject


def current_user(conn: Connection, subject: str):
    # A token minted before the migration carries an integer id and no longer parses.
    user_id = db.parse_id(subject, current_id_type(conn))
    row = None
    if user_id is not None:
        row = conn.execute(
            text("SELECT id, email, created_at FROM users WHERE id = :id"), {"id": user_id}
        ).mappings().first()
    if row is None:
        raise HTTPException(401, "invalid or expired token", headers={"WWW-Authenticate": "Bearer"})
    return row


def user_json(row) -> dict:
    return {"id": db.json_id(row["id"]), "email": row["email"], "created_at": row["created_at"].isoformat()}


def path_id(raw: str, conn: Connection):
    kind = current_id_type(conn)
    value = db.parse_id(raw, kind)
    if value is None:
        raise HTTPException(422, f"id must be a valid {'UUID' if kind == 'uuid' else 'integer'}")
    return value


# --- health and status ---------------------------------------------------------------------------


@app.get("/health")
def health():
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse(status_code=503, content={"status": "error", "database": "unreachable"})
    return {"status": "ok", "database": "ok"}


@app.get("/api/v1/status")
def status():
    with engine.begin() as conn:
        return {
            "version": __version__,
            "schema_revision": db.schema_revision(conn),
            "id_type": db.id_type(conn),
            "maintenance": maintenance.enabled(),
        }


@app.get("/api/v1/health/database")
def health_database():
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            server_version = conn.execute(text("SHOW server_version")).scalar()
            revision = db.schema_revision(conn)
    except SQLAlchemyError:
        return JSONResponse(status_code=503, content={"status": "error", "database": "unreachable"})
    return {
        "status": "ok",
        "server_version": server_version,
        "schema_revision": revision,
        "latency_ms": round((time.monotonic() - started) * 1000, 2),
    }


@app.get("/api/v1/health/uuid-validation")
def health_uuid_validation():
    with engine.begin() as conn:
        columns = db.key_column_types(conn)
        kind = db.id_type(conn)
        revision = db.schema_revision(conn)
    expected = sum(len(c) for c in db.KEY_COLUMNS.values())
    found = [t for cols in columns.values() for t in cols.values()]
    # A uuid-typed column can only hold valid UUIDs, so the column types are the whole check.
    all_uuid = len(found) == expected and all(t == "uuid" for t in found)
    return {
        "id_type": kind,
        "all_ids_uuid": all_uuid,
        "columns": columns,
        "schema_revision": revision,
    }


@app.get("/api/v1/metrics")
def get_metrics():
    with engine.begin() as conn:
        counts = db.row_counts(conn)
    return {
        "requests": metrics.requests,
        "client_errors": metrics.client_errors,
        "errors": metrics.server_errors,
        "uptime_seconds": round(time.time() - metrics.started, 1),
        "row_counts": counts,
    }


# --- admin ---------------------------------------------------------------------------------------


@app.post("/admin/maintenance/enable", dependencies=[Depends(require_admin)])
def maintenance_enable():
    changed = maintenance.enable()
    if changed:
        log.info("maintenance mode enabled")
    return {"maintenance": True, "changed": changed}


@app.post("/admin/maintenance/disable", dependencies=[Depends(require_admin)])
def maintenance_disable():
    changed = maintenance.disable()
    if changed:
        log.info("maintenance mode disabled")
    return {"maintenance": False, "changed": changed}


@app.get("/admin/maintenance", dependencies=[Depends(require_admin)])
def maintenance_state():
    return {"maintenance": maintenance.enabled()}


# --- users and auth ------------------------------------------------------------------------------


class Credentials(BaseModel):
    email: str = Field(..., min_length=3, max_length=255)
    password: str = Field(..., min_length=1, max_length=1024)

    @validator("email")
    def email_shape(cls, value: str) -> str:
        value = value.strip()
        local, _, domain = value.partition("@")
        if not local or "." not in domain:
            raise ValueError("not an email address")
        return value


@app.post("/api/v1/users", status_code=201)
def create_user(body: Credentials):
    password_hash = hash_password(body.password)
    try:
        with engine.begin() as conn:
            current_id_type(conn)
            row = conn.execute(
                text(
                    "INSERT INTO users (email, password_hash) VALUES (:email, :hash)"
                    " RETURNING id, email, created_at"
                ),
                {"email": body.email, "hash": password_hash},
            ).mappings().one()
    except IntegrityError as exc:
        if getattr(exc.orig, "pgcode", None) == "23505":
            raise HTTPException(409, "email already registered") from None
        raise
    return user_json(row)


@app.post("/api/v1/auth/token")
def create_token(body: Credentials):
    with engine.begin() as conn:
        row = conn.execute(
            text("SELECT id, password_hash FROM users WHERE email = :email"), {"email": body.email}
        ).first()
    if row is None or not verify_password(body.password, row.password_hash):
        raise HTTPException(401, "wrong email or password")
    token = issue_token(settings.token_secret, str(row.id), settings.token_ttl_seconds)
    return {"access_token": token, "token_type": "bearer", "expires_in": settings.token_ttl_seconds}


@app.get("/api/v1/users/me")
def get_me(subject: str = Depends(bearer_subject)):
    with engine.begin() as conn:
        return user_json(current_user(conn, subject))


@app.get("/api/v1/users/{user_id}")
def get_user(user_id: str):
    with engine.begin() as conn:
        row = conn.execute(
            text("SELECT id, email, created_at FROM users WHERE id = :id"), {"id": path_id(user_id, conn)}
        ).mappings().first()
    if row is None:
        raise HTTPException(404, "user not found")
    return user_json(row)


@app.delete("/api/v1/users/{user_id}")
def delete_user(user_id: str, subject: str = Depends(bearer_subject)):
    with engine.begin() as conn:
        user = current_user(conn, subject)
        if path_id(user_id, conn) != user["id"]:
            raise HTTPException(403, "you can only delete your own user")
        # journals go by ON DELETE CASCADE, and their journal_tags with them
        conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": user["id"]})
    return {"deleted": True, "id": db.json_id(user["id"])}


# --- journals ------------------------------------------------------------------------------------


class JournalIn(BaseModel):
    title: str = Field(..., min_length=1, max_length=255)
    content: str = Field(..., max_length=100_000)
    tags: List[str] = Field(default_factory=list, max_items=50)

    @validator("tags", each_item=True)
    def tag_shape(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > 100:
            raise ValueError("tag names are 1-100 characters")
        return value


def journal_json(conn: Connection, row) -> dict:
    tags = conn.execute(
        text(
            "SELECT t.name FROM journal_tags jt JOIN tags t ON t.id = jt.tag_id"
            " WHERE jt.journal_id = :id ORDER BY t.name"
        ),
        {"id": row["id"]},
    ).scalars().all()
    return {
        "id": db.json_id(row["id"]),
        "user_id": db.json_id(row["user_id"]),
        "title": row["title"],
        "content": row["content"],
        "tags": tags,
        "created_at": row["created_at"].isoformat(),
    }


@app.post("/api/v1/journals", status_code=201)
def create_journal(body: JournalIn, subject: str = Depends(bearer_subject)):
    with engine.begin() as conn:
        return _insert_journal(conn, current_user(conn, subject), body)


def _insert_journal(conn: Connection, user, body: JournalIn) -> dict:
    row = conn.execute(
        text(
            "INSERT INTO journals (user_id, title, content) VALUES (:uid, :title, :content)"
            " RETURNING id, user_id, title, content, created_at"
        ),
        {"uid": user["id"], "title": body.title, "content": body.content},
    ).mappings().one()
    _link_tags(conn, row["id"], body.tags)
    return journal_json(conn, row)


def _link_tags(conn: Connection, journal_id, tags: List[str]) -> None:
    names = sorted(set(tags))
    if names:
        conn.execute(
            text("INSERT INTO tags (name) SELECT unnest(CAST(:names AS text[])) ON CONFLICT (name) DO NOTHING"),
            {"names": names},
        )
        conn.execute(
            text(
                "INSERT INTO journal_tags (journal_id, tag_id)"
                " SELECT :jid, id FROM tags WHERE name = ANY(:names)"
            ),
            {"jid": journal_id, "names": names},
        )


@app.get("/api/v1/journals")
def list_journals(limit: int = 50, subject: str = Depends(bearer_subject)):
    with engine.begin() as conn:
        user = current_user(conn, subject)
        rows = conn.execute(
        text(
            "SELECT id, user_id, title, content, created_at FROM journals WHERE user_id = :uid"
            " ORDER BY created_at DESC, title LIMIT :limit"
        ),
            {"uid": user["id"], "limit": max(1, min(limit, 500))},
        ).mappings().all()
        return [journal_json(conn, r) for r in rows]


@app.get("/api/v1/journals/{journal_id}")
def get_journal(journal_id: str, subject: str = Depends(bearer_subject)):
    with engine.begin() as conn:
        user = current_user(conn, subject)
        row = conn.execute(
            text("SELECT id, user_id, title, content, created_at FROM journals WHERE id = :id AND user_id = :uid"),
            {"id": path_id(journal_id, conn), "uid": user["id"]},
        ).mappings().first()
        if row is None:
            raise HTTPException(404, "journal not found")
        return journal_json(conn, row)


@app.put("/api/v1/journals/{journal_id}")
def update_journal(journal_id: str, body: JournalIn, subject: str = Depends(bearer_subject)):
    # Title, content and the whole tag set replaced: the journal as the body gives it.
    with engine.begin() as conn:
        user = current_user(conn, subject)
        row = conn.execute(
            text(
                "UPDATE journals SET title = :title, content = :content WHERE id = :id AND user_id = :uid"
                " RETURNING id, user_id, title, content, created_at"
            ),
            {"id": path_id(journal_id, conn), "uid": user["id"], "title": body.title, "content": body.content},
        ).mappings().first()
        if row is None:
            raise HTTPException(404, "journal not found")
        conn.execute(text("DELETE FROM journal_tags WHERE journal_id = :id"), {"id": row["id"]})
        _link_tags(conn, row["id"], body.tags)
        return journal_json(conn, row)
