// Backfill: the new columns of the rows written before expand, in batches by key range, parents
// before children. Per table two passes: the new ids over the whole table, then the foreign keys
// (a self-reference finds every parent's new id set by then). Each batch is one short statement
// that only fills NULLs, so the state is the database itself: a re-run after a kill (even -9)
// walks the ranges again, finds the done ones without writing, and continues.
//
// Throttled: a pause between batches; a batch that waits longer than lockTimeoutMs for a row
// lock is rolled back and retried after a growing pause; while other sessions wait on locks
// (pg_stat_activity), the pause doubles up to maxPauseMs, and shrinks back once they are gone.
import type { Client } from "pg";
import { StepError, errorMessage } from "../lib/errors";
import { quoteIdent } from "../lib/database/tables";
import { isLockFailure, sleep } from "./ddl";
import { assertSynced, newIdExpression, readPhase, uuidName, type OnlinePlan, type TablePlan } from "./plan";

const q = quoteIdent;

export interface BackfillOptions {
  /** Keys per batch (default 1000). */
  batchSize?: number;
  /** Pause between batches, ms (default 0). */
  pauseMs?: number;
  /** The longest pause when backing off, ms (default 5000). */
  maxPauseMs?: number;
  /** lock_timeout of each batch, ms (default 2000). */
  lockTimeoutMs?: number;
  /** Other sessions waiting on a lock beyond this many make the backfill back off (default 0). */
  maxLockWaiters?: number;
  /** Retries of one batch after lock timeouts before giving up (default 20). */
  lockRetries?: number;
  /** Progress lines at most this often, ms (default 1000); every table's end is logged. */
  progressEveryMs?: number;
  log?: (msg: string) => void;
  /** Checked between batches: true stops the backfill there (resumable). */
  stop?: () => boolean;
  /** Called after each committed batch (tests use it to interleave writes). */
  afterBatch?: (table: string, pass: "ids" | "foreign keys", batch: number) => Promise<void> | void;
}

export interface BackfillResult {
  completed: boolean;
  /** Rows written per table and pass. */
  rows: Record<string, { ids: number; foreignKeys: number }>;
  batches: number;
  lockRetries: number;
  elapsedMs: number;
}

/** Runs the backfill to the end (or until `stop`). Needs expand done. */
export async function backfill(client: Client, plan: OnlinePlan, opts: BackfillOptions = {}): Promise<BackfillResult> {
  const phase = await readPhase(client, plan);
  if (phase !== "expanded") throw new StepError(`backfill: the change is ${phase}, not expanded`, phase === "initial" ? "run expand first" : "nothing to backfill after the swap");
  await assertSynced(client, plan, "backfill");
  const started = Date.now();
  const result: BackfillResult = { completed: true, rows: {}, batches: 0, lockRetries: 0, elapsedMs: 0 };
  const throttle = new Throttle(client, opts);
  for (const t of plan.tables) {
    result.rows[t.table] = { ids: 0, foreignKeys: 0 };
    if (t.id) {
      const done = await pass(client, t, "ids", idBatch(plan, t), opts, throttle, result);
      if (!done) return stopped(result, started);
    }
    if (t.foreignKeys.length > 0) {
      const done = await pass(client, t, "foreign keys", fkBatch(plan, t), opts, throttle, result);
      if (!done) return stopped(result, started);
    }
  }
  result.elapsedMs = Date.now() - started;
  opts.log?.(`backfill: done, ${result.batches} batches in ${(result.elapsedMs / 1000).toFixed(1)} s, ${result.lockRetries} lock retries`);
  return result;
}

function stopped(result: BackfillResult, started: number): BackfillResult {
  return { ...result, completed: false, elapsedMs: Date.now() - started };
}

const range = (t: TablePlan, alias = "") => `${alias}${q(t.batchColumn)} >= $1 AND ${alias}${q(t.batchColumn)} < $2`;

function idBatch(plan: OnlinePlan, t: TablePlan): string {
  const id = q(uuidName(t.id!));
  return `UPDATE ${t.sql} SET ${id} = ${newIdExpression(plan)} WHERE ${range(t)} AND ${id} IS NULL`;
}

/** Each foreign key's uuid from its parent's new id through the integer value, where still NULL. */
function fkBatch(plan: OnlinePlan, t: TablePlan): string {
  const sets = t.foreignKeys.map((fk) => {
    const parent = plan.tables.find((p) => p.table === fk.parent)!;
    const nc = q(uuidName(fk.column));
    return `${nc} = CASE WHEN c.${nc} IS NULL THEN (SELECT p.${q(uuidName(fk.parentColumn))} FROM ${parent.sql} p WHERE p.${q(fk.parentColumn)} = c.${q(fk.column)}) ELSE c.${nc} END`;
  });
  const todo = t.foreignKeys.map((fk) => `(c.${q(uuidName(fk.column))} IS NULL AND c.${q(fk.column)} IS NOT NULL)`);
  return `UPDATE ${t.sql} c SET ${sets.join(", ")} WHERE ${range(t, "c.")} AND (${todo.join(" OR ")})`;
}

