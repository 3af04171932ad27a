// Indexes and constraints of the new columns without long locks, before the swap:
//   - a uuid twin of every index on a key column, CREATE INDEX CONCURRENTLY (an INVALID one that
//     a failed build left is dropped CONCURRENTLY and built again);
//   - an integer twin of every primary-key / unique index on key columns: after the swap it keeps
//     the integer key unique, so that the swap reversed can make it the key again at once;
//   - NOT NULL as CHECK (col IS NOT NULL) NOT VALID, then VALIDATE (the swap's SET NOT NULL then
//     needs no scan);
//   - the new foreign keys NOT VALID, then VALIDATE (a scan under SHARE UPDATE EXCLUSIVE, which
//     writers do not wait for).
// Idempotent: each object is looked up first; a re-run does only what is missing.
import type { Client } from "pg";
import { quoteIdent } from "../lib/database/tables";
import { concurrently, ddl, type LockRetryOptions } from "./ddl";
import { INT, UUID, indexSql, notNullCheck, readPhase, uuidName, type IndexPlan, type OnlinePlan, type TablePlan } from "./plan";
import { StepError } from "../lib/errors";

const q = quoteIdent;

export interface ConstraintOptions extends LockRetryOptions {
  log?: (msg: string) => void;
}

/** "valid", "invalid" or null (absent). */
async function indexState(client: Client, t: TablePlan, name: string): Promise<"valid" | "invalid" | null> {
  const r = (await client.query("SELECT x.indisvalid AS valid FROM pg_index x WHERE x.indexrelid = to_regclass($1)", [indexSql(t, name)])).rows[0];
  return r === undefined ? null : r.valid ? "valid" : "invalid";
}

async function buildIndex(client: Client, t: TablePlan, name: string, index: IndexPlan, columns: string[], opts: ConstraintOptions): Promise<boolean> {
  const log = opts.log ?? (() => undefined);
  if ((await indexState(client, t, name)) === "valid") return false;
  const sql = `CREATE ${index.unique ? "UNIQUE " : ""}INDEX CONCURRENTLY ${q(name)} ON ${t.sql} USING ${index.method} (${columns.map(q).join(", ")})`;
  const started = Date.now();
  await concurrently(client, `index ${name} on ${t.table}`, sql, { ...opts, log }, async () => {
    if ((await indexState(client, t, name)) === "invalid") {
      log(`index ${name}: an INVALID one is left from a failed build, dropping it`);
      await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${indexSql(t, name)}`);
    }
  });
  log(`index ${name} on ${t.table}: built concurrently in ${Date.now() - started} ms`);
  return true;
}

/** Builds and validates what is missing; returns the names of what it made. */
export async function buildConstraints(client: Client, plan: OnlinePlan, opts: ConstraintOptions = {}): Promise<{ made: string[] }> {
  const log = opts.log ?? (() => undefined);
  const phase = await readPhase(client, plan);
  if (phase !== "expanded") throw new StepError(`indexes and constraints: the change is ${phase}, not expanded`, phase === "initial" ? "run expand and the backfill first" : "nothing to build after the swap");
  const made: string[] = [];
  for (const t of plan.tables) {
    const keys = new Set(t.keyColumns);
    for (const index of t.indexes) {
      if (await buildIndex(client, t, index.name + UUID, index, index.columns.map((c) => (keys.has(c) ? uuidName(c) : c)), opts)) made.push(index.name + UUID);
      if (index.constraint && await buildIndex(client, t, index.name + INT, index, index.columns, opts)) made.push(index.name + INT);
    }
  }
  for (const t of plan.tables) {
    for (const column of t.notNull) {
      const name = notNullCheck(column);
      if (await addNotValid(client, t, name, `CHECK (${q(uuidName(column))} IS NOT NULL)`, opts)) made.push(name);
    }
    for (const fk of t.foreignKeys) {
      const parent = plan.tables.find((p) => p.table === fk.parent)!;
      const name = fk.constraint + UUID;
      const definition = `FOREIGN KEY (${q(uuidName(fk.column))}) REFERENCES ${parent.sql} (${q(uuidName(fk.parentColumn))}) ${fk.actions}`;
      // The parent locked first, as the app writes (a parent, then its children): ADD FOREIGN KEY
      // takes the child then the parent, and deadlocked with the app's writes in the bench.
      if (await addNotValid(client, t, name, definition, opts, [`LOCK TABLE ${parent.sql} IN SHARE ROW EXCLUSIVE MODE`])) made.push(name);
    }
  }
  log(`indexes and constraints: done (${made.length} made)`);
  return { made };
}

/** ADD CONSTRAINT ... NOT VALID when missing (a short lock), then VALIDATE when not validated. */
async function addNotValid(client: Client, t: TablePlan, name: string, definition: string, opts: ConstraintOptions, lockFirst: string[] = []): Promise<boolean> {
  const log = opts.log ?? (() => undefined);
  const state = async () => (await client.query("SELECT convalidated AS v FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2", [t.sql, name])).rows[0]?.v as boolean | undefined;
  let now = await state();
  const added = now === undefined;
  if (added) {
    await ddl(client, `constraint ${name} on ${t.table}`, [...lockFirst, `ALTER TABLE ${t.sql} ADD CONSTRAINT ${q(name)} ${definition} NOT VALID`], { ...opts, log });
    now = false;
  }
  if (!now) {
    const started = Date.now();
    await ddl(client, `validate ${name} on ${t.table}`, [`ALTER TABLE ${t.sql} VALIDATE CONSTRAINT ${q(name)}`], { ...opts, log });
    log(`constraint ${name} on ${t.table}: validated in ${Date.now() - started} ms`);
  }
  return added;
}

/** What the swap needs, missing or not ready (an empty list: ready). */
export async function notReady(client: Client, plan: OnlinePlan): Promise<string[]> {
  const out: string[] = [];
  for (const t of plan.tables) {
    for (const index of t.indexes) {
      for (const name of [index.name + UUID, ...(index.constraint ? [index.name + INT] : [])]) {
        const state = await indexState(client, t, name);
        if (state !== "valid") out.push(`${t.table}: index ${name} ${state === null ? "is missing" : "is INVALID"}`);
      }
    }
    const names = [...t.notNull.map(notNullCheck), ...t.foreignKeys.map((f) => f.constraint + UUID)];
    const res = await client.query("SELECT n, (SELECT convalidated FROM pg_constraint WHERE conrelid = $1::regclass AND conname = n) AS v FROM unnest($2::text[]) n", [t.sql, names]);
    for (const r of res.rows) if (r.v !== true) out.push(`${t.table}: constraint ${r.n} ${r.v === null ? "is missing" : "is not validated"}`);
  }
  return out;
}
