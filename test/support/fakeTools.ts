/**
 * Stand-ins for pg_dump and pg_restore, placed via VIBES_PG_DUMP / VIBES_PG_RESTORE, that simulate
 * failures or record how they were called. Each returns the script's path.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeTempDirSync } from "../../hooks/lib/processes/tempDirs";
import { PG_BIN } from "./pgCluster";

export const REAL_PG_DUMP = join(PG_BIN, "pg_dump");

function script(body: string, name = "pg_dump"): string {
  // Removed when the test process exits.
  const path = join(makeTempDirSync("vibes-fake-"), name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

/** An older major version: refuses the (PostgreSQL 15) server with pg_dump's own words. */
export function oldPgDump(major = 12): string {
  return script([
    `if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) ${major}.9"; exit 0; fi`,
    `echo "pg_dump: error: aborting because of server version mismatch" >&2`,
    `echo "pg_dump: detail: server version: 15.10 (Debian 15.10-1); pg_dump version: ${major}.9" >&2`,
    "exit 1",
  ].join("\n"));
}

/**
 * Records its arguments (= the real pg_dump's /proc/PID/cmdline), environment and the
 * PGPASSFILE's mode into `<log>.args`, `<log>.env`, `<log>.mode`, then runs the real pg_dump.
 */
export function spyPgDump(log: string): string {
  return script([
    `printf '%s\\n' "$0" "$@" > '${log}.args'`,
    `env > '${log}.env'`,
    `stat -c %a "$PGPASSFILE" > '${log}.mode' 2>&1`,
    `echo "$PGPASSFILE" > '${log}.passfile'`,
    `exec ${REAL_PG_DUMP} "$@"`,
  ].join("\n"));
}

/** Writes only the first `bytes` of a real dump, then exits with `code` (0: a silent truncation). */
export function truncatingPgDump(bytes: number, code: number): string {
  return script([
    `${REAL_PG_DUMP} "$@" | head -c ${bytes}`,
    code === 0 ? "exit 0" : `echo "pg_dump: error: simulated failure" >&2; exit ${code}`,
  ].join("\n"));
}

/** A pg_restore older than the archive it is given: fails as one would, after reading its header. */
export function oldPgRestore(): string {
  return script([
    "cat > /dev/null",
    `echo "pg_restore: error: unsupported version (1.16) in file header" >&2`,
    "exit 1",
  ].join("\n"), "pg_restore");
}
