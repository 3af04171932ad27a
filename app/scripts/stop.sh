#!/usr/bin/env bash
# Stops the Vibes app started by start.sh and returns once the process is gone:
# TERM, then KILL after VIBES_STOP_TIMEOUT seconds (default 15). No-op when not running.
set -euo pipefail

app_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir=${VIBES_RUN_DIR:-$app_dir/.run}
pid_file=$run_dir/vibes.pid
timeout=${VIBES_STOP_TIMEOUT:-15}
# The passfile start.sh wrote from VIBES_DB_PASSWORD lives only as long as the app.
trap 'rm -f "$run_dir/pgpass"' EXIT

is_ours() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'uvicorn vibes.main:app'
}

pid=$(cat "$pid_file" 2>/dev/null || true)
if ! is_ours "$pid"; then
  echo "stop: vibes is not running" >&2
  rm -f "$pid_file"
  exit 0
fi

kill -TERM "$pid"
deadline=$((SECONDS + timeout))
while is_ours "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
if is_ours "$pid"; then
  echo "stop: pid $pid still running after ${timeout}s; sending KILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
fi
rm -f "$pid_file"
echo "stop: vibes stopped (pid $pid)" >&2
