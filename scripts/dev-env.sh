#!/usr/bin/env bash
# The dev stack's environment, self-contained: a throwaway PostgreSQL 15 cluster under .dev/pg,
# role "vibes" / database "vibes_dev" at revision 0000_initial with sample data, and the app.
#
#   scripts/dev-env.sh start        idempotent: init/start cluster, role, db, migrate, seed, app
#   scripts/dev-env.sh stop         stop the app, then the cluster
#   scripts/dev-env.sh status       what is running (exit 0 only when both are)
#   scripts/dev-env.sh env          shell exports: eval "$(scripts/dev-env.sh env)"
#   scripts/dev-env.sh restart-app  stop + start the app with the dev settings (dev restartCommand)
#
# Settings: VIBES_DEV_PG_PORT (55432), VIBES_PORT (8000), VIBES_PG_BIN (/usr/lib/postgresql/15/bin).
# Secrets live in .dev/secrets (mode 0600) and are never printed: db-password, admin-token, pgpass.
# As root the cluster runs as the postgres user (runuser); otherwise as the calling user.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dev=$root/.dev
pg_dir=$dev/pg
data=$pg_dir/data
sock=$pg_dir/sock
secrets=$dev/secrets
pw_file=$secrets/db-password
admin_file=$secrets/admin-token
pgpass=$secrets/pgpass
run_dir=$dev/app
pg_bin=${VIBES_PG_BIN:-/usr/lib/postgresql/15/bin}
python=/usr/bin/python3
db_name=vibes_dev
db_user=vibes

# The port chosen at init is kept in the cluster's config; remember it for env/status.
if [ -f "$pg_dir/port" ]; then pg_port=$(cat "$pg_dir/port"); else pg_port=${VIBES_DEV_PG_PORT:-55432}; fi
app_port=${VIBES_PORT:-8000}
database_url="postgresql://$db_user@127.0.0.1:$pg_port/$db_name"

