// `preflight`: everything the deployment assumes, checked before anything changes. It collects
// every unmet expectation (each with its fix) instead of stopping at the first. With --target
// (and migrate's --mode / --sql-dir) it also reads the migration files' history: one head, the
// target among the revisions.
import { statfs } from "node:fs/promises";
import type { Client } from "pg";
import { parseStep } from "../lib/args";
import { withoutSecrets } from "../lib/database/childEnv";
import { connect, connectionFromEnv, type ConnectionSettings } from "../lib/database/connection";
import { swapObstacles } from "../lib/database/databaseSwap";
import { StepError, UsageError } from "../lib/errors";
import { appUrlFromEnv, HttpUnreachable, request } from "../lib/app/http";
import { MIN_SERVER_MAJOR } from "../lib/proof/manifest";
import { quoteTable, tablesFromEnv, uncoveredProblem, uncoveredReferencingTables } from "../lib/database/tables";
import { pgTool, pgToolMajor, serverMajor } from "../lib/database/pgTools";
import { formatBytes } from "../../common/text";
import { progress } from "../lib/progress";
import { historyProblem, REVISION_RE, sourceFromFlags } from "../lib/migrationSource";
import { currentRevision } from "../lib/database/revision";

interface Problem {
  problem: string;
  fix: string;
}

function nonNegative(value: string | undefined, flag: string, example: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new UsageError(`preflight: ${flag} must be a non-negative number, not "${value}"`, `pass ${flag} ${example}`);
  }
  return n;
}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "::1"]);

/** Free bytes of the server's data directory, when the server runs here and we may read it. */
async function localDataDirFree(client: Client, settings: ConnectionSettings): Promise<number | null> {
  if (!settings.host.startsWith("/") && !LOCAL_HOSTS.has(settings.host)) return null;
  let dir: string | null = null;
  try {
    // Readable only by superusers and pg_read_all_settings members.
    dir = (await client.query("SELECT current_setting('data_directory') AS d")).rows[0].d;
  } catch {
    return null;
  }
  try {
    const fs = await statfs(dir!);
    return Number(fs.bavail) * Number(fs.bsize);
  } catch {
    return null;
  }
}

/** Free space estimated from the allocated storage (RDS): what every database does not use. WAL and
 * temporary files are not counted, so the estimate errs on the generous side; logged as such. */
