import { createHash } from "node:crypto";
import type { Client } from "pg";
import { setSessionSettings } from "./connection";
import { StepError } from "./errors";
import { serverMajor } from "./pgTools";
import { openReader } from "./storage";

export interface TableState {
  rows: number;
  /** Columns in a primary or foreign key: what the migration changes. */
  keyColumns: string[];
  /** The other columns, sorted: what the fingerprints cover. */
  contentColumns: string[];
  contentFingerprint: string;
  relationshipFingerprint: string;
}

export interface ConstraintInfo {
  table: string;
  name: string;
  type: "PRIMARY KEY" | "FOREIGN KEY" | "UNIQUE";
  columns: string[];
  references: { table: string; columns: string[] } | null;
  onDelete: string | null;
  validated: boolean;
}

export interface IndexInfo {
  table: string;
  name: string;
  columns: string[];
  unique: boolean;
}

export interface DatabaseState {
  tables: Record<string, TableState>;
  schema: { constraints: ConstraintInfo[]; indexes: IndexInfo[] };
}

/**
 * Version of the fingerprint algorithm. Fingerprints from another algorithm cannot be compared,
 * so a manifest of any other format is refused rather than reported as a data mismatch.
 */
export const MANIFEST_FORMAT = 4;

/** The oldest server the fingerprints run on (hash_record_extended came in PostgreSQL 14). */
export const MIN_SERVER_MAJOR = 14;

