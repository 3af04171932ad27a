// The migration lock: a session advisory lock that migrate holds for its whole run (alembic takes
// none of its own), and that a standalone restore takes too, so that neither runs while the
// other changes the database.
import type { Client } from "pg";
import { StepError, UsageError } from "../errors";

/** Session advisory lock key of `migrate` ("vibeshk"). Not the app's alembic env.py key
 * (0x76696265, taken per transaction by alembic itself), or alembic could never get its own. */
export const MIGRATE_LOCK_KEY = 0x76696265_73686bn;

/** The `--lock-wait-seconds` flag of `step` (default 60), in milliseconds. */
export function parseLockWait(step: string, seconds: string | undefined): number {
  const ms = Number(seconds ?? "60") * 1000;
  if (!Number.isFinite(ms) || ms < 0) throw new UsageError(`${step}: --lock-wait-seconds must be a number >= 0`, "pass --lock-wait-seconds 60");
  return ms;
}

/** Runs `fn` holding the migration lock on `client`'s session (waiting up to `waitMs` for it). */
export async function withMigrationLock<T>(client: Client, waitMs: number, log: (m: string) => void, fn: () => Promise<T>): Promise<T> {
  await acquireMigrationLock(client, waitMs, log);
  log("holding the migration lock");
  try {
    return await fn();
  } finally {
    await client.query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATE_LOCK_KEY.toString()]).catch(() => undefined);
  }
}

/** Takes the migration lock on `client`'s session, waiting up to `waitMs`; names the holder when it cannot. */
async function acquireMigrationLock(client: Client, waitMs: number, log: (m: string) => void): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (let announced = false; ; announced = true) {
    const got = await client.query("SELECT pg_try_advisory_lock($1::bigint) AS got", [MIGRATE_LOCK_KEY.toString()]);
    if (got.rows[0].got) return;
    if (!announced) log("another migrate (or restore) holds the migration lock; waiting");
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, Math.min(500, Math.max(0, deadline - Date.now()))));
  }
  // A bigint advisory key shows in pg_locks as classid (high half), objid (low half), objsubid 1.
  const holder = await client.query(
    `SELECT a.pid, a.usename, a.application_name, a.client_addr::text AS client_addr, a.backend_start
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [(MIGRATE_LOCK_KEY >> 32n).toString(), (MIGRATE_LOCK_KEY & 0xffffffffn).toString()]);
  const h = holder.rows[0];
  const who = h
    ? `backend pid ${h.pid} (application "${h.application_name}", user ${h.usename}${h.client_addr ? ` from ${h.client_addr}` : ""}, connected since ${new Date(h.backend_start).toISOString()})`
    : "a session that has just released it";
  throw new StepError(`the migration lock is held by ${who}; waited ${Math.round(waitMs / 1000)}s`,
    `another deployment is migrating this database, or a restore is running: let it finish and re-run (the second run is a no-op if it succeeded); if that deployer is dead, end its session with SELECT pg_terminate_backend(${h?.pid ?? "<pid>"})`);
}
