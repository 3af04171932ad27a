// The online id change's plan, read from the catalog: for each covered table its integer id, the
// foreign-key columns into a covered id, the indexes and constraints on those columns, and the
// names of everything the online path adds. The same plan is read in every phase (before expand,
// after it, after the swap): the names of the original objects hold throughout, so a re-run after
// a kill plans exactly what the first run planned.
//
// Naming (one convention, relied on by every phase):
//   <col>__uuid               the new uuid column before the swap
//   <col>__int                the old integer column after the swap (until contract)
//   <index>__uuid             the uuid twin of an index on key columns (built concurrently)
//   <index>__int              the integer twin of a primary-key / unique index: after the swap it
//                             keeps the integer key unique, so that the swap reversed is instant
//   <fk>__uuid                the new foreign key before the swap (takes <fk> at the swap)
//   <col>__uuid_not_null      CHECK (<col>__uuid IS NOT NULL): NOT NULL without a scan at the swap
//   <schema>.<table>__uuid_sync()  the trigger function (and trigger name) keeping both in step
import type { Client } from "pg";
import { readDataModel } from "../lib/database/dataModel";
import { StepError } from "../lib/errors";
import { quoteIdent, quoteTable, tableOids, uncoveredReferencingTables, uncoveredProblem } from "../lib/database/tables";

export const UUID = "__uuid";
export const INT = "__int";
const NAMEDATALEN = 63;

export const uuidName = (column: string) => column + UUID;
export const intName = (column: string) => column + INT;
export const notNullCheck = (column: string) => `${column}${UUID}_not_null`;

export interface ForeignKeyPlan {
  constraint: string;
  column: string;
  /** The parent: a covered table, by its configured name. */
  parent: string;
  parentColumn: string;
  /** ON UPDATE / ON DELETE / MATCH / DEFERRABLE as the original key has them. */
  actions: string;
}

export interface IndexPlan {
  /** Unqualified (an index lives in its table's schema). */
  name: string;
  columns: string[];
  unique: boolean;
  method: string;
  /** The constraint the index backs (same name), else null. */
  constraint: "p" | "u" | null;
}

export interface TablePlan {
  table: string;
  /** The table as SQL: "schema"."table". */
  sql: string;
  schema: string;
  /** The single-column integer primary key; null for a table whose keys are foreign keys only. */
  id: string | null;
  foreignKeys: ForeignKeyPlan[];
  /** id (when any) then the foreign-key columns: what changes type. */
  keyColumns: string[];
  /** Key columns that are NOT NULL now (the id always): their uuid columns become NOT NULL. */
  notNull: string[];
  /** Indexes (and the constraints they back) with a key column among their columns. */
  indexes: IndexPlan[];
  /** The integer column new rows are batched by: the id, else the primary key's first column. */
  batchColumn: string;
  /** Quoted, schema-qualified. */
  functionSql: string;
  trigger: string;
}

export interface OnlinePlan {
  /** Only the tables with key columns, parents before children. */
  tables: TablePlan[];
  /** The new ids' default after the swap (an expression), or null where the app makes them;
   * before the swap the triggers use it too, gen_random_uuid() when null. */
  idDefault: string | null;
}

export interface PlanOptions {
  idDefault?: string | null;
}

export type Phase = "initial" | "expanded" | "swapped" | "contracted";

const INTEGER_TYPES = new Set(["smallint", "integer", "bigint"]);

/** Refuses with a message that names the table and what to do. */
function refuse(table: string, why: string, next: string): never {
  throw new StepError(`online id change: ${table}: ${why}`, next);
}

export function indexSql(plan: TablePlan, name: string): string {
  return `${quoteIdent(plan.schema)}.${quoteIdent(name)}`;
}