export interface Manifest extends DatabaseState {
  /** MANIFEST_FORMAT when written; a loaded manifest may be older (see loadManifest). */
  format: number;
  createdAt: string;
  revision: string | null;
  dump: { uri: string; sha256: string; bytes: number };
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export const DEFAULT_TABLES = ["users", "journals", "tags", "journal_tags"];

/** The tables the change covers, from VIBES_TABLES. */
export function tablesFromEnv(env: NodeJS.ProcessEnv): string[] {
  const raw = env.VIBES_TABLES?.trim();
  if (!raw) return [...DEFAULT_TABLES];
  const tables = raw.split(",").map((t) => t.trim()).filter(Boolean);
  if (tables.length === 0) throw new StepError("VIBES_TABLES lists no table", "set VIBES_TABLES to a comma list, e.g. users,journals");
  return tables;
}

const ON_DELETE: Record<string, string> = { a: "NO ACTION", r: "RESTRICT", c: "CASCADE", n: "SET NULL", d: "SET DEFAULT" };
const CONTYPE: Record<string, ConstraintInfo["type"]> = { p: "PRIMARY KEY", f: "FOREIGN KEY", u: "UNIQUE" };

export function quoteIdent(id: string): string {
  return `"${id.replace(/"/g, '""')}"`;
}

// Text output of dates, floats and bytea depends on session settings: pin them so that
// fingerprints of columns hashed through their text (see hashedColumn) are comparable between
// sessions (before and after the migration).
const STABLE_SETTINGS: [string, string][] = [
  ["TimeZone", "UTC"],
  ["DateStyle", "ISO, YMD"],
  ["IntervalStyle", "postgres"],
  ["extra_float_digits", "1"],
  ["bytea_output", "hex"],
];

/** oid per covered table (in the current schema search path); fails naming the missing ones. */
export async function tableOids(client: Client, tables: string[]): Promise<Map<string, number>> {
  const res = await client.query(
    "SELECT t AS name, to_regclass(quote_ident(t))::oid AS oid FROM unnest($1::text[]) AS t",
    [tables],
  );
  const missing = res.rows.filter((r) => r.oid === null).map((r) => r.name as string);
  if (missing.length > 0) {
    throw new StepError(`table${missing.length > 1 ? "s" : ""} not found: ${missing.join(", ")}`,
      "check DATABASE_URL points at the Vibes database and VIBES_TABLES lists its tables");
  }
  return new Map(res.rows.map((r) => [r.name as string, Number(r.oid)]));
}

async function readConstraints(client: Client, oids: number[]): Promise<ConstraintInfo[]> {
  const res = await client.query(
    `SELECT con.conname AS name, con.contype, rel.relname AS "table", con.convalidated AS validated,
            ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o)::text[] AS columns,
            frel.relname AS ref_table,
            ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                  JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)::text[] AS ref_columns,
            con.confdeltype
       FROM pg_constraint con
       JOIN pg_class rel ON rel.oid = con.conrelid
       LEFT JOIN pg_class frel ON frel.oid = con.confrelid
      WHERE con.conrelid = ANY($1::oid[]) AND con.contype IN ('p', 'f', 'u')
      ORDER BY rel.relname, con.conname`,
    [oids],
  );
  return res.rows.map((r) => ({
    table: r.table,
    name: r.name,
    type: CONTYPE[r.contype],
    columns: r.columns,
    references: r.contype === "f" ? { table: r.ref_table, columns: r.ref_columns } : null,
    onDelete: r.contype === "f" ? ON_DELETE[r.confdeltype] ?? r.confdeltype : null,
    validated: r.validated,
  }));
}

async function readIndexes(client: Client, oids: number[]): Promise<IndexInfo[]> {
  const res = await client.query(
    `SELECT i.relname AS name, t.relname AS "table", x.indisunique AS unique,
            ARRAY(SELECT coalesce(a.attname::text, pg_get_indexdef(x.indexrelid, k.o::int, true))
                    FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, o)
                    LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n
                   ORDER BY k.o)::text[] AS columns
       FROM pg_index x
       JOIN pg_class i ON i.oid = x.indexrelid
       JOIN pg_class t ON t.oid = x.indrelid
      WHERE x.indrelid = ANY($1::oid[])
      ORDER BY t.relname, i.relname`,
    [oids],
  );
  return res.rows.map((r) => ({ table: r.table, name: r.name, columns: r.columns, unique: r.unique }));
}

/** table -> column -> type name (pg_catalog types unqualified), columns in name order. */
async function readColumns(client: Client, oids: number[]): Promise<Map<string, Map<string, string>>> {
  const res = await client.query(
    `SELECT c.relname AS "table", a.attname AS "column", a.atttypid::regtype::text AS type
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY c.relname, a.attname`,
    [oids],
  );
  const out = new Map<string, Map<string, string>>();
  for (const r of res.rows) {
    if (!out.has(r.table)) out.set(r.table, new Map());
    out.get(r.table)!.set(r.column, r.type);
  }
  return out;
}

function keyColumnsOf(table: string, constraints: ConstraintInfo[]): string[] {
  const keys = new Set<string>();
  for (const c of constraints) {
    if (c.table === table && (c.type === "PRIMARY KEY" || c.type === "FOREIGN KEY")) c.columns.forEach((k) => keys.add(k));
  }
  return [...keys].sort();
}

function digest(sum: string): string {
  return createHash("sha256").update(sum).digest("hex").slice(0, 32);
}

// Types hashed by their own hash function, on the stored value: building each row's text cost
// 3x as much. Values equal under the type's equality hash equal (numeric 1.0 and 1.00 too).
// Text types are hashed byte for byte (COLLATE "C": a nondeterministic collation would hash 'A'
// like 'a'). Any other type (json, arrays, enums, domains...) is hashed through its text form.
const NATIVE_HASH_TYPES = new Set([
  "smallint", "integer", "bigint", "numeric", "real", "double precision", "boolean", "uuid", "bytea", "jsonb",
  "date", "time without time zone", "timestamp without time zone", "timestamp with time zone", "interval",
]);
const TEXT_TYPES = new Set(["text", "character varying", "character"]);

function hashedColumn(alias: string, column: string, type: string | undefined): string {
  const ref = `${alias}.${quoteIdent(column)}`;
  if (type !== undefined && TEXT_TYPES.has(type)) return `${ref} COLLATE "C"`;
  return type !== undefined && NATIVE_HASH_TYPES.has(type) ? ref : `${ref}::text COLLATE "C"`;
}

/**
 * A row's 64-bit hash over `fields` (hash_record_extended, PostgreSQL 14 or later), mixed as a
 * whole. The record hash alone only adds up its fields' hashes (31 * previous + next), so a sum of
 * such row hashes would depend on each column's values but not on which values share a row: two
 * rows swapping a title, or two journals swapping users, would leave it unchanged. Hashing the
 * record hash's 8 bytes once more (hash_any, a full 64-bit mix) ties each row's fields together.
 */
function rowHash(fields: string[]): string {
  return `hash_record_extended(ROW(int8send(hash_record_extended(ROW(${fields.join(", ")}), 0))), 0)`;
}

/**
 * Row count and both fingerprints of each covered table, plus its constraints and indexes.
 * Each table is read once, inside PostgreSQL: the sum of a 64-bit hash per row is
 * order-independent and keeps duplicates, and the hook's memory does not grow with the data.
 * Call inside a transaction (REPEATABLE READ) to get one consistent snapshot.
 *
 * With `reference` (a manifest), the column split and the foreign keys followed are the
 * reference's, so a state taken after the migration is computed exactly like the one before.
 */
export async function captureState(client: Client, tables: string[], reference?: DatabaseState): Promise<DatabaseState> {
  const major = await serverMajor(client);
  if (major < MIN_SERVER_MAJOR) {
    throw new StepError(`the server is PostgreSQL ${major}; the manifest's fingerprints need PostgreSQL ${MIN_SERVER_MAJOR} or later (hash_record_extended)`,
      `upgrade the server to PostgreSQL ${MIN_SERVER_MAJOR} or later before this deployment`);
  }
  // On large tables the planner would JIT-compile each query: that costs more than it saves on
  // hashing, and it is CPU taken from pg_dump while the backup runs.
  await setSessionSettings(client, [...STABLE_SETTINGS, ["jit", "off"]]);
  const oids = await tableOids(client, tables);
  const constraints = await readConstraints(client, [...oids.values()]);
  const indexes = await readIndexes(client, [...oids.values()]);
  const fks = (reference?.schema.constraints ?? constraints)
    .filter((c) => c.type === "FOREIGN KEY" && tables.includes(c.table))
    // Code-point order, not the locale's: backup and validate must order them alike anywhere.
    .map((c) => ({ c, key: c.columns.join(",") }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map(({ c }) => c);

  // Content columns of referenced tables outside the covered set: everything but their keys.
  const refOids = await tableOids(client, [...new Set(fks.map((f) => f.references!.table))]);
  const allOids = [...new Set([...oids.values(), ...refOids.values()])];
  const columns = await readColumns(client, allOids);
  const refConstraints = await readConstraints(client, [...refOids.values()]);
  const contentOf = (table: string): string[] => {
    const ref = reference?.tables[table];
    if (ref) return ref.contentColumns;
    const keys = keyColumnsOf(table, tables.includes(table) ? constraints : refConstraints);
    return [...(columns.get(table)?.keys() ?? [])].filter((c) => !keys.includes(c)).sort();
  };
  const contentFields = (alias: string, table: string, names: string[]) =>
    names.map((c) => hashedColumn(alias, c, columns.get(table)?.get(c)));

  const out: DatabaseState = { tables: {}, schema: { constraints, indexes } };
  for (const table of tables) {
    const keyColumns = reference?.tables[table]?.keyColumns ?? keyColumnsOf(table, constraints);
    const contentColumns = contentOf(table);
    const tableFks = fks.filter((f) => f.table === table);
    const needed = [
      ...contentColumns.map((c) => [table, c]),
      ...tableFks.flatMap((f) => [
        ...f.columns.map((c) => [table, c]),
        ...[...f.references!.columns, ...contentOf(f.references!.table)].map((c) => [f.references!.table, c]),
      ]),
    ];
    const missing = needed.filter(([t, c]) => !columns.get(t)?.has(c)).map(([t, c]) => `${t}.${c}`);
    if (missing.length > 0) {
      const count = await client.query(`SELECT count(*)::bigint AS n FROM ${quoteIdent(table)}`);
      const why = `columns missing: ${[...new Set(missing)].join(", ")}`;
      out.tables[table] = {
        rows: Number(count.rows[0].n), keyColumns, contentColumns, contentFingerprint: why, relationshipFingerprint: why,
      };
      continue;
    }
    // A table's fingerprint is the sum of its rows' hashes: order-independent and, unlike XOR,
    // it counts duplicates (sum(bigint) is exact). For the relationship fingerprint each
    // referenced row's content hash is folded into its child's: it survives any change of the key
    // values, and moving a child to another parent shows. Each parent's hash is computed once per
    // parent row (in its subquery), not once per child. No parent (a NULL key or an orphan) gives
    // NULL, which the record hash tells from any parent's, even one without content columns.
    const joins = tableFks.map((f, i) => {
      const parent = f.references!.table;
      const keys = f.references!.columns.map((c, j) => `p.${quoteIdent(c)} AS k${j}`).join(", ");
      const hash = rowHash(contentFields("p", parent, contentOf(parent)));
      const on = f.columns.map((c, j) => `t.${quoteIdent(c)} = p${i}.k${j}`).join(" AND ");
      return `LEFT JOIN (SELECT ${keys}, ${hash} AS h FROM ${quoteIdent(parent)} p OFFSET 0) p${i} ON ${on}`;
    });
    const content = rowHash(contentFields("t", table, contentColumns));
    const parents = tableFks.map((_, i) => `p${i}.h`);
    // The hashes go in as their 8 bytes: a bigint field would be hashed through hashint8extended,
    // which folds it to 32 bits first.
    const relationship = parents.length === 0 ? "c" : rowHash(["c", ...parents.map((_, i) => `p${i}`)].map((h) => `int8send(${h})`));
    // OFFSET 0 keeps the subquery from being flattened, which would hash a row once per use of
    // its hash instead of once.
    const sql = `SELECT count(*)::bigint AS rows, coalesce(sum(c), 0)::text AS c, coalesce(sum(${relationship}), 0)::text AS r
                   FROM (SELECT ${[`${content} AS c`, ...parents.map((p, i) => `${p} AS p${i}`)].join(", ")}
                           FROM ${quoteIdent(table)} t ${joins.join(" ")} OFFSET 0) s`;
    const res = await client.query(sql);
    const r = res.rows[0];
    out.tables[table] = {
      rows: Number(r.rows),
      keyColumns,
      contentColumns,
      contentFingerprint: digest(r.c),
      relationshipFingerprint: digest(r.r),
    };
  }
  return out;
}

/** Row counts and fingerprints of every table in `expected`. */
export function compareState(expected: DatabaseState, actual: DatabaseState): Check[] {
  const checks: Check[] = [];
  for (const [table, exp] of Object.entries(expected.tables)) {
    const act = actual.tables[table];
    checks.push(rowsCheck(table, exp.rows, act?.rows));
    if (!act) continue;
    const same = (a: string, b: string, what: string) =>
      a === b ? `${what} matches (${exp.contentColumns.length} columns)` : `${what} differs: expected ${a}, found ${b}`;
    checks.push({
      name: `data.content.${table}`,
      ok: exp.contentFingerprint === act.contentFingerprint,
      detail: same(exp.contentFingerprint, act.contentFingerprint, "content fingerprint"),
    });
    checks.push({
      name: `data.relationships.${table}`,
      ok: exp.relationshipFingerprint === act.relationshipFingerprint,
      detail: same(exp.relationshipFingerprint, act.relationshipFingerprint, "relationship fingerprint"),
    });
  }
  return checks;
}

function rowsCheck(table: string, expected: number, actual: number | undefined): Check {
  if (actual === undefined) return { name: `data.rows.${table}`, ok: false, detail: `table ${table} was not captured` };
  return {
    name: `data.rows.${table}`,
    ok: expected === actual,
    detail: expected === actual ? `${actual} rows` : `expected ${expected} rows, found ${actual}`,
  };
}

/**
 * Row counts only, against a manifest whose fingerprints cannot be compared (an earlier format):
 * no fingerprint pass, so it runs on any server the manifest's own version supported.
 */
export async function compareRowCounts(client: Client, expected: DatabaseState): Promise<Check[]> {
  const tables = Object.keys(expected.tables);
  await tableOids(client, tables); // a missing table fails here, naming it
  const counts = await client.query(tables.map((t) => `SELECT ${client.escapeLiteral(t)} AS t, count(*)::bigint AS n FROM ${quoteIdent(t)}`).join(" UNION ALL "));
  const found = new Map(counts.rows.map((r) => [r.t as string, Number(r.n)]));
  return tables.map((t) => rowsCheck(t, expected.tables[t].rows, found.get(t)));
}

/**
 * Reads and checks a manifest (file:// or s3:// URI). Only a manifest of this version's format
 * has fingerprints that can be compared; `olderFormats` also accepts earlier ones, for what needs
 * only the dump's checksum and row counts (restoring an older backup must stay possible).
 */
export async function loadManifest(uri: string, env: NodeJS.ProcessEnv = process.env, opts: { olderFormats?: boolean } = {}): Promise<Manifest> {
  const value = (await openReader(env).getJson(uri)) as Partial<Manifest> | null;
  if (!value || typeof value.format !== "number" || !value.tables || !value.schema || !value.dump?.sha256) {
    throw new StepError(`${uri} is not a vibes backup manifest`, "pass the manifestUri printed by the backup step");
  }
  const usable = value.format === MANIFEST_FORMAT || (opts.olderFormats === true && value.format >= 1 && value.format < MANIFEST_FORMAT);
  if (!usable) {
    throw new StepError(`${uri} is a format ${value.format} manifest; this vibes-hooks computes format ${MANIFEST_FORMAT} fingerprints, which cannot be compared with it`,
      "take a new backup with this version of vibes-hooks (or run the version that wrote the manifest)");
  }
  return value as Manifest;
}

/** The manifest written beside a dump. */
export function manifestUriFor(dumpUri: string): string {
  return `${dumpUri}.manifest.json`;
}

/** The constraints and indexes of the covered tables as they are now. */
export async function readSchema(client: Client, tables: string[]): Promise<DatabaseState["schema"]> {
  const oids = [...(await tableOids(client, tables)).values()];
  return { constraints: await readConstraints(client, oids), indexes: await readIndexes(client, oids) };
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Every constraint (type, columns, referenced table and columns, ON DELETE rule, validated) and
 * every index (columns, uniqueness) of `expected` still exists under its name.
 */
export function schemaObjectChecks(expected: DatabaseState["schema"], actual: DatabaseState["schema"]): Check[] {
  const checks: Check[] = [];
  for (const exp of expected.constraints) {
    const act = actual.constraints.find((c) => c.table === exp.table && c.name === exp.name);
    const name = `schema.constraint.${exp.name}`;
    if (!act) {
      checks.push({ name, ok: false, detail: `${exp.type} ${exp.name} on ${exp.table} is missing` });
      continue;
    }
    const diffs: string[] = [];
    if (act.type !== exp.type) diffs.push(`type ${act.type} (expected ${exp.type})`);
    if (!same(act.columns, exp.columns)) diffs.push(`columns (${act.columns}) (expected (${exp.columns}))`);
    if (!same(act.references, exp.references)) diffs.push(`references ${JSON.stringify(act.references)} (expected ${JSON.stringify(exp.references)})`);
    if (act.onDelete !== exp.onDelete) diffs.push(`ON DELETE ${act.onDelete} (expected ${exp.onDelete})`);
    if (exp.validated && !act.validated) diffs.push("NOT VALID (it was validated before)");
    const what = exp.type === "FOREIGN KEY" ? `${exp.type} (${exp.columns}) -> ${exp.references?.table} ON DELETE ${exp.onDelete}` : `${exp.type} (${exp.columns})`;
    checks.push({ name, ok: diffs.length === 0, detail: diffs.length ? `${exp.name}: ${diffs.join("; ")}` : what });
  }
  for (const exp of expected.indexes) {
    const act = actual.indexes.find((i) => i.table === exp.table && i.name === exp.name);
    const name = `schema.index.${exp.name}`;
    if (!act) {
      checks.push({ name, ok: false, detail: `index ${exp.name} on ${exp.table} (${exp.columns}) is missing` });
      continue;
    }
    const ok = same(act.columns, exp.columns) && act.unique === exp.unique;
    checks.push({
      name, ok,
      detail: ok ? `${exp.table} (${exp.columns})${exp.unique ? " unique" : ""}`
        : `${exp.name} is on (${act.columns})${act.unique ? " unique" : ""}, expected (${exp.columns})${exp.unique ? " unique" : ""}`,
    });
  }
  return checks;
}
