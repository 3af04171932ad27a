#!/usr/bin/env bash
# Starts the Vibes app in the background and returns once GET /health answers 200.
# No-op (beyond the health wait) when it is already running. Settings come from the
# environment, passed through untouched: DATABASE_URL, PGPASSFILE, VIBES_*.
# A password given as VIBES_DB_PASSWORD (the deployment's local restart) is moved into a
# passfile under the run dir (mode 0600) for the app's lifetime; it never reaches the app's
# environment or arguments.
#   VIBES_RUN_DIR        pid file, log and maintenance flag (default: app/.run)
#   VIBES_HOST / VIBES_PORT   bind address (default 127.0.0.1:8000)
#   VIBES_START_TIMEOUT  seconds to wait for /health (default 30)
set -euo pipefail

app_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir=${VIBES_RUN_DIR:-$app_dir/.run}
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)
# The app reads its maintenance flag from here: it must be the same absolute folder.
export VIBES_RUN_DIR=$run_dir
pid_file=$run_dir/vibes.pid
port_file=$run_dir/vibes.port
log_file=$run_dir/vibes.log
host=${VIBES_HOST:-127.0.0.1}
port=${VIBES_PORT:-8000}
timeout=${VIBES_START_TIMEOUT:-30}

is_ours() { # pid: alive and running our app (not a recycled pid)
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'uvicorn vibes.main:app'
}

pid=$(cat "$pid_file" 2>/dev/null || true)
if is_ours "$pid"; then
  port=$(cat "$port_file" 2>/dev/null || echo "$port")
  echo "start: vibes already running (pid $pid, port $port)" >&2
else
  [ -z "${DATABASE_URL:-}" ] && { echo "start: DATABASE_URL is not set" >&2; exit 1; }
  rm -f "$pid_file"
  if [ -n "${VIBES_DB_PASSWORD:-}" ]; then
    # libpq passfile syntax escapes backslash and colon; printf is a builtin (no argv).
    escaped=$(printf '%s' "$VIBES_DB_PASSWORD" | sed -e 's/\\/\\\\/g' -e 's/:/\\:/g')
    (umask 077 && printf '*:*:*:*:%s\n' "$escaped" >"$run_dir/pgpass")
    export PGPASSFILE=$run_dir/pgpass
    unset VIBES_DB_PASSWORD escaped
  fi
  cd "$app_dir"
  echo "--- $(date -u +%FT%TZ) start on $host:$port" >>"$log_file"
  # setsid: the server must outlive the caller's session and terminal signals.
  setsid /usr/bin/python3 -m uvicorn vibes.main:app --host "$host" --port "$port" \
    >>"$log_file" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pid_file"
  echo "$port" >"$port_file"
  echo "start: vibes starting (pid $pid, port $port, log $log_file)" >&2
fi

url="http://$host:$port/health"
[ "$host" = "0.0.0.0" ] && url="http://127.0.0.1:$port/health"
deadline=$((SECONDS + timeout))
while :; do
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)
  [ "$code" = "200" ] && { echo "start: healthy at $url" >&2; exit 0; }
  if ! is_ours "$pid"; then
    echo "start: vibes exited before becoming healthy; last log lines:" >&2
    tail -n 30 "$log_file" >&2
    rm -f "$pid_file"
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "start: $url did not answer 200 within ${timeout}s (last status: ${code:-none}); last log lines:" >&2
    tail -n 30 "$log_file" >&2
    exit 1
  fi
  sleep 0.3
done