/** The plan for `tables` (configured names); refuses what the online path cannot do, naming the table. */
export async function readPlan(client: Client, tables: string[], opts: PlanOptions = {}): Promise<OnlinePlan> {
  const oids = await tableOids(client, tables);
  const uncovered = uncoveredProblem(await uncoveredReferencingTables(client, [...oids.values()]));
  if (uncovered) throw new StepError(`online id change: ${uncovered.problem}`, uncovered.fix);
  const model = await readDataModel(client, oids);
  const byOid = new Map([...oids].map(([n, o]) => [o, n]));

  const cols = await client.query(
    `SELECT a.attrelid::oid AS rel, a.attname AS name, format_type(a.atttypid, NULL) AS type, a.attnotnull AS not_null,
            a.attidentity <> '' OR ad.adbin IS NOT NULL AS has_default, n.nspname AS schema, c.relname AS relname
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
      WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped`, [[...oids.values()]]);
  const column = new Map<string, { type: string; notNull: boolean; hasDefault: boolean }>();
  const where = new Map<string, { schema: string; relname: string }>();
  for (const r of cols.rows) {
    const t = byOid.get(Number(r.rel))!;
    column.set(`${t}\u0000${r.name}`, { type: r.type, notNull: r.not_null, hasDefault: r.has_default });
    where.set(t, { schema: r.schema, relname: r.relname });
  }
  const col = (t: string, c: string) => column.get(`${t}\u0000${c}`);
  /** The integer side of a column in any phase: `c` itself before the swap, `c__int` after it. */
  const intSide = (t: string, c: string) => col(t, intName(c)) ?? col(t, c);

  const fkRows = await client.query(
    `SELECT con.conrelid::oid AS rel, con.conname AS name, con.confupdtype AS upd, con.confdeltype AS del, con.confmatchtype AS match,
            con.condeferrable AS deferrable, con.condeferred AS deferred, con.confdelsetcols IS NOT NULL AND cardinality(con.confdelsetcols) > 0 AS setcols
       FROM pg_constraint con WHERE con.contype = 'f' AND con.conrelid = ANY($1::oid[])`, [[...oids.values()]]);
  const fkInfo = new Map(fkRows.rows.map((r) => [`${byOid.get(Number(r.rel))}\u0000${r.name}`, r]));

  const idxRows = await client.query(
    `SELECT x.indrelid::oid AS rel, i.relname AS name, x.indisunique AS unique, am.amname AS method, x.indisvalid AS valid,
            x.indexprs IS NOT NULL AS exprs, x.indpred IS NOT NULL AS partial, x.indnkeyatts <> x.indnatts AS includes,
            x.indnullsnotdistinct AS nulls_not_distinct,
            -- Every column the index reads, also inside its expressions and predicate.
            ARRAY(SELECT a.attname FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                   WHERE d.classid = 'pg_class'::regclass AND d.objid = x.indexrelid AND d.refclassid = 'pg_class'::regclass
                     AND d.refobjid = x.indrelid AND d.refobjsubid > 0)::text[] AS used,
            EXISTS (SELECT 1 FROM unnest(x.indoption::int2[]) o WHERE o <> 0) AS options,
            EXISTS (SELECT 1 FROM unnest(x.indclass::oid[]) WITH ORDINALITY k(cls, n)
                     JOIN pg_opclass oc ON oc.oid = k.cls WHERE NOT oc.opcdefault) AS custom_opclass,
            ARRAY(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, o)
                  JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n ORDER BY k.o)::text[] AS columns,
            (SELECT c.contype FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')) AS contype,
            (SELECT c.condeferrable FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')) AS deferrable
       FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam
      WHERE x.indrelid = ANY($1::oid[])`, [[...oids.values()]]);

  // Other objects that name a key column by its position would follow the wrong column through
  // the renames: refused rather than silently re-pointed.
  const dependents = await client.query(
    `SELECT d.refobjid::oid AS rel, a.attname AS column, CASE WHEN d.classid = 'pg_rewrite'::regclass THEN 'view ' || r.ev_class::regclass::text
              ELSE 'check constraint ' || c.conname END AS what
       FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
       LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
       LEFT JOIN pg_constraint c ON d.classid = 'pg_constraint'::regclass AND c.oid = d.objid
      WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY($1::oid[]) AND d.refobjsubid > 0
        AND ((r.oid IS NOT NULL AND r.ev_class <> d.refobjid) OR (c.contype = 'c' AND c.conname NOT LIKE '%${UUID}_not_null'))`, [[...oids.values()]]);

  const plans = new Map<string, TablePlan>();
  for (const table of tables) {
    const m = model[table];
    const keyColumns = m.keyColumns.filter((c) => !c.endsWith(UUID) && !c.endsWith(INT));
    if (keyColumns.length === 0) continue;
    const { schema, relname } = where.get(table)!;
    const id = m.idColumn;
    if (id !== null) {
      const side = intSide(table, id)!;
      // After contract the ids are uuids with no integer beside them: planned, for readPhase to say so.
      const contracted = side.type === "uuid" && !col(table, uuidName(id));
      if (!contracted && !INTEGER_TYPES.has(side.type)) refuse(table, `its id ${id} is ${side.type}, not an integer`, "the online path changes integer ids; this table needs no change or another path");
      if (!contracted && !side.hasDefault) {
        refuse(table, `its id ${id} has no default (sequence or identity): after the swap nothing would number the integer ids the rollback needs`,
          "give the id a sequence default, or use the offline strategy");
      }
    }
    const foreignKeys: ForeignKeyPlan[] = [];
    for (const edge of m.parents) {
      if (edge.columns.length !== 1) {
        refuse(table, `foreign key ${edge.constraint} (${edge.columns.join(", ")}) is composite and reaches a key column`,
          "the online path converts single-column foreign keys into an id; use the offline strategy for this schema");
      }
      const parentId = model[edge.table].idColumn;
      if (edge.refColumns[0] !== parentId) {
        refuse(table, `foreign key ${edge.constraint} references ${edge.table}(${edge.refColumns[0]}), a key column but not its id`,
          "the online path converts foreign keys into a parent's id only; use the offline strategy for this schema");
      }
      if (foreignKeys.some((f) => f.column === edge.columns[0])) {
        refuse(table, `column ${edge.columns[0]} is in two foreign keys`, "keep one foreign key per column, or use the offline strategy");
      }
      const info = fkInfo.get(`${table}\u0000${edge.constraint}`)!;
      if (info.setcols) refuse(table, `foreign key ${edge.constraint} uses ON DELETE SET NULL (columns)`, "use the offline strategy for this schema");
      foreignKeys.push({ constraint: edge.constraint, column: edge.columns[0], parent: edge.table, parentColumn: parentId!, actions: fkActions(info) });
    }
    const fkColumns = new Set(foreignKeys.map((f) => f.column));
    const unplanned = keyColumns.filter((c) => c !== id && !fkColumns.has(c));
    if (unplanned.length > 0) refuse(table, `key columns ${unplanned.join(", ")} follow an id through no single foreign key`, "use the offline strategy for this schema");
    const ordered = [...(id ? [id] : []), ...foreignKeys.map((f) => f.column)];

    const keys = new Set(ordered);
    const indexes: IndexPlan[] = [];
    for (const r of idxRows.rows.filter((r) => byOid.get(Number(r.rel)) === table)) {
      if (r.name.endsWith(UUID) || r.name.endsWith(INT)) continue; // ours
      const columns = r.columns as string[];
      if (![...columns, ...(r.used as string[])].some((c) => keys.has(c))) continue; // on other columns only: untouched
      const why = r.exprs ? "has expressions" : r.partial ? "is partial" : r.includes ? "has INCLUDE columns" : r.options ? "orders a column DESC or NULLS FIRST"
        : r.custom_opclass ? "uses a non-default operator class" : r.nulls_not_distinct ? "is NULLS NOT DISTINCT" : r.contype === "x" ? "backs an exclusion constraint"
          : r.deferrable ? "backs a deferrable constraint" : !r.valid ? "is INVALID" : null;
      if (why) refuse(table, `index ${r.name} on a key column ${why}`, "drop or simplify it for the change (rebuild an invalid one), or use the offline strategy");
      indexes.push({ name: r.name, columns, unique: r.unique, method: r.method, constraint: r.contype === "p" || r.contype === "u" ? r.contype : null });
    }
    const dependent = dependents.rows.filter((r) => byOid.get(Number(r.rel)) === table && keys.has(r.column));
    if (dependent.length > 0) {
      refuse(table, `${dependent.map((d) => `${d.what} depends on ${d.column}`).join(", ")}`, "drop it for the change and recreate it after the swap, or use the offline strategy");
    }
    const batchColumn = id ?? indexes.find((i) => i.constraint === "p")?.columns[0];
    if (!batchColumn || !keys.has(batchColumn)) {
      refuse(table, "has no integer key to batch the backfill by (neither an id nor a primary key starting with a key column)", "give it a primary key, or use the offline strategy");
    }
    const trigger = `${relname}${UUID}_sync`;
    const names = [...ordered.flatMap((c) => [uuidName(c), intName(c), notNullCheck(c)]), trigger,
      ...indexes.flatMap((i) => [i.name + UUID, i.name + INT]), ...foreignKeys.map((f) => f.constraint + UUID)];
    const long = names.find((n) => Buffer.byteLength(n) > NAMEDATALEN);
    if (long) refuse(table, `the name ${long} would be longer than PostgreSQL's ${NAMEDATALEN} bytes`, "rename the column, index or constraint to a shorter name first");
    plans.set(table, {
      table, sql: quoteTable(table), schema, id, foreignKeys, keyColumns: ordered,
      notNull: ordered.filter((c) => c === id || intSide(table, c)!.notNull), indexes, batchColumn,
      functionSql: `${quoteIdent(schema)}.${quoteIdent(trigger)}`, trigger,
    });
  }
  return { tables: parentsFirst(plans), idDefault: opts.idDefault === undefined ? "gen_random_uuid()" : opts.idDefault };
}

