// The backup's manifest: what the database held in the dump's snapshot (per covered table the
// data model, row count and fingerprints; the schema snapshot), and how a database is compared
// with it.
import type { Client } from "pg";
import type { Check } from "../../../common/types";
import { setSessionSettings } from "../database/connection";
import { readColumnTypes, readDataModel, type DataModel, type TableModel } from "../database/dataModel";
import { StepError } from "../errors";
import { fingerprintTable, type TableData } from "./fingerprint";
import { serverMajor } from "../database/pgTools";
import { readSchemaSnapshot, type SchemaSnapshot } from "./schemaSnapshot";
import { openReader } from "../storage/storage";
import { quoteTable, tableOids } from "../database/tables";


export interface TableState extends TableModel, TableData {}

export interface DatabaseState {
  tables: Record<string, TableState>;
  schema: SchemaSnapshot;
}

/**
 * Version of the manifest (fingerprint algorithm and schema snapshot). Fingerprints from another
 * algorithm cannot be compared, so a manifest of any other format is refused rather than
 * reported as a data mismatch (restore accepts earlier ones: see LegacyManifest).
 */
export const MANIFEST_FORMAT = 6;

/** The oldest server the fingerprints run on (hash_record_extended came in PostgreSQL 14). */
export const MIN_SERVER_MAJOR = 14;

interface ManifestHead {
  format: number;
  createdAt: string;
  revision: string | null;
  dump: { uri: string; sha256: string; bytes: number };
}

export interface Manifest extends ManifestHead, DatabaseState {}

/** Formats 1-5: row counts, and constraint and index names, are what a restore can still compare. */
export interface LegacyManifest extends ManifestHead {
  tables: Record<string, { rows: number }>;
  schema:
    | { constraints: { table: string; name: string }[]; indexes: { table: string; name: string }[] } // formats 1-4
    | { tables: Record<string, { constraints: Record<string, unknown>; indexes: Record<string, unknown> }> }; // format 5: a snapshot
}

export const isCurrent = (m: Manifest | LegacyManifest): m is Manifest => m.format === MANIFEST_FORMAT;

// Text output of dates, floats and bytea depends on session settings: pin them so that
// fingerprints of columns hashed through their text are comparable between sessions (before and
// after the migration).
const STABLE_SETTINGS: [string, string][] = [
  ["TimeZone", "UTC"],
  ["DateStyle", "ISO, YMD"],
  ["IntervalStyle", "postgres"],
  ["extra_float_digits", "1"],
  ["bytea_output", "hex"],
];

export interface CaptureOptions {
  /** A manifest: its data model (columns, keys, edges) is used, so that a state taken after the
   * migration is computed exactly like the one before. */
  reference?: DatabaseState;
  /** Also the id fingerprints (default true): only comparable at the reference's revision. */
  ids?: boolean;
  /** The relationship fingerprints and orphans (default true); with equal ids they add nothing. */
  relationships?: boolean;
  /** Count uuid ids not of this version; null or absent: not checked. */
  uuidVersion?: number | null;
}

/** The data model a state was taken with. */
function modelOf(state: DatabaseState): DataModel {
  return Object.fromEntries(Object.entries(state.tables).map(([t, s]) => [t, {
    idColumn: s.idColumn, keyColumns: s.keyColumns, contentColumns: s.contentColumns, parents: s.parents,
  }]));
}

/** Readies `client`'s session for fingerprints comparable with any other's (same settings, the
 * reference's data model) and reads what the hash expressions need. */
export async function fingerprintSession(client: Client, tables: string[], reference?: DatabaseState) {
  const major = await serverMajor(client);
  if (major < MIN_SERVER_MAJOR) {
    throw new StepError(`the server is PostgreSQL ${major}; the manifest's fingerprints need PostgreSQL ${MIN_SERVER_MAJOR} or later (hash_record_extended)`,
      `upgrade the server to PostgreSQL ${MIN_SERVER_MAJOR} or later before this deployment`);
  }
  // On large tables the planner would JIT-compile each query: that costs more than it saves on
  // hashing.
  await setSessionSettings(client, [...STABLE_SETTINGS, ["jit", "off"]]);
  const oids = await tableOids(client, tables);
  const model = reference ? modelOf(reference) : await readDataModel(client, oids);
  const types = await readColumnTypes(client, new Map([...oids].map(([name, oid]) => [oid, name])));
  return { oids, model, types };
}

/**
 * Data and schema of each covered table. Each table is read in one pass, inside PostgreSQL (see
 * fingerprint.ts). Call inside a transaction (REPEATABLE READ) for one consistent snapshot.
 */
export async function captureState(client: Client, tables: string[], opts: CaptureOptions = {}): Promise<DatabaseState> {
  const { oids, model, types } = await fingerprintSession(client, tables, opts.reference);
  const schema = await readSchemaSnapshot(client, oids);
  const out: Record<string, TableState> = {};
  for (const table of tables) {
    const data = await fingerprintTable(client, model, table, types, { ids: opts.ids ?? true, relationships: opts.relationships ?? true, uuidVersion: opts.uuidVersion ?? null });
    out[table] = { ...model[table], ...data };
  }
  return { tables: out, schema };
}

/**
 * Row counts, fingerprints (the id fingerprints with `ids`) and row checks of every table in
 * `expected`. Orphans must be as many as the manifest had (none, unless a NOT VALID key let some in).
 */
