// During `pulumi preview`, read (never write) the database and log what `pulumi up` would do:
// current revision -> target, rows, size, backup destination. Unreachable: warn and go on.
import * as pulumi from "@pulumi/pulumi";
import type { Client } from "pg";
import { DeployConfig } from "./config";
import { connect, connectionFromEnv } from "./hooks/lib/database/connection";
import { formatBytes } from "./common/text";

const CONNECT_TIMEOUT_MS = 5000;

export async function logPlanSummary(config: DeployConfig): Promise<void> {
  const password = await new Promise<string>((resolve) => config.database.password.apply((p) => resolve(p)));
  let client: Client | undefined;
  try {
    // The hooks' own connection code: the same sslmode and CA handling as at `pulumi up`.
    const settings = connectionFromEnv({ DATABASE_URL: config.database.url, VIBES_DB_PASSWORD: password, PGSSLROOTCERT: config.database.sslRootCert });
    client = await connect(settings, { connectTimeoutMs: CONNECT_TIMEOUT_MS, statementTimeout: CONNECT_TIMEOUT_MS, applicationName: "vibes-db-deploy preview" });
    await client.query("BEGIN TRANSACTION READ ONLY");
    const hasVersionTable = await client.query<{ present: boolean }>("SELECT to_regclass('alembic_version') IS NOT NULL AS present");
    const revision = hasVersionTable.rows[0].present
      ? (await client.query<{ version_num: string }>("SELECT version_num FROM alembic_version")).rows.map((r) => r.version_num).join(",") || "none"
      : "none (no alembic_version table)";
    // Planner estimates, not count(*): a preview must not scan big tables.
    const tables = await client.query<{ relname: string; rows: string }>(
      "SELECT c.relname, c.reltuples::bigint AS rows FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname = ANY($1) ORDER BY c.relname",
      [config.tables],
    );
    const size = await client.query<{ bytes: string }>("SELECT pg_database_size(current_database()) AS bytes");
    await client.query("ROLLBACK");
    const rows = tables.rows.map((t) => `${t.relname} ~${Math.max(Number(t.rows), 0)}`).join(", ") || "none of the covered tables";
    pulumi.log.info(
      [
        `plan: schema revision ${revision} -> ${config.migration.targetRevision}` +
          ` (migration files sha256 ${config.migration.filesSha256.slice(0, 12)})`,
        `plan: rows (estimates) ${rows}; database size ${formatBytes(Number(size.rows[0].bytes))};` +
          " free space is checked by preflight at up",
        `plan: backup to ${backupDestination(config)}` +
          (config.snapshot ? `; RDS snapshot ${config.snapshot.identifierPrefix}-<backup sha256>` : ""),
      ].join("\n"),
    );
  } catch (err) {
    pulumi.log.warn(`plan summary skipped: cannot read the database (${(err as Error).message}); preview goes on`);
  } finally {
    await client?.end().catch(() => undefined);
  }
}

function backupDestination(config: DeployConfig): string {
  const b = config.backup;
  return b.target === "s3" ? `s3://${b.bucketName}/${b.prefix}` : `${b.dir}/ (local)`;
}