async function pass(client: Client, t: TablePlan, what: "ids" | "foreign keys", sql: string, opts: BackfillOptions, throttle: Throttle, result: BackfillResult): Promise<boolean> {
  const log = opts.log ?? (() => undefined);
  const bounds = (await client.query(
    `SELECT min(${q(t.batchColumn)})::text AS lo, max(${q(t.batchColumn)})::text AS hi,
            (SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::regclass) AS estimate FROM ${t.sql}`, [t.sql])).rows[0];
  if (bounds.lo === null) {
    log(`backfill ${t.table} ${what}: empty`);
    return true;
  }
  const [lo, hi] = [BigInt(bounds.lo), BigInt(bounds.hi)];
  const span = Number(hi - lo + 1n);
  const step = BigInt(opts.batchSize ?? 1000);
  const started = Date.now();
  let lastLog = 0;
  let written = 0;
  let batch = 0;
  for (let from = lo; from <= hi; from += step) {
    if (opts.stop?.()) {
      log(`backfill ${t.table} ${what}: stopped before keys from ${from} (a re-run continues)`);
      return false;
    }
    const n = await throttle.run(sql, [from.toString(), (from + step).toString()], `${t.table} ${what}`, result);
    written += n;
    batch++;
    result.batches++;
    if (what === "ids") result.rows[t.table].ids += n;
    else result.rows[t.table].foreignKeys += n;
    await opts.afterBatch?.(t.table, what, batch);
    const now = Date.now();
    const last = from + step > hi;
    if (last || now - lastLog >= (opts.progressEveryMs ?? 1000)) {
      lastLog = now;
      const fraction = Math.min(1, Number(from + step - lo) / span);
      const secs = (now - started) / 1000;
      const rate = secs > 0 ? Math.round(written / secs) : written;
      const eta = fraction > 0 && !last ? ` ETA ${(secs * (1 - fraction) / fraction).toFixed(1)} s` : "";
      log(`backfill ${t.table} ${what}: ${written} rows written, keys ${Math.round(fraction * 100)}% of ${span} (~${bounds.estimate} rows), ${rate} rows/s${eta}${throttle.pause > (opts.pauseMs ?? 0) ? `, pausing ${throttle.pause} ms (lock waits)` : ""}`);
    }
    await throttle.wait();
  }
  return true;
}

/** The pause between batches, and the batches' retries on lock timeouts. */
class Throttle {
  pause: number;

  constructor(private readonly client: Client, private readonly opts: BackfillOptions) {
    this.pause = opts.pauseMs ?? 0;
  }

  private get base() {
    return this.opts.pauseMs ?? 0;
  }

  private grow() {
    this.pause = Math.min(Math.max(this.pause * 2, 50), this.opts.maxPauseMs ?? 5000);
  }

  /** One batch in a transaction of its own under lock_timeout; retried after a lock timeout. */
  async run(sql: string, params: string[], what: string, result: BackfillResult): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.query("BEGIN");
        await this.client.query("SELECT set_config('lock_timeout', $1, true)", [`${this.opts.lockTimeoutMs ?? 2000}ms`]);
        const res = await this.client.query(sql, params);
        await this.client.query("COMMIT");
        return res.rowCount ?? 0;
      } catch (err) {
        await this.client.query("ROLLBACK").catch(() => undefined);
        if (!isLockFailure(err) || attempt > (this.opts.lockRetries ?? 20)) {
          throw new StepError(`backfill ${what}: batch from ${params[0]} failed: ${errorMessage(err)}`, "run the backfill again: it continues where it stopped", { cause: err });
        }
        result.lockRetries++;
        this.grow();
        this.opts.log?.(`backfill ${what}: batch from ${params[0]} waited too long for a lock, again in ${this.pause} ms`);
        await sleep(this.pause);
      }
    }
  }

  /** Between batches: back off while other sessions wait on locks, else return to the base pause. */
  async wait(): Promise<void> {
    const waiting = Number((await this.client.query(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`)).rows[0].n);
    if (waiting > (this.opts.maxLockWaiters ?? 0)) this.grow();
    else this.pause = Math.max(this.base, Math.floor(this.pause / 2));
    if (this.pause > 0) await sleep(this.pause);
  }
}