export function compareState(expected: DatabaseState, actual: DatabaseState, opts: { ids: boolean }): Check[] {
  const checks: Check[] = [];
  for (const [table, exp] of Object.entries(expected.tables)) {
    const act = actual.tables[table];
    checks.push(rowsCheck(table, exp.rows, act?.rows));
    if (!act) continue;
    const fingerprint = (kind: string, what: string, a: string | null, b: string | null, covers: string) => checks.push({
      name: `data.${kind}.${table}`,
      ok: a === b,
      detail: a === b ? `${what} matches (${covers})` : `${what} differs: expected ${a}, found ${b}`,
    });
    fingerprint("content", "content fingerprint", exp.contentFingerprint, act.contentFingerprint, `${exp.contentColumns.length} columns`);
    if (act.relationshipFingerprint !== null) {
      fingerprint("relationships", "relationship fingerprint", exp.relationshipFingerprint, act.relationshipFingerprint,
        exp.parents.length === 0 ? "no parents" : `parents through ${exp.parents.map((e) => e.constraint).join(", ")}, transitively`);
    }
    if (opts.ids) {
      fingerprint("ids", "id fingerprint", exp.idFingerprint, act.idFingerprint,
        `every column of each row, keys ${exp.keyColumns.join(", ") || "(none)"} included${act.relationshipFingerprint === null ? ": its links and orphans too" : ""}`);
    }
    for (const edge of act.orphans === null ? [] : exp.parents) {
      const expected = exp.orphans?.[edge.constraint] ?? 0;
      const found = act.orphans![edge.constraint];
      checks.push({
        name: `data.orphans.${edge.constraint}`,
        ok: found === expected,
        detail: found === undefined ? "cannot check: columns missing"
          : `${found} rows of ${table} (${edge.columns}) without a ${edge.table} row${found === expected ? "" : `, the backup had ${expected}`}`,
      });
    }
    if (exp.idColumn !== null) {
      checks.push({ name: `data.null_ids.${table}.${exp.idColumn}`, ok: act.nullIds === 0, detail: `${act.nullIds} NULL` });
    }
    if (act.badUuids !== null) {
      checks.push({ name: `data.uuid_version.${table}.${exp.idColumn}`, ok: act.badUuids === 0, detail: `${act.badUuids} ids are not of the expected UUID version` });
    }
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
 * Against a manifest of an earlier format: row counts, and that its constraints and indexes exist
 * by name. No fingerprint pass, so it runs on any server the manifest's own version supported.
 */
export async function legacyChecks(client: Client, expected: LegacyManifest): Promise<Check[]> {
  const tables = Object.keys(expected.tables);
  await tableOids(client, tables); // a missing table fails here, naming it
  const counts = await client.query(tables.map((t) => `SELECT ${client.escapeLiteral(t)} AS t, count(*)::bigint AS n FROM ${quoteTable(t)}`).join(" UNION ALL "));
  const found = new Map(counts.rows.map((r) => [r.t as string, Number(r.n)]));
  const checks = tables.map((t) => rowsCheck(t, expected.tables[t].rows, found.get(t)));
  const { schema } = expected;
  const named = "tables" in schema
    ? Object.entries(schema.tables).flatMap(([table, t]) => [...Object.keys(t.constraints), ...Object.keys(t.indexes)].map((name) => ({ table, name })))
    : [...schema.constraints, ...schema.indexes];
  // Index names as every format wrote them: without the schema.
  const objects = await client.query(
    `SELECT conname AS name FROM pg_constraint WHERE conrelid = ANY($1::regclass[])
     UNION SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = ANY($1::regclass[])`, [tables.map(quoteTable)]);
  const present = new Set(objects.rows.map((r) => r.name as string));
  for (const { table, name } of named) {
    checks.push({ name: `schema.object.${name}`, ok: present.has(name), detail: `${name} on ${table} ${present.has(name) ? "exists" : "is missing"}` });
  }
  return checks;
}

/**
 * Reads and checks a manifest (file:// or s3:// URI). Only a manifest of this version's format
 * can be compared in full; `olderFormats` also accepts earlier ones, for what needs only the
 * dump's checksum, row counts and object names (restoring an older backup must stay possible).
 */
export async function loadManifest(uri: string, env?: NodeJS.ProcessEnv): Promise<Manifest>;
export async function loadManifest(uri: string, env: NodeJS.ProcessEnv, opts: { olderFormats: true }): Promise<Manifest | LegacyManifest>;
export async function loadManifest(uri: string, env: NodeJS.ProcessEnv = process.env, opts: { olderFormats?: boolean } = {}): Promise<Manifest | LegacyManifest> {
  const value = (await openReader(env).getJson(uri)) as Partial<Manifest> | null;
  if (!value || typeof value.format !== "number" || !value.tables || !value.schema || !value.dump?.sha256) {
    throw new StepError(`${uri} is not a vibes backup manifest`, "pass the manifestUri printed by the backup step");
  }
  const usable = value.format === MANIFEST_FORMAT || (opts.olderFormats === true && value.format >= 1 && value.format < MANIFEST_FORMAT);
  if (!usable) {
    throw new StepError(`${uri} is a format ${value.format} manifest; this vibes-hooks computes format ${MANIFEST_FORMAT} fingerprints, which cannot be compared with it`,
      "take a new backup with this version of vibes-hooks (or run the version that wrote the manifest)");
  }
  return value as Manifest | LegacyManifest;
}

/** The manifest written beside a dump. */
export function manifestUriFor(dumpUri: string): string {
  return `${dumpUri}.manifest.json`;
}
