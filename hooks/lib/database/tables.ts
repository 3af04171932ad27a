// The covered tables: how they are named (configured as `table` or `schema.table`), found in the
// catalog, and which other tables reach them through foreign keys.
import type { Client } from "pg";
import { DEFAULT_TABLES, TABLE_NAME } from "../../../common/tables";
import { StepError } from "../errors";


export function quoteIdent(id: string): string {
  return `"${id.replace(/"/g, '""')}"`;
}

/** `users` -> "users", `public.users` -> "public"."users": a configured name as SQL. */
export function quoteTable(name: string): string {
  return name.split(".").map(quoteIdent).join(".");
}

/** The tables the change covers, from VIBES_TABLES. */
export function tablesFromEnv(env: NodeJS.ProcessEnv): string[] {
  const raw = env.VIBES_TABLES?.trim();
  if (!raw) return [...DEFAULT_TABLES];
  const tables = raw.split(",").map((t) => t.trim()).filter(Boolean);
  if (tables.length === 0) throw new StepError("VIBES_TABLES lists no table", "set VIBES_TABLES to a comma list, e.g. users,journals");
  const bad = tables.filter((t) => !TABLE_NAME.test(t));
  if (bad.length > 0) {
    throw new StepError(`VIBES_TABLES: ${bad.join(", ")} ${bad.length > 1 ? "are not table names" : "is not a table name"}`,
      "list lowercase names, optionally schema-qualified: users,public.journals");
  }
  return tables;
}

/** oid per covered table (an unqualified name in the search path); fails naming the missing ones. */
export async function tableOids(client: Client, tables: string[]): Promise<Map<string, number>> {
  const res = await client.query(
    "SELECT t AS name, to_regclass(q)::oid AS oid FROM unnest($1::text[], $2::text[]) AS v(t, q)",
    [tables, tables.map(quoteTable)],
  );
  const missing = res.rows.filter((r) => r.oid === null).map((r) => r.name as string);
  if (missing.length > 0) {
    throw new StepError(`table${missing.length > 1 ? "s" : ""} not found: ${missing.join(", ")}`,
      "check DATABASE_URL points at the Vibes database and VIBES_TABLES lists its tables");
  }
  const oids = new Map(res.rows.map((r) => [r.name as string, Number(r.oid)]));
  const seen = new Map<number, string>();
  for (const [name, oid] of oids) {
    const twin = seen.get(oid);
    if (twin !== undefined) throw new StepError(`VIBES_TABLES names one table twice: ${twin} and ${name}`, "list each table once");
    seen.set(oid, name);
  }
  return oids;
}

export interface ReferencingTable {
  /** The uncovered table, schema-qualified where the search path does not find it. */
  table: string;
  constraint: string;
  /** The table it references (covered, or itself uncovered and referencing one). */
  references: string;
}

/**
 * Tables outside the covered set with a foreign key into it, directly or through other such
 * tables (comments -> journals, comment_likes -> comments). Their links are not part of any
 * fingerprint: a migration could lose them unnoticed, and a restore of the covered tables would
 * drop their constraints. Returned in name order.
 */
export async function uncoveredReferencingTables(client: Client, coveredOids: number[]): Promise<ReferencingTable[]> {
  const res = await client.query(
    `WITH RECURSIVE reach(oid) AS (
         SELECT unnest($1::oid[])
       UNION
         SELECT c.conrelid FROM pg_constraint c JOIN reach r ON c.confrelid = r.oid WHERE c.contype = 'f' AND c.conparentid = 0
     )
     SELECT c.conrelid::regclass::text AS "table", c.conname AS "constraint", c.confrelid::regclass::text AS "references"
       FROM pg_constraint c
      WHERE c.contype = 'f' AND c.conparentid = 0 AND c.confrelid IN (SELECT oid FROM reach) AND NOT c.conrelid = ANY($1::oid[])
      ORDER BY 1, 2`,
    [coveredOids],
  );
  return res.rows as ReferencingTable[];
}

/** The preflight/migrate refusal for uncovered referencing tables, naming each and the fix. */
export function uncoveredProblem(found: ReferencingTable[]): { problem: string; fix: string } | undefined {
  if (found.length === 0) return undefined;
  const tables = [...new Set(found.map((f) => f.table))];
  return {
    problem: `${tables.length > 1 ? "tables" : "a table"} outside the covered set ${tables.length > 1 ? "reference" : "references"} it through foreign keys, unprotected by any check: ` +
      found.map((f) => `${f.table} (${f.constraint} -> ${f.references})`).join(", "),
    fix: `add ${tables.join(", ")} to the tables setting (pulumi config set --path 'tables[N]' ${tables[0]}), so that their links are migrated and checked too`,
  };
}
