// The rollback of the online change, from wherever it stands (read from the catalog):
//   initial / expanded (before the swap): what expand and the constraints phase added is dropped;
//     the twin indexes first, CONCURRENTLY, then triggers, functions and new columns (their
//     constraints with them) in one short transaction. The integer columns were the truth all
//     along: no write is lost.
//   swapped: the swap reversed (reverseSwap), which drops the uuid columns in the same transaction.
//   contracted: refused: the integer ids are gone; going back is the backup.
import { performance } from "node:perf_hooks";
import type { Client } from "pg";
import { StepError } from "../lib/errors";
import { quoteIdent } from "../lib/database/tables";
import { concurrently, ddl, withLockRetries } from "./ddl";
import { INT, UUID, indexSql, readPhase, uuidName, type OnlinePlan } from "./plan";
import { reverseSwap, type SwapOptions } from "./swap";

const q = quoteIdent;

export interface RollbackResult {
  from: "initial" | "expanded" | "swapped";
  holdMs: number;
}

export async function rollback(client: Client, plan: OnlinePlan, opts: SwapOptions = {}): Promise<RollbackResult> {
  const log = opts.log ?? (() => undefined);
  const phase = await readPhase(client, plan);
  if (phase === "contracted") {
    throw new StepError("online rollback: the change is contracted, the integer ids are gone", "restore the backup taken before the change (vibes-hooks restore)");
  }
  if (phase === "swapped") {
    const r = await reverseSwap(client, plan, opts);
    return { from: "swapped", holdMs: r.holdMs };
  }
  // The new foreign keys first (each a short lock): they depend on their parents' uuid indexes.
  for (const t of [...plan.tables].reverse()) {
    for (const fk of t.foreignKeys) {
      await ddl(client, `drop ${fk.constraint}${UUID}`, [`ALTER TABLE ${t.sql} DROP CONSTRAINT IF EXISTS ${q(fk.constraint + UUID)}`], { ...opts, log });
    }
  }
  for (const t of plan.tables) {
    for (const i of t.indexes) {
      for (const name of [i.name + UUID, i.name + INT]) {
        await concurrently(client, `drop index ${name}`, `DROP INDEX CONCURRENTLY IF EXISTS ${indexSql(t, name)}`, { ...opts, log });
      }
    }
  }
  let grantedAt = 0;
  await withLockRetries(client, "online rollback", { lockTimeoutMs: 200, attempts: 10, ...opts, log }, async () => {
    await client.query(`LOCK TABLE ${plan.tables.map((t) => t.sql).join(", ")} IN ACCESS EXCLUSIVE MODE`);
    grantedAt = performance.now();
    // Children first: a child's new foreign key depends on its parent's new id.
    for (const t of [...plan.tables].reverse()) {
      await client.query(`DROP TRIGGER IF EXISTS ${q(t.trigger)} ON ${t.sql}`);
      await client.query(`DROP FUNCTION IF EXISTS ${t.functionSql}()`);
      await client.query(`ALTER TABLE ${t.sql} ${t.keyColumns.map((c) => `DROP COLUMN IF EXISTS ${q(uuidName(c))}`).join(", ")}`);
    }
  });
  const holdMs = performance.now() - grantedAt;
  log(`online rollback (${phase}): expand's columns, triggers and indexes dropped, ACCESS EXCLUSIVE held ${holdMs.toFixed(1)} ms`);
  return { from: phase, holdMs };
}
