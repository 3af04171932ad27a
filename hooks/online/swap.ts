// The swap, the swap reversed (the rollback after it) and contract: each one transaction that
// takes every covered table's ACCESS EXCLUSIVE lock up front, parents before children (one order
// for every phase, so two of them never deadlock on each other), under a short lock_timeout
// with retries; when the locks cannot be had it stops, rolled back, the schema as it was serving.
// Inside, only catalog changes (renames, constraints on indexes built before, SET NOT NULL
// proven by a validated CHECK): the hold is milliseconds whatever the size.
import { performance } from "node:perf_hooks";
import type { Client } from "pg";
import { StepError } from "../lib/errors";
import { quoteIdent } from "../lib/database/tables";
import { ddl, withLockRetries, type LockRetryOptions } from "./ddl";
import { notReady } from "./constraints";
import { swappedFunction } from "./expand";
import { INT, UUID, assertSynced, indexSql, intName, notNullCheck, readPhase, uuidName, type OnlinePlan } from "./plan";

const q = quoteIdent;

export interface SwapOptions extends LockRetryOptions {
  log?: (msg: string) => void;
}

export interface SwapResult {
  /** Time inside the transaction from the locks granted to its commit: the longest ACCESS
   * EXCLUSIVE hold of the phase. */
  holdMs: number;
  attempts: number;
  statements: number;
}

/** LOCK TABLE locks in the order listed: parents first. */
const lockAll = (plan: OnlinePlan) => `LOCK TABLE ${plan.tables.map((t) => t.sql).join(", ")} IN ACCESS EXCLUSIVE MODE`;

/** Runs `statements` after the locks, in one transaction; measures the hold. */
async function locked(client: Client, plan: OnlinePlan, what: string, opts: SwapOptions, statements: (client: Client) => Promise<string[]>): Promise<SwapResult> {
  const log = opts.log ?? (() => undefined);
  let grantedAt = 0;
  let count = 0;
  const { attempts } = await withLockRetries(client, what, { lockTimeoutMs: 200, attempts: 10, ...opts, log }, async () => {
    await client.query(lockAll(plan));
    grantedAt = performance.now();
    const list = await statements(client);
    count = list.length;
    for (const sql of list) await client.query(sql);
  });
  const holdMs = performance.now() - grantedAt;
  log(`${what}: done in one transaction, ACCESS EXCLUSIVE held ${holdMs.toFixed(1)} ms (${count} statements, ${attempts} attempt${attempts > 1 ? "s" : ""})`);
  return { holdMs, attempts, statements: count };
}

/** Column comments of the integer columns, to carry to the uuid columns that take their names. */
async function commentsOf(client: Client, plan: OnlinePlan): Promise<string[]> {
  const out: string[] = [];
  for (const t of plan.tables) {
    const res = await client.query(
      `SELECT c, col_description($1::regclass, (SELECT attnum FROM pg_attribute WHERE attrelid = $1::regclass AND attname = c)) AS comment FROM unnest($2::text[]) c`,
      [t.sql, t.keyColumns]);
    for (const r of res.rows) if (r.comment !== null) out.push(`COMMENT ON COLUMN ${t.sql}.${q(r.c)} IS ${client.escapeLiteral(r.comment)}`);
  }
  return out;
}

/** The swap: the uuid columns take the names, keys, indexes and foreign keys of the integer ones. */
export async function swap(client: Client, plan: OnlinePlan, opts: SwapOptions = {}): Promise<SwapResult> {
  const phase = await readPhase(client, plan);
  if (phase !== "expanded") throw new StepError(`swap: the change is ${phase}, not expanded`, phase === "swapped" ? "nothing to do: the swap is done" : "run expand, the backfill and the constraints first");
  await assertSynced(client, plan, "swap");
  const missing = await notReady(client, plan);
  if (missing.length > 0) throw new StepError(`swap: not ready: ${missing.join("; ")}`, "run the indexes-and-constraints phase (buildConstraints) first");
  const comments = await commentsOf(client, plan);
  return locked(client, plan, "swap", opts, async () => {
    const s: string[] = [];
    for (const t of plan.tables) for (const fk of t.foreignKeys) s.push(`ALTER TABLE ${t.sql} DROP CONSTRAINT ${q(fk.constraint)}`);
    for (const t of plan.tables) for (const i of t.indexes) if (i.constraint) s.push(`ALTER TABLE ${t.sql} DROP CONSTRAINT ${q(i.name)}`);
    for (const t of plan.tables) {
      for (const c of t.keyColumns) {
        s.push(`ALTER TABLE ${t.sql} RENAME COLUMN ${q(c)} TO ${q(intName(c))}`, `ALTER TABLE ${t.sql} RENAME COLUMN ${q(uuidName(c))} TO ${q(c)}`);
      }
      // No scan: each column's validated CHECK proves it.
      if (t.notNull.length > 0) s.push(`ALTER TABLE ${t.sql} ${t.notNull.map((c) => `ALTER COLUMN ${q(c)} SET NOT NULL`).join(", ")}`);
      if (t.notNull.length > 0) s.push(`ALTER TABLE ${t.sql} ${t.notNull.map((c) => `DROP CONSTRAINT ${q(notNullCheck(c))}`).join(", ")}`);
      // The integer id keeps its sequence default (rows written after the swap get integer ids
      // for a rollback); the uuid id gets idDefault.
      if (t.id && plan.idDefault !== null) s.push(`ALTER TABLE ${t.sql} ALTER COLUMN ${q(t.id)} SET DEFAULT ${plan.idDefault}`);
      for (const i of t.indexes) {
        if (i.constraint) {
          s.push(`ALTER TABLE ${t.sql} ADD CONSTRAINT ${q(i.name)} ${i.constraint === "p" ? "PRIMARY KEY" : "UNIQUE"} USING INDEX ${q(i.name + UUID)}`);
        } else {
          s.push(`ALTER INDEX ${indexSql(t, i.name)} RENAME TO ${q(i.name + INT)}`, `ALTER INDEX ${indexSql(t, i.name + UUID)} RENAME TO ${q(i.name)}`);
        }
      }
    }
    for (const t of plan.tables) for (const fk of t.foreignKeys) s.push(`ALTER TABLE ${t.sql} RENAME CONSTRAINT ${q(fk.constraint + UUID)} TO ${q(fk.constraint)}`);
    // The triggers now keep the integer foreign keys right (replacing the function makes every
    // session compile it again).
    for (const t of plan.tables) s.push(swappedFunction(plan, t));
    s.push(...comments);
    return s;
  });
}

