// Expand: the uuid columns beside the integer ones (catalog-only: no default, so no rewrite),
// and per table one BEFORE INSERT OR UPDATE trigger that keeps them right on every write while
// the app writes only the integer columns. Idempotent: a re-run after a kill adds what is missing.
//
// Trigger semantics, before the swap (the integer columns are the truth):
//   - a row without its new id gets one (idDefault, else gen_random_uuid()): every insert, and an
//     update of a row the backfill has not reached;
//   - a foreign key's uuid is looked up from the parent's new id through the integer value, on
//     insert and whenever the integer value changes (NULL follows NULL; a row referencing itself
//     takes its own new id). A parent the backfill has not reached yet gets its new id first,
//     from here (UPDATE ... WHERE new id IS NULL: of two writers racing, the second finds it set);
//   - an update that leaves the integer key alone leaves its uuid alone: the backfill fills it.
// After the swap (swappedFunction) the roles turn: the uuid columns are the truth and the trigger
// keeps the integer foreign keys right (the integer id keeps its sequence default), so that the
// swap reversed loses no write.
import type { Client } from "pg";
import { quoteIdent } from "../lib/database/tables";
import { ddl, type LockRetryOptions } from "./ddl";
import { intName, newIdExpression, readPhase, uuidName, type ForeignKeyPlan, type OnlinePlan, type TablePlan } from "./plan";

const q = quoteIdent;

function tableOf(plan: OnlinePlan, table: string): TablePlan {
  return plan.tables.find((t) => t.table === table)!;
}

/**
 * The block that keeps one foreign key's other side right: on insert, and when the written side
 * changes, `target(column)` is the parent's `target(parentColumn)` looked up through the written
 * value (NULL follows NULL; a row referencing itself takes its own). `missing` runs when the
 * parent has none yet, with the value found in `variable`.
 */
function syncForeignKey(plan: OnlinePlan, t: TablePlan, fk: ForeignKeyPlan, target: (column: string) => string, variable: "vu" | "vi", missing = ""): string {
  const parent = tableOf(plan, fk.parent);
  const [col, newCol, pid, pnew] = [q(fk.column), q(target(fk.column)), q(fk.parentColumn), q(target(fk.parentColumn))];
  return `
  IF TG_OP = 'INSERT' THEN changed := true; ELSE changed := NEW.${col} IS DISTINCT FROM OLD.${col}; END IF;
  IF changed THEN
    IF NEW.${col} IS NULL THEN
      NEW.${newCol} := NULL;${fk.parent === t.table ? `
    ELSIF NEW.${col} = NEW.${q(t.id!)} THEN
      NEW.${newCol} := NEW.${q(target(t.id!))};` : ""}
    ELSE
      SELECT p.${pnew} INTO ${variable} FROM ${parent.sql} p WHERE p.${pid} = NEW.${col};${missing}
      NEW.${newCol} := ${variable};
    END IF;
  END IF;`;
}

/** The trigger function of the expand phase (integer columns written by the app). */
export function expandFunction(plan: OnlinePlan, t: TablePlan): string {
  const body: string[] = [];
  if (t.id) body.push(`IF NEW.${q(uuidName(t.id))} IS NULL THEN NEW.${q(uuidName(t.id))} := ${newIdExpression(plan)}; END IF;`);
  for (const fk of t.foreignKeys) {
    const parent = tableOf(plan, fk.parent);
    const [col, pid, pnew] = [q(fk.column), q(fk.parentColumn), q(uuidName(fk.parentColumn))];
    body.push(syncForeignKey(plan, t, fk, uuidName, "vu", `
      IF vu IS NULL THEN
        -- The parent is not backfilled yet: it gets its new id now.
        UPDATE ${parent.sql} p SET ${pnew} = ${newIdExpression(plan)} WHERE p.${pid} = NEW.${col} AND p.${pnew} IS NULL RETURNING p.${pnew} INTO vu;
        IF vu IS NULL THEN SELECT p.${pnew} INTO vu FROM ${parent.sql} p WHERE p.${pid} = NEW.${col}; END IF;
      END IF;`));
  }
  return functionSql(t, body);
}

/** The trigger function after the swap: the uuid columns written by the app, the integer foreign
 * keys kept right for a rollback (the swap reversed). */
export function swappedFunction(plan: OnlinePlan, t: TablePlan): string {
  return functionSql(t, t.foreignKeys.map((fk) => syncForeignKey(plan, t, fk, intName, "vi")));
}

function functionSql(t: TablePlan, body: string[]): string {
  // The function's own search_path: the app's session settings must not change what it reads.
  return `CREATE OR REPLACE FUNCTION ${t.functionSql}() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, public AS $vibes_online$
DECLARE
  vu uuid;
  vi bigint;
  changed boolean;
BEGIN
  ${body.join("\n  ")}
  RETURN NEW;
END
$vibes_online$`;
}

export const triggerSql = (t: TablePlan) =>
  `CREATE OR REPLACE TRIGGER ${q(t.trigger)} BEFORE INSERT OR UPDATE ON ${t.sql} FOR EACH ROW EXECUTE FUNCTION ${t.functionSql}()`;

export interface ExpandOptions extends LockRetryOptions {
  log?: (msg: string) => void;
}

/** Adds what expand adds that is not there yet; returns what it did. */
export async function expand(client: Client, plan: OnlinePlan, opts: ExpandOptions = {}): Promise<{ added: string[] }> {
  const log = opts.log ?? (() => undefined);
  const phase = await readPhase(client, plan);
  if (phase === "swapped" || phase === "contracted") {
    log(`expand: nothing to do, the change is ${phase}`);
    return { added: [] };
  }
  const added: string[] = [];
  // Every table's columns first: a child's trigger reads its parent's new id.
  for (const t of plan.tables) {
    const missing = await missingColumns(client, t);
    if (missing.length === 0) continue;
    await ddl(client, `expand: add ${missing.join(", ")} to ${t.table}`,
      [`ALTER TABLE ${t.sql} ${missing.map((c) => `ADD COLUMN IF NOT EXISTS ${q(c)} uuid`).join(", ")}`], { ...opts, log });
    added.push(...missing.map((c) => `${t.table}.${c}`));
    log(`expand: ${t.table}: added ${missing.join(", ")}`);
  }
  for (const t of plan.tables) {
    await client.query(expandFunction(plan, t));
    // CREATE OR REPLACE TRIGGER takes SHARE ROW EXCLUSIVE: it waits for writers in flight, so
    // every write after it goes through the trigger.
    await ddl(client, `expand: trigger on ${t.table}`, [triggerSql(t)], { ...opts, log });
    added.push(`${t.table}: trigger ${t.trigger}`);
  }
  log(`expand: done (${plan.tables.length} tables)`);
  return { added };
}

async function missingColumns(client: Client, t: TablePlan): Promise<string[]> {
  const res = await client.query(
    `SELECT c FROM unnest($2::text[]) c WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attname = c AND NOT a.attisdropped)`,
    [t.sql, t.keyColumns.map(uuidName)]);
  return res.rows.map((r) => r.c as string);
}
