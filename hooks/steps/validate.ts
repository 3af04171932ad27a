/**
 * validate [schema] [data] [performance] --manifest URI (none = all three):
 *  schema:      key columns have the expected type (--id-type, default uuid), single-column ids
 *               default to --id-default (gen_random_uuid() for uuid ids, a sequence's nextval()
 *               for integer ids, as after a rollback), and every constraint and index of
 *               the manifest still exists under its name with the same definition;
 *  data:        row counts and both fingerprints equal the manifest's (one snapshot), no orphaned
 *               foreign key (checked by query, so NOT VALID constraints count too), no NULL id,
 *               uuid ids of version --uuid-version (default 4);
 *  performance: EXPLAIN (FORMAT JSON) of the guide's queries after ANALYZE: lookups by id and by
 *               user_id must use an index; --max-ms bounds each query's execution time.
 */
import type { Client } from "pg";
import { parseFlags, requireFlag } from "../lib/args";
import { connect, connectionFromEnv } from "../lib/connection";
import { StepError, UsageError } from "../lib/errors";
import {
  captureState, compareState, loadManifest, quoteIdent, readSchema, schemaObjectChecks, tablesFromEnv,
  type Check, type ConstraintInfo, type Manifest,
} from "../lib/manifest";
import { progress } from "../lib/progress";

export type Part = "schema" | "data" | "performance";
export const PARTS: Part[] = ["schema", "data", "performance"];

export interface ValidateOptions {
  idType?: string;
  idDefault?: string;
  uuidVersion?: number;
  maxMs?: number;
  /** Tables for the performance part when there is no manifest. */
  tables?: string[];
  log?: (msg: string) => void;
}

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values, positionals } = parseFlags("validate", args, {
    manifest: { type: "string" },
    "id-type": { type: "string", default: "uuid" },
    "id-default": { type: "string" },
    "uuid-version": { type: "string", default: "4" },
    "max-ms": { type: "string" },
  }, true);
  const bad = positionals.filter((p) => !PARTS.includes(p as Part));
  if (bad.length > 0) throw new UsageError(`validate: unknown part ${bad.join(", ")}`, `name any of ${PARTS.join(", ")} (none = all)`);
  const parts = positionals.length > 0 ? [...new Set(positionals as Part[])] : PARTS;
  const uuidVersion = Number(values["uuid-version"]);
  if (!Number.isInteger(uuidVersion) || uuidVersion < 1 || uuidVersion > 8) {
    throw new UsageError(`validate: --uuid-version "${values["uuid-version"]}" is not 1-8`, "pass --uuid-version 4 (or 7)");
  }
  const maxMs = values["max-ms"] === undefined ? undefined : Number(values["max-ms"]);
  if (maxMs !== undefined && !(maxMs > 0)) throw new UsageError(`validate: --max-ms "${values["max-ms"]}" is not a positive number`, "pass e.g. --max-ms 200");

  let manifest: Manifest | null = null;
  if (parts.includes("schema") || parts.includes("data")) {
    manifest = await loadManifest(requireFlag("validate", values.manifest, "--manifest", "URI (the manifestUri printed by backup)"), env);
  } else if (values.manifest) {
    manifest = await loadManifest(values.manifest, env);
  }
  const log = progress("validate");
  const client = await connect(connectionFromEnv(env), { applicationName: "vibes-hooks validate" });
  let checks: Check[];
  try {
    checks = await validateAgainstManifest(client, manifest, parts, {
      idType: values["id-type"], idDefault: values["id-default"], uuidVersion, maxMs, tables: tablesFromEnv(env), log,
    });
  } finally {
    await client.end().catch(() => undefined);
  }
  const failed = checks.filter((c) => !c.ok);
  const summary = `${parts.join("+")}: ${checks.length - failed.length}/${checks.length} checks passed`;
  for (const c of checks) log(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
  if (failed.length > 0) {
    throw new StepError(`validation failed: ${failed.map((c) => c.name).join(", ")}`,
      "see the failed checks; during a deployment, roll back (migrate --to the previous revision) or restore the backup",
      { details: { checks, summary } });
  }
  return { checks, summary };
}

/** Checks the database `client` is connected to; throws only when it cannot check at all. */
export async function validateAgainstManifest(
  client: Client,
  manifest: Manifest | null,
  parts: Part[],
  opts: ValidateOptions = {},
): Promise<Check[]> {
  const log = opts.log ?? (() => undefined);
  const checks: Check[] = [];
  if ((parts.includes("schema") || parts.includes("data")) && !manifest) {
    throw new UsageError("validate: schema and data checks need --manifest URI", "pass the manifestUri printed by backup");
  }
  if (parts.includes("schema")) {
    log("schema");
    checks.push(...(await schemaChecks(client, manifest!, opts.idType ?? "uuid", opts.idDefault)));
  }
  if (parts.includes("data")) {
    log("data (one snapshot)");
    checks.push(...(await dataChecks(client, manifest!, opts.idType ?? "uuid", opts.uuidVersion ?? 4)));
  }
  if (parts.includes("performance")) {
    log("performance (ANALYZE, then EXPLAIN)");
    checks.push(...(await performanceChecks(client, manifest ? Object.keys(manifest.tables) : opts.tables ?? [], opts.maxMs)));
  }
  return checks;
}

