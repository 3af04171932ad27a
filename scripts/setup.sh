#!/usr/bin/env bash
# Sets up a fresh machine for vibes-db-deploy: Debian packages for the sample app and the
# throwaway PostgreSQL, Node >= 22 (fetched from npm when the machine's Node is older), and
# the locked npm dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(postgresql-15 python3-alembic python3-fastapi python3-uvicorn
  python3-sqlalchemy python3-psycopg2 python3-httpx python3-pytest)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# shellcheck source=scripts/node22.sh
. scripts/node22.sh
echo "setup: node $(node --version), npm $(npm --version)" >&2
npm ci --no-audit --no-fund >&2
echo "setup: done. Put Node 22 on your PATH with: . scripts/node22.sh" >&2