async function storageFree(client: Client, storageBytes: number, log: (msg: string) => void): Promise<number> {
  const used = Number((await client.query("SELECT sum(pg_database_size(oid))::bigint AS b FROM pg_database")).rows[0].b);
  log(`free space estimated from the allocated storage: ${formatBytes(storageBytes)} - ${formatBytes(used)} in all databases`);
  return Math.max(storageBytes - used, 0);
}

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseStep("preflight", args);
  const target = values.target;
  if (target !== undefined && !REVISION_RE.test(target)) {
    throw new UsageError(`preflight: --target "${target}" is not an alembic revision id`, "pass the deployment's target revision, e.g. --target 001_uuid_schema_migration");
  }
  // Bad flags fail here; what the files hold is a problem below.
  const source = target === undefined ? undefined : sourceFromFlags("preflight", { mode: values.mode, "sql-dir": values["sql-dir"] }, env);
  const expected = values["expect-revision"] ?? [];
  const minFreeRatio = nonNegative(values["min-free-ratio"], "--min-free-ratio", "1.5") ?? 1.5;
  const givenFree = nonNegative(values["data-dir-free-bytes"], "--data-dir-free-bytes", "50000000000");
  const storageBytes = nonNegative(values["storage-bytes"], "--storage-bytes", "107374182400");
  const tables = tablesFromEnv(env);
  const settings = connectionFromEnv(env);
  const appUrl = appUrlFromEnv(env);
  const log = progress("preflight");
  const problems: Problem[] = [];

  const result: Record<string, unknown> = {
    serverVersion: null, serverMajor: null, pgDumpMajor: null, revision: null,
    tables: {}, databaseBytes: null, freeBytes: null, app: { health: null, status: null },
  };

  let client: Client | undefined;
  try {
    client = await connect(settings, { statementTimeout: "5min", lockTimeout: "5s", applicationName: "vibes-hooks preflight" });
  } catch (err) {
    if (!(err instanceof StepError)) throw err;
    problems.push({ problem: err.message, fix: err.next });
  }
  if (client) {
    try {
      result.serverVersion = (await client.query("SHOW server_version")).rows[0].server_version;
      const major = await serverMajor(client);
      result.serverMajor = major;
      log(`server PostgreSQL ${result.serverVersion}`);
      if (major < MIN_SERVER_MAJOR) {
        problems.push({
          problem: `the server is PostgreSQL ${major}; the backup manifest's fingerprints need PostgreSQL ${MIN_SERVER_MAJOR} or later`,
          fix: `upgrade the server to PostgreSQL ${MIN_SERVER_MAJOR} or later before this deployment`,
        });
      }

      const revision = await currentRevision(client);
      result.revision = revision;
      if (expected.length > 0 && (revision === null || !expected.includes(revision))) {
        problems.push({
          problem: `database revision is ${revision ?? "none (no alembic_version table)"}, expected ${expected.join(" or ")}`,
          fix: "check DATABASE_URL points at the right database; migrate it to the expected revision or plan the deployment from its revision",
        });
      }

      const sizes = await client.query(
        `SELECT t AS name, to_regclass(q)::oid AS oid, pg_total_relation_size(to_regclass(q)) AS bytes
           FROM unnest($1::text[], $2::text[]) AS v(t, q)`, [tables, tables.map(quoteTable)]);
      const found: Record<string, { rows: number; bytes: number }> = {};
      const missing: string[] = [];
      for (const row of sizes.rows) {
        if (row.bytes === null) {
          missing.push(row.name);
          continue;
        }
        const count = await client.query(`SELECT count(*)::bigint AS n FROM ${quoteTable(row.name)}`);
        found[row.name] = { rows: Number(count.rows[0].n), bytes: Number(row.bytes) };
        log(`table ${row.name}: ${found[row.name].rows} rows, ${formatBytes(found[row.name].bytes)}`);
      }
      result.tables = found;
      if (missing.length > 0) {
        problems.push({
          problem: `table${missing.length > 1 ? "s" : ""} missing: ${missing.join(", ")}`,
          fix: "check DATABASE_URL points at the Vibes database and VIBES_TABLES lists its tables",
        });
      }
      const uncovered = uncoveredProblem(await uncoveredReferencingTables(client, sizes.rows.filter((r) => r.oid !== null).map((r) => Number(r.oid))));
      if (uncovered) problems.push(uncovered);

      const databaseBytes = Number((await client.query("SELECT pg_database_size(current_database()) AS b")).rows[0].b);
      result.databaseBytes = databaseBytes;
      const freeBytes = givenFree ?? (storageBytes !== undefined ? await storageFree(client, storageBytes, log) : await localDataDirFree(client, settings));
      result.freeBytes = freeBytes;
      if (freeBytes === null) {
        log("free space on the server: unknown (pass --data-dir-free-bytes, e.g. from CloudWatch FreeStorageSpace, or --storage-bytes)");
      } else if (freeBytes < minFreeRatio * databaseBytes) {
        // ALTER COLUMN ... TYPE rewrites each table and its indexes inside one transaction.
        problems.push({
          problem: `free space ${formatBytes(freeBytes)} is less than ${minFreeRatio} x the database (${formatBytes(databaseBytes)})`,
          fix: "grow the storage (RDS: modify allocated storage) or free space before migrating; the migration rewrites every covered table",
        });
      }

      // Reported, never a problem: where a swap cannot be exact the rollback restores instead. The
      // copy needs the database's size beside what the migration needs.
      const obstacles = await swapObstacles(client, env, settings.database, freeBytes === null ? null : freeBytes - minFreeRatio * databaseBytes);
      result.rollback = obstacles.length === 0
        ? { strategy: "swap", obstacles }
        : { strategy: "restore", obstacles };
      log(obstacles.length === 0
        ? "rollback: by swapping in the verified copy (verify-restore --keep-copy)"
        : `rollback: by restoring the backup, as a swap cannot be exact here: ${obstacles.join("; ")}`);

      const pgDump = pgTool("pg_dump", env);
      try {
        const dumpMajor = await pgToolMajor(pgDump, env);
        result.pgDumpMajor = dumpMajor;
        if (dumpMajor < (result.serverMajor as number)) {
          problems.push({
            problem: `pg_dump is version ${dumpMajor} but the server is PostgreSQL ${result.serverMajor}`,
            fix: `install PostgreSQL ${result.serverMajor} client programs and point VIBES_PG_DUMP (or VIBES_PG_BIN) at them`,
          });
        }
      } catch (err) {
        if (!(err instanceof StepError)) throw err;
        problems.push({ problem: err.message, fix: err.next });
      }
    } finally {
      await client.end();
    }
  }

  if (source && target !== undefined) {
    try {
      // Read once here, before the window (migrate reuses it: hooks/lib/migrationSource.ts).
      const history = await source.history({ env: withoutSecrets(env), timeoutMs: 60_000, log });
      const problem = historyProblem(source, history, target);
      if (problem) problems.push(problem);
      result.migrationHeads = history.heads;
    } catch (err) {
      if (!(err instanceof StepError)) throw err;
      problems.push({ problem: err.message, fix: err.next });
    }
  }

  const app = result.app as { health: unknown; status: unknown };
  for (const path of ["/health", "/api/v1/status"]) {
    try {
      const res = await request(appUrl, path, { retries: 2 });
      const body = res.body as { status?: unknown; schema_revision?: unknown } | null;
      if (path === "/health") app.health = body ?? { httpStatus: res.status };
      else app.status = body ?? { httpStatus: res.status };
      const healthy = res.status === 200 && (path !== "/health" || body?.status === "ok");
      if (!healthy) {
        problems.push({ problem: `app ${path} answered HTTP ${res.status}`, fix: "check the app's log and its database connection before deploying" });
      } else if (path === "/api/v1/status" && client && body?.schema_revision !== undefined && body.schema_revision !== result.revision) {
        problems.push({
          problem: `the app reports schema revision ${body.schema_revision} but DATABASE_URL has ${result.revision}`,
          fix: "the app and the deployment use different databases: make DATABASE_URL name the app's database",
        });
      }
    } catch (err) {
      if (!(err instanceof HttpUnreachable)) throw err;
      problems.push({ problem: `app does not answer: ${err.message}`, fix: "start the app or fix VIBES_APP_URL" });
    }
  }

  if (problems.length > 0) {
    throw new StepError(`${problems.length} unmet expectation${problems.length > 1 ? "s" : ""}: ${problems.map((p) => p.problem).join("; ")}`,
      problems.map((p) => p.fix).join("; "), { details: { ...result, problems } });
  }
  log("all expectations met");
  return result;
}