/** ON UPDATE / ON DELETE / MATCH / DEFERRABLE of a foreign key, as its definition writes them. */
function fkActions(r: { upd: string; del: string; match: string; deferrable: boolean; deferred: boolean }): string {
  const action: Record<string, string> = { a: "NO ACTION", r: "RESTRICT", c: "CASCADE", n: "SET NULL", d: "SET DEFAULT" };
  return [
    r.match === "f" ? "MATCH FULL" : "",
    r.upd !== "a" ? `ON UPDATE ${action[r.upd]}` : "",
    r.del !== "a" ? `ON DELETE ${action[r.del]}` : "",
    r.deferrable ? `DEFERRABLE${r.deferred ? " INITIALLY DEFERRED" : ""}` : "",
  ].filter(Boolean).join(" ");
}

/** Parents before children (a self-reference is no order); a cycle through other tables is refused. */
function parentsFirst(plans: Map<string, TablePlan>): TablePlan[] {
  const out: TablePlan[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (table: string, path: string[]) => {
    if (state.get(table) === "done") return;
    if (state.get(table) === "visiting") {
      refuse(table, `foreign keys form a cycle through other tables (${[...path, table].join(" -> ")})`, "the online path needs an order parents before children; use the offline strategy");
    }
    state.set(table, "visiting");
    for (const fk of plans.get(table)!.foreignKeys) if (fk.parent !== table && plans.has(fk.parent)) visit(fk.parent, [...path, table]);
    state.set(table, "done");
    out.push(plans.get(table)!);
  };
  for (const table of plans.keys()) visit(table, []);
  return out;
}

/** Where the change stands, from the catalog alone: the swap is one transaction, so either every
 * table has its `__int` columns or none has; expand may have stopped halfway (some `__uuid`). */
export async function readPhase(client: Client, plan: OnlinePlan): Promise<Phase> {
  if (plan.tables.length === 0) return "contracted";
  const res = await client.query(
    `SELECT t.name, t.col, format_type(a.atttypid, NULL) AS type
       FROM unnest($1::text[], $2::text[]) AS t(name, col)
       LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(t.name) AND a.attname = t.col AND NOT a.attisdropped`,
    [plan.tables.flatMap((t) => t.keyColumns.flatMap(() => [t.sql, t.sql, t.sql])), plan.tables.flatMap((t) => t.keyColumns.flatMap((c) => [c, uuidName(c), intName(c)]))]);
  const types = res.rows.map((r) => ({ col: r.col as string, type: r.type as string | null }));
  if (types.some((r) => r.col.endsWith(INT) && r.type !== null)) return "swapped";
  if (types.some((r) => r.col.endsWith(UUID) && r.type !== null)) return "expanded";
  const plain = types.filter((r) => !r.col.endsWith(INT) && !r.col.endsWith(UUID));
  return plain.every((r) => r.type === "uuid") ? "contracted" : "initial";
}

/** The uuid expression new rows get before the swap (the triggers) and after it (the default). */
export const newIdExpression = (plan: OnlinePlan) => plan.idDefault ?? "gen_random_uuid()";

/** The tables whose sync trigger is missing or disabled: without it a write would leave the new
 * columns stale, so nothing after expand may run. */
export async function tablesWithoutTrigger(client: Client, plan: OnlinePlan): Promise<string[]> {
  const res = await client.query(
    `SELECT t.name FROM unnest($1::text[], $2::text[]) AS t(name, trigger)
      WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = to_regclass(t.name) AND g.tgname = t.trigger AND g.tgenabled <> 'D')`,
    [plan.tables.map((t) => t.sql), plan.tables.map((t) => t.trigger)]);
  const missing = new Set(res.rows.map((r) => r.name as string));
  return plan.tables.filter((t) => missing.has(t.sql)).map((t) => t.table);
}

/** Refuses to go on from `phase` "expanded" while a table lacks its trigger (expand stopped halfway). */
export async function assertSynced(client: Client, plan: OnlinePlan, what: string): Promise<void> {
  const missing = await tablesWithoutTrigger(client, plan);
  if (missing.length > 0) throw new StepError(`${what}: ${missing.join(", ")} ${missing.length > 1 ? "have" : "has"} no sync trigger (expand stopped halfway)`, "run expand again first");
}