interface ColumnInfo {
  type: string;
  default: string | null;
}

async function columnsOf(client: Client, table: string): Promise<Map<string, ColumnInfo>> {
  const res = await client.query(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, pg_get_expr(d.adbin, d.adrelid) AS "default"
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped`,
    [table],
  );
  return new Map(res.rows.map((r) => [r.name as string, { type: r.type as string, default: r.default as string | null }]));
}

function primaryKeys(manifest: Manifest): ConstraintInfo[] {
  return manifest.schema.constraints.filter((c) => c.type === "PRIMARY KEY");
}

/** Whether an id column's default is the expected one: `expected` exactly when given, else the
 * id type's usual default. */
function idDefaultProblem(actual: string | null | undefined, idType: string, expected: string | undefined): string | undefined {
  if (expected !== undefined) return actual === expected ? undefined : `expected ${expected}`;
  if (idType === "uuid") return actual === "gen_random_uuid()" ? undefined : "expected gen_random_uuid()";
  return actual?.startsWith("nextval(") ? undefined : "expected a sequence's nextval(...)";
}

async function schemaChecks(client: Client, manifest: Manifest, idType: string, idDefault: string | undefined): Promise<Check[]> {
  const checks: Check[] = [];
  const tables = Object.keys(manifest.tables);
  const present = await client.query("SELECT t FROM unnest($1::text[]) t WHERE to_regclass(quote_ident(t)) IS NULL", [tables]);
  if (present.rows.length > 0) {
    return [{ name: "schema.tables", ok: false, detail: `missing tables: ${present.rows.map((r) => r.t).join(", ")}` }];
  }
  for (const table of tables) {
    const cols = await columnsOf(client, table);
    for (const col of manifest.tables[table].keyColumns) {
      const info = cols.get(col);
      checks.push({
        name: `schema.type.${table}.${col}`,
        ok: info?.type === idType,
        detail: info ? `${info.type}${info.type === idType ? "" : ` (expected ${idType})`}` : "column is missing",
      });
    }
    for (const pk of primaryKeys(manifest).filter((c) => c.table === table && c.columns.length === 1)) {
      const info = cols.get(pk.columns[0]);
      const problem = idDefaultProblem(info?.default, idType, idDefault);
      checks.push({
        name: `schema.default.${table}.${pk.columns[0]}`,
        ok: problem === undefined,
        detail: `default ${info?.default ?? "(none)"}${problem ? ` (${problem})` : ""}`,
      });
    }
  }
  checks.push(...schemaObjectChecks(manifest.schema, await readSchema(client, tables)));
  return checks;
}

async function dataChecks(client: Client, manifest: Manifest, idType: string, uuidVersion: number): Promise<Check[]> {
  const tables = Object.keys(manifest.tables);
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  try {
    const state = await captureState(client, tables, manifest);
    const checks = compareState(manifest, state);
    for (const fk of manifest.schema.constraints.filter((c) => c.type === "FOREIGN KEY")) {
      checks.push(await orphanCheck(client, fk));
    }
    const version = uuidVersion.toString(16);
    const pattern = `^[0-9a-f]{8}-[0-9a-f]{4}-${version}[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`;
    for (const pk of primaryKeys(manifest)) {
      const cols = await columnsOf(client, pk.table);
      for (const col of pk.columns) {
        const isUuid = cols.get(col)?.type === "uuid";
        const id = quoteIdent(col);
        const res = await client.query(
          `SELECT count(*) FILTER (WHERE ${id} IS NULL)::bigint AS nulls,
                  ${isUuid ? `count(*) FILTER (WHERE ${id}::text !~ $1)::bigint` : "0"} AS bad
             FROM ${quoteIdent(pk.table)}`,
          isUuid ? [pattern] : [],
        );
        const nulls = Number(res.rows[0].nulls);
        checks.push({ name: `data.null_ids.${pk.table}.${col}`, ok: nulls === 0, detail: `${nulls} NULL` });
        if (idType === "uuid") {
          const bad = Number(res.rows[0].bad);
          checks.push({
            name: `data.uuid_version.${pk.table}.${col}`,
            ok: isUuid && bad === 0,
            detail: isUuid ? `${bad} ids are not version-${uuidVersion} UUIDs` : `column is ${cols.get(col)?.type ?? "missing"}, not uuid`,
          });
        }
      }
    }
    return checks;
  } finally {
    await client.query("COMMIT").catch(() => undefined);
  }
}

/** Children whose parent row does not exist: a query, so it holds even for NOT VALID or dropped constraints. */
async function orphanCheck(client: Client, fk: ConstraintInfo): Promise<Check> {
  const name = `data.orphans.${fk.name}`;
  const ref = fk.references!;
  const notNull = fk.columns.map((c) => `c.${quoteIdent(c)} IS NOT NULL`).join(" AND ");
  const match = fk.columns.map((c, i) => `p.${quoteIdent(ref.columns[i])} = c.${quoteIdent(c)}`).join(" AND ");
  await client.query("SAVEPOINT orphan_check");
  try {
    const res = await client.query(
      `SELECT count(*)::bigint AS n FROM ${quoteIdent(fk.table)} c
        WHERE ${notNull} AND NOT EXISTS (SELECT 1 FROM ${quoteIdent(ref.table)} p WHERE ${match})`,
    );
    await client.query("RELEASE SAVEPOINT orphan_check");
    const n = Number(res.rows[0].n);
    return { name, ok: n === 0, detail: `${n} rows of ${fk.table} (${fk.columns}) without a ${ref.table} row` };
  } catch (err) {
    // e.g. the child and parent columns no longer have comparable types.
    await client.query("ROLLBACK TO SAVEPOINT orphan_check");
    return { name, ok: false, detail: `cannot check: ${(err as Error).message}` };
  }
}

// A table this small is read in one go: the planner rightly prefers a sequential scan, and
// forcing it otherwise (enable_seqscan off) would prove nothing about production.
const SMALL_TABLE_PAGES = 8;

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

async function explain(client: Client, sql: string, analyze: boolean): Promise<{ plan: PlanNode; ms: number | null }> {
  const res = await client.query(`EXPLAIN (${analyze ? "ANALYZE, " : ""}FORMAT JSON) ${sql}`);
  const out = res.rows[0]["QUERY PLAN"][0];
  return { plan: out.Plan as PlanNode, ms: analyze ? (out["Execution Time"] as number) : null };
}

async function performanceChecks(client: Client, tables: string[], maxMs?: number): Promise<Check[]> {
  if (!tables.includes("users") || !tables.includes("journals")) {
    return [{ name: "performance", ok: true, detail: "skipped: the guide's queries need users and journals among the covered tables" }];
  }
  try {
    await client.query(`ANALYZE ${tables.map(quoteIdent).join(", ")}`);
  } catch (err) {
    throw new StepError(`ANALYZE failed: ${(err as Error).message}`, "run validate performance as the tables' owner");
  }
  const analyze = maxMs !== undefined;
  const pages = async (t: string) =>
    Number((await client.query("SELECT relpages FROM pg_class WHERE oid = to_regclass(quote_ident($1))", [t])).rows[0].relpages);
  const sample = await client.query("SELECT id::text AS id FROM users ORDER BY id DESC LIMIT 1");
  const checks: Check[] = [];
  const timing = (ms: number | null) => (ms === null ? "" : `; ${ms.toFixed(1)} ms (limit ${maxMs} ms)`);
  const withinTime = (ms: number | null) => ms === null || ms <= maxMs!;

  const indexed = async (name: string, table: string, sql: string) => {
    const { plan, ms } = await explain(client, sql, analyze);
    const scans = nodes(plan).filter((n) => n["Relation Name"] === table || n["Index Name"]);
    const index = scans.find((n) => /Index/.test(n["Node Type"]) && n["Index Name"]);
    const tablePages = await pages(table);
    const types = nodes(plan).map((n) => n["Node Type"]).join(" > ");
    if (index) {
      checks.push({ name, ok: withinTime(ms), detail: `${index["Node Type"]} using ${index["Index Name"]}${timing(ms)}` });
    } else if (tablePages <= SMALL_TABLE_PAGES) {
      checks.push({ name, ok: withinTime(ms), detail: `no index scan needed: ${table} has ${tablePages} pages (${types})${timing(ms)}` });
    } else {
      checks.push({ name, ok: false, detail: `no index used on ${table} (${tablePages} pages): ${types}${timing(ms)}` });
    }
  };
  if (sample.rows.length === 0) {
    checks.push({ name: "performance.user_lookup", ok: true, detail: "skipped: users is empty" });
  } else {
    const id = client.escapeLiteral(sample.rows[0].id);
    await indexed("performance.user_lookup", "users", `SELECT * FROM users WHERE id = ${id}`);
    await indexed("performance.journals_by_user", "journals", `SELECT * FROM journals WHERE user_id = ${id}`);
  }
  for (const [name, sql] of [
    ["performance.user_journal_join", "SELECT u.email, j.title, j.created_at FROM users u JOIN journals j ON u.id = j.user_id LIMIT 5"],
    ["performance.journal_count", "SELECT u.email, COUNT(j.id) AS journal_count FROM users u LEFT JOIN journals j ON u.id = j.user_id GROUP BY u.id, u.email"],
  ]) {
    const { plan, ms } = await explain(client, sql, analyze);
    checks.push({ name, ok: withinTime(ms), detail: `${nodes(plan).map((n) => n["Node Type"]).join(" > ")}${timing(ms)}` });
  }
  return checks;
}
