"""Settings, read from the environment once per process."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger("vibes")

APP_DIR = Path(__file__).resolve().parent.parent

# Dev-only default so tokens stay valid across restarts; production sets VIBES_TOKEN_SECRET.
DEV_TOKEN_SECRET = "vibes-dev-token-secret-not-for-production"


@dataclass(frozen=True)
class Settings:
    database_url: str
    admin_token: str | None
    token_secret: bytes
    token_ttl_seconds: int
    run_dir: Path

    @property
    def safe_database_url(self) -> str:
        """The URL with any password masked, the only form that may be logged."""
        return make_url(self.database_url).render_as_string(hide_password=True)


def normalise_database_url(url: str) -> str:
    # Heroku-style "postgres://" is not a scheme SQLAlchemy 1.4 accepts.
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://"):]
    return url


def load_settings() -> Settings:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        raise RuntimeError("DATABASE_URL is not set (postgresql://user@host:port/db; password via PGPASSFILE)")
    secret = os.environ.get("VIBES_TOKEN_SECRET")
    if not secret:
        log.warning("VIBES_TOKEN_SECRET is not set: using the built-in development secret")
        secret = DEV_TOKEN_SECRET
    return Settings(
        database_url=normalise_database_url(url),
        admin_token=os.environ.get("VIBES_ADMIN_TOKEN") or None,
        token_secret=secret.encode(),
        token_ttl_seconds=int(os.environ.get("VIBES_TOKEN_TTL_SECONDS", "3600")),
        run_dir=Path(os.environ.get("VIBES_RUN_DIR") or APP_DIR / ".run").resolve(),
    )
