// Statements of the online path that take a table lock: each under a short lock_timeout, retried
// with backoff, so that a lock request never queues long in front of the app's queries (a waiting
// ACCESS EXCLUSIVE request blocks every later reader of the table).
import type { Client } from "pg";
import { StepError, errorMessage } from "../lib/errors";

export interface LockRetryOptions {
  /** lock_timeout of each attempt, ms (default 1000). */
  lockTimeoutMs?: number;
  /** Attempts before giving up (default 10). */
  attempts?: number;
  /** First pause between attempts, ms, doubled each time up to maxBackoffMs (default 100). */
  backoffMs?: number;
  maxBackoffMs?: number;
  log?: (msg: string) => void;
}

export const LOCK_NOT_AVAILABLE = "55P03";
const DEADLOCK = "40P01";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const isLockFailure = (err: unknown) => [LOCK_NOT_AVAILABLE, DEADLOCK].includes((err as { code?: string }).code ?? "");

/** The pause before attempt `n` (1-based) after a failed one: exponential with jitter, so that
 * retries of several sessions do not line up. */
export function backoff(n: number, opts: LockRetryOptions): number {
  const base = Math.min((opts.backoffMs ?? 100) * 2 ** (n - 1), opts.maxBackoffMs ?? 5000);
  return Math.round(base * (0.5 + Math.random() / 2));
}

/**
 * Runs `attempt` in a transaction of its own with lock_timeout set for it, again after a lock
 * timeout or deadlock (rolled back, nothing half done), up to `attempts` times; then throws a
 * StepError naming `what`.
 */
export async function withLockRetries<T>(client: Client, what: string, opts: LockRetryOptions, attempt: () => Promise<T>): Promise<{ value: T; attempts: number }> {
  const attempts = opts.attempts ?? 10;
  for (let n = 1; ; n++) {
    await client.query("BEGIN");
    try {
      await client.query("SELECT set_config('lock_timeout', $1, true)", [`${opts.lockTimeoutMs ?? 1000}ms`]);
      const value = await attempt();
      await client.query("COMMIT");
      return { value, attempts: n };
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      if (!isLockFailure(err)) throw err;
      if (n >= attempts) {
        throw new StepError(`${what}: could not take its locks in ${attempts} attempts of ${opts.lockTimeoutMs ?? 1000} ms (${errorMessage(err)}); nothing of it was applied`,
          "find the long transaction holding the table (pg_stat_activity, pg_locks) and run this phase again: it continues where it stopped", { cause: err });
      }
      const pause = backoff(n, opts);
      opts.log?.(`${what}: lock not granted (attempt ${n}/${attempts}), again in ${pause} ms`);
      await sleep(pause);
    }
  }
}

/** One DDL statement (or several, in one transaction) under withLockRetries. */
export async function ddl(client: Client, what: string, statements: string[], opts: LockRetryOptions): Promise<void> {
  if (statements.length === 0) return;
  await withLockRetries(client, what, opts, async () => {
    for (const sql of statements) await client.query(sql);
  });
}

/**
 * A statement that cannot run in a transaction (CREATE/DROP INDEX CONCURRENTLY), under a session
 * lock_timeout, retried like the others. The caller makes it idempotent (an INVALID index left by
 * a failed attempt is found and dropped before the next).
 */
export async function concurrently(client: Client, what: string, sql: string, opts: LockRetryOptions, before?: () => Promise<void>): Promise<void> {
  const attempts = opts.attempts ?? 10;
  for (let n = 1; ; n++) {
    try {
      await before?.();
      await client.query("SELECT set_config('lock_timeout', $1, false)", [`${opts.lockTimeoutMs ?? 1000}ms`]);
      await client.query(sql);
      return;
    } catch (err) {
      if (!isLockFailure(err) || n >= attempts) {
        throw new StepError(`${what} failed: ${errorMessage(err)}`, "run this phase again: a left-over INVALID index is dropped and rebuilt", { cause: err });
      }
      const pause = backoff(n, opts);
      opts.log?.(`${what}: lock not granted (attempt ${n}/${attempts}), again in ${pause} ms`);
      await sleep(pause);
    } finally {
      await client.query("SELECT set_config('lock_timeout', '0', false)").catch(() => undefined);
    }
  }
}