say() { echo "dev-env: $*" >&2; }
die() { say "error: $*"; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
  superuser=postgres
  as_pg() { runuser -u postgres -- "$@"; }
else
  superuser=$(id -un)
  as_pg() { "$@"; }
fi

psql_su() { # SQL on stdin, as the cluster superuser over the private socket
  as_pg "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$sock" -p "$pg_port" "$@"
}

pg_running() { [ -f "$data/PG_VERSION" ] && as_pg "$pg_bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

new_secret() { # file: create with a random value unless it already has one
  [ -s "$1" ] || (umask 077 && "$python" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$1")
  chmod 600 "$1"
}

app_env() { # the settings the app needs; the password only through the PGPASSFILE
  export DATABASE_URL=$database_url PGPASSFILE=$pgpass VIBES_RUN_DIR=$run_dir VIBES_PORT=$app_port
  VIBES_ADMIN_TOKEN=$(tr -d '\n' <"$admin_file")
  export VIBES_ADMIN_TOKEN
}

init_cluster() {
  [ -x "$pg_bin/initdb" ] || die "PostgreSQL 15 binaries not found in $pg_bin (scripts/setup.sh installs them)"
  mkdir -p "$pg_dir" "$sock"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$pg_dir" "$sock"
    runuser -u postgres -- test -x "$pg_dir" || die "the postgres user cannot reach $pg_dir (check the parent folders' permissions)"
  fi
  chmod 700 "$sock"
  say "initialising a PostgreSQL cluster in $data (port $pg_port)"
  as_pg "$pg_bin/initdb" -D "$data" -U "$superuser" --auth-local=peer --auth-host=scram-sha-256 \
    -E UTF8 --no-instructions >"$pg_dir/initdb.log" 2>&1 || { tail -n 20 "$pg_dir/initdb.log" >&2; die "initdb failed"; }
  as_pg tee -a "$data/postgresql.conf" >/dev/null <<CONF
# dev-env.sh: loopback and a private socket only
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$sock'
CONF
  echo "$pg_port" >"$pg_dir/port"
}

ensure_role_and_db() {
  # Send the SCRAM verifier, not the password: nothing secret can reach the server log.
  local verifier
  verifier=$("$python" - "$pw_file" <<'PY'
import base64, hashlib, hmac, secrets, sys
password = open(sys.argv[1]).read().strip().encode()
salt, n = secrets.token_bytes(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", password, salt, n)
client = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
b64 = lambda b: base64.b64encode(b).decode()
print(f"SCRAM-SHA-256${n}:{b64(salt)}${b64(hashlib.sha256(client).digest())}:{b64(server)}")
PY
)
  if [ -z "$(echo "SELECT 1 FROM pg_roles WHERE rolname = '$db_user'" | psql_su -d postgres)" ]; then
    say "creating role $db_user"
    # CREATEDB, like an RDS master user: verify-restore restores each dump into a scratch database.
    echo "CREATE ROLE $db_user LOGIN CREATEDB PASSWORD '$verifier'" | psql_su -d postgres
  else
    echo "ALTER ROLE $db_user LOGIN CREATEDB PASSWORD '$verifier'" | psql_su -d postgres
  fi
  if [ -z "$(echo "SELECT 1 FROM pg_database WHERE datname = '$db_name'" | psql_su -d postgres)" ]; then
    say "creating database $db_name"
    echo "CREATE DATABASE $db_name OWNER $db_user" | psql_su -d postgres
  fi
  # Any database of this cluster, so scratch databases (restore checks) work too.
  "$python" - "$pw_file" "$pgpass" "$pg_port" "$db_user" <<'PY'
import os, sys
pw_file, pgpass, port, user = sys.argv[1:]
password = open(pw_file).read().strip()
fd = os.open(pgpass, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    f.write(f"127.0.0.1:{port}:*:{user}:{password}\n")
os.chmod(pgpass, 0o600)
PY
}

migrate_and_seed() {
  local has_schema users
  has_schema=$(echo "SELECT to_regclass('public.alembic_version') IS NOT NULL" | psql_su -d "$db_name")
  if [ "$has_schema" != "t" ]; then
    say "alembic upgrade 0000_initial"
    (cd "$root/app" && "$python" -m alembic upgrade 0000_initial)
  fi
  users=$(echo "SELECT CASE WHEN to_regclass('public.users') IS NULL THEN -1 ELSE (SELECT count(*) FROM users) END" \
    | psql_su -d "$db_name")
  if [ "$users" = "0" ]; then
    say "generating sample data"
    (cd "$root/app" && "$python" -m vibes.generate --users 50 --journals-per-user 10 --tags 20 --seed 1 >/dev/null)
  fi
}

cmd_start() {
  mkdir -p "$dev" "$run_dir"
  chmod 755 "$dev"
  (umask 077 && mkdir -p "$secrets")
  chmod 700 "$secrets"
  new_secret "$pw_file"
  new_secret "$admin_file"
  [ -f "$data/PG_VERSION" ] || init_cluster
  if ! pg_running; then
    say "starting PostgreSQL on 127.0.0.1:$pg_port"
    as_pg "$pg_bin/pg_ctl" -D "$data" -l "$pg_dir/server.log" -w -t 60 start >/dev/null \
      || { tail -n 20 "$pg_dir/server.log" >&2; die "PostgreSQL did not start"; }
  fi
  ensure_role_and_db
  app_env
  migrate_and_seed
  "$root/app/scripts/start.sh"
  say "ready: app http://127.0.0.1:$(cat "$run_dir/vibes.port"), database $database_url"
  say "use it from a shell with: eval \"\$(scripts/dev-env.sh env)\""
}

cmd_stop() {
  VIBES_RUN_DIR=$run_dir "$root/app/scripts/stop.sh"
  if pg_running; then
    as_pg "$pg_bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    say "PostgreSQL stopped"
  else
    say "PostgreSQL is not running"
  fi
}

cmd_restart_app() {
  pg_running || die "PostgreSQL is not running: scripts/dev-env.sh start"
  app_env
  "$root/app/scripts/stop.sh"
  "$root/app/scripts/start.sh"
}

cmd_status() {
  local ok=0 pid
  if pg_running; then
    echo "postgres: running on 127.0.0.1:$pg_port ($data)"
    echo "revision: $(echo "SELECT version_num FROM alembic_version" | psql_su -d "$db_name" 2>/dev/null || echo none)"
  else
    echo "postgres: stopped"; ok=1
  fi
  pid=$(cat "$run_dir/vibes.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "app: running (pid $pid) at http://127.0.0.1:$(cat "$run_dir/vibes.port")"
  else
    echo "app: stopped"; ok=1
  fi
  return $ok
}

cmd_env() {
  local port=$app_port q
  [ -f "$run_dir/vibes.port" ] && port=$(cat "$run_dir/vibes.port")
  q() { printf "%q" "$1"; }
  # Secrets appear as $(cat file), evaluated by the caller's shell: never as values here.
  cat <<ENV
export DATABASE_URL=$(q "$database_url")
export PGPASSFILE=$(q "$pgpass")
export VIBES_DB_PASSWORD="\$(cat $(q "$pw_file"))"
export VIBES_ADMIN_TOKEN="\$(cat $(q "$admin_file"))"
export VIBES_APP_URL=$(q "http://127.0.0.1:$port")
export VIBES_APP_DIR=$(q "$root/app")
export VIBES_RUN_DIR=$(q "$run_dir")
export VIBES_PORT=$(q "$port")
export VIBES_BACKUP_TARGET=local
export VIBES_BACKUP_DIR=$(q "$dev/backups")
ENV
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  restart-app) cmd_restart_app ;;
  *) echo "usage: $0 start|stop|status|env|restart-app" >&2; exit 2 ;;
esac
