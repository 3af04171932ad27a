/**
 * validate [schema] [data] [performance] --manifest URI (none = all three):
 *  schema:      the covered tables' schema against the backup's snapshot (hooks/lib/proof/proof.ts:
 *               exactly at the backup's revision or one proven before, else except the id change
 *               to --id-type with --id-default), and each integer id's sequence past its ids;
 *  data:        row counts, content, relationship (transitive) and, at the backup's revision, id
 *               fingerprints against the manifest, in the same snapshot; no orphaned key, no
 *               NULL id, uuid ids of --uuid-version (4, 7 or any);
 *  performance: EXPLAIN (FORMAT JSON) of the guide's queries after ANALYZE: lookups by id and by
 *               user_id must use an index; --max-ms bounds each query's execution time.
 * --revision REV: the revision the database must be at (the deployment's target), a failed
 * schema.revision check otherwise: at the backup's own revision the database would prove
 * unchanged, which is no migration.
 * When content or relationship fingerprints differ, up to a few differing rows of each such table
 * are named (hooks/lib/proof/locate.ts: a scratch restore of the backup's data).
 * --use-recorded: when migrate proved this database against this backup (its record on
 * alembic_version names the backup and the revision the database is at), its checks are reported
 * instead of being run again; otherwise they run.
 */
import type { Client } from "pg";
import { parseStep, requireFlag } from "../lib/args";
import { connect, connectionFromEnv } from "../lib/database/connection";
import { StepError, UsageError } from "../lib/errors";
import { locateDifferingRows, type DifferingRows } from "../lib/proof/locate";
import type { Check } from "../../common/types";
import { loadManifest, type Manifest } from "../lib/proof/manifest";
import { REVISION_RE } from "../lib/migrationSource";
import { progress } from "../lib/progress";
import { prove, proofOptions } from "../lib/proof/proof";
import { currentRevision, readRecord } from "../lib/database/revision";
import { quoteTable, tablesFromEnv } from "../lib/database/tables";

export type Part = "schema" | "data" | "performance";
export const PARTS: Part[] = ["schema", "data", "performance"];

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values, positionals } = parseStep("validate", args);
  const parts = positionals.length > 0 ? [...new Set(positionals as Part[])] : PARTS;
  const proofOpts = proofOptions("validate", values);
  if (values.revision !== undefined && !REVISION_RE.test(values.revision)) {
    throw new UsageError(`validate: --revision "${values.revision}" is not an alembic revision id`, "pass the deployment's target revision, e.g. --revision 001_uuid_schema_migration");
  }
  const maxMs = values["max-ms"] === undefined ? undefined : Number(values["max-ms"]);
  if (maxMs !== undefined && !(maxMs > 0)) throw new UsageError(`validate: --max-ms "${values["max-ms"]}" is not a positive number`, "pass e.g. --max-ms 200");

  const proving = parts.includes("schema") || parts.includes("data");
  let manifest: Manifest | null = null;
  if (proving) {
    manifest = await loadManifest(requireFlag("validate", values.manifest, "--manifest", "URI (the manifestUri printed by backup)"), env);
  } else if (values.manifest) {
    manifest = await loadManifest(values.manifest, env);
  }
  const log = progress("validate");
  const client = await connect(connectionFromEnv(env), { applicationName: "vibes-hooks validate" });
  const checks: Check[] = [];
  let recordedAt: string | undefined;
  let differingRows: DifferingRows[] | null = null;
  try {
    if (proving) {
      const recorded = values["use-recorded"] ? await recordedChecks(client, manifest!) : undefined;
      if (recorded) {
        recordedAt = recorded.at;
        log(`migrate proved revision ${recorded.revision} against this backup at ${recorded.at}: its ${recorded.checks.length} checks are reported, not run again`);
        checks.push(...recorded.checks);
      } else {
        log(parts.includes("data") ? "schema and data (one snapshot)" : "schema");
        checks.push(...(await prove(client, manifest!, { ...proofOpts, data: parts.includes("data") })).checks);
        differingRows = await locateDifferingRows(client, connectionFromEnv(env), manifest!, checks.filter((c) => !c.ok), env, log);
      }
      if (values.revision !== undefined) {
        const revision = await currentRevision(client);
        checks.unshift({ name: "schema.revision", ok: revision === values.revision, detail: `${revision ?? "no revision"}${revision === values.revision ? "" : ` (expected ${values.revision})`}` });
      }
      const wanted = parts.filter((p) => p !== "performance");
      if (wanted.length === 1) checks.splice(0, checks.length, ...checks.filter((c) => c.name.startsWith(`${wanted[0]}.`) || c.name === "schema.revision"));
    }
    if (parts.includes("performance")) {
      log("performance (ANALYZE, then EXPLAIN)");
      checks.push(...(await performanceChecks(client, manifest ? Object.keys(manifest.tables) : tablesFromEnv(env), maxMs)));
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  const failed = checks.filter((c) => !c.ok);
  const summary = `${parts.join("+")}: ${checks.length - failed.length}/${checks.length} checks passed${recordedAt ? ` (by migrate at ${recordedAt})` : ""}`;
  for (const c of checks) log(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
  if (failed.length > 0) {
    throw new StepError(`validation failed: ${failed.map((c) => c.name).join(", ")}`,
      "see the failed checks; during a deployment, roll back (migrate --to the previous revision) or restore the backup",
      { details: { checks, summary, ...(differingRows ? { differingRows } : {}) } });
  }
  return { checks, summary, ...(recordedAt ? { recordedAt } : {}) };
}

/** The checks migrate recorded, when they are of this backup and the revision the database is at. */
async function recordedChecks(client: Client, manifest: Manifest): Promise<{ revision: string; at: string; checks: Check[] } | undefined> {
  const [record, revision] = [await readRecord(client), await currentRevision(client)];
  const v = record?.validation;
  if (!record || !v || record.revision !== revision || v.backupSha256 !== manifest.dump.sha256) return undefined;
  return { revision: record.revision, at: v.at, checks: v.checks };
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
    await client.query(`ANALYZE ${tables.map(quoteTable).join(", ")}`);
  } catch (err) {
    throw new StepError(`ANALYZE failed: ${(err as Error).message}`, "run validate performance as the tables' owner");
  }
  const analyze = maxMs !== undefined;
  const pages = async (t: string) =>
    Number((await client.query("SELECT relpages FROM pg_class WHERE oid = to_regclass($1)", [quoteTable(t)])).rows[0].relpages);
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