export interface ReverseResult extends SwapResult {
  /** Foreign keys re-added NOT VALID in the transaction, validated after it. */
  validated: string[];
}

/** The swap reversed, and what expand added dropped: the integer keys as before, every write
 * since kept (the triggers kept the integer columns right). */
export async function reverseSwap(client: Client, plan: OnlinePlan, opts: SwapOptions = {}): Promise<ReverseResult> {
  const log = opts.log ?? (() => undefined);
  const phase = await readPhase(client, plan);
  if (phase !== "swapped") throw new StepError(`swap reversed: the change is ${phase}, not swapped`, "use rollbackBeforeSwap before the swap");
  await assertSynced(client, plan, "swap reversed");
  const fkDefs = new Map<string, string>();
  const result = await locked(client, plan, "swap reversed", opts, async (c) => {
    // Read under the locks: the definitions as they are now name the columns the integer ones take back.
    for (const t of plan.tables) {
      for (const fk of t.foreignKeys) {
        const r = (await c.query("SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2", [t.sql, fk.constraint])).rows[0];
        if (!r) throw new StepError(`swap reversed: ${t.table} has no foreign key ${fk.constraint}`, "compare the schema with the plan: something else changed it since the swap");
        fkDefs.set(`${t.table}\u0000${fk.constraint}`, r.d.replace(/ NOT VALID$/, ""));
      }
    }
    const s: string[] = [];
    for (const t of [...plan.tables].reverse()) {
      s.push(`DROP TRIGGER IF EXISTS ${q(t.trigger)} ON ${t.sql}`, `DROP FUNCTION IF EXISTS ${t.functionSql}()`);
      for (const fk of t.foreignKeys) s.push(`ALTER TABLE ${t.sql} DROP CONSTRAINT ${q(fk.constraint)}`);
    }
    for (const t of plan.tables) for (const i of t.indexes) if (i.constraint) s.push(`ALTER TABLE ${t.sql} DROP CONSTRAINT ${q(i.name)}`);
    for (const t of plan.tables) {
      s.push(`ALTER TABLE ${t.sql} ${t.keyColumns.map((k) => `DROP COLUMN ${q(k)}`).join(", ")}`);
      for (const k of t.keyColumns) s.push(`ALTER TABLE ${t.sql} RENAME COLUMN ${q(intName(k))} TO ${q(k)}`);
      for (const i of t.indexes) {
        s.push(i.constraint ? `ALTER TABLE ${t.sql} ADD CONSTRAINT ${q(i.name)} ${i.constraint === "p" ? "PRIMARY KEY" : "UNIQUE"} USING INDEX ${q(i.name + INT)}`
          : `ALTER INDEX ${indexSql(t, i.name + INT)} RENAME TO ${q(i.name)}`);
      }
    }
    for (const t of plan.tables) for (const fk of t.foreignKeys) s.push(`ALTER TABLE ${t.sql} ADD CONSTRAINT ${q(fk.constraint)} ${fkDefs.get(`${t.table}\u0000${fk.constraint}`)} NOT VALID`);
    return s;
  });
  // The scans after the short transaction, under SHARE UPDATE EXCLUSIVE (writers go on).
  const validated: string[] = [];
  for (const t of plan.tables) {
    for (const fk of t.foreignKeys) {
      await ddl(client, `validate ${fk.constraint}`, [`ALTER TABLE ${t.sql} VALIDATE CONSTRAINT ${q(fk.constraint)}`], { ...opts, log });
      validated.push(fk.constraint);
    }
  }
  return { ...result, validated };
}

/** Contract: the integer columns (their indexes and owned sequences with them), the triggers and
 * their functions dropped, in one transaction: never the integer columns without their trigger. */
export async function contract(client: Client, plan: OnlinePlan, opts: SwapOptions = {}): Promise<SwapResult> {
  const phase = await readPhase(client, plan);
  if (phase !== "swapped") throw new StepError(`contract: the change is ${phase}, not swapped`, phase === "contracted" ? "nothing to do: contract is done" : "contract comes after the swap");
  return locked(client, plan, "contract", opts, async () => {
    const s: string[] = [];
    for (const t of [...plan.tables].reverse()) {
      s.push(`DROP TRIGGER IF EXISTS ${q(t.trigger)} ON ${t.sql}`, `DROP FUNCTION IF EXISTS ${t.functionSql}()`);
      s.push(`ALTER TABLE ${t.sql} ${t.keyColumns.map((k) => `DROP COLUMN IF EXISTS ${q(intName(k))}`).join(", ")}`);
    }
    return s;
  });
}
