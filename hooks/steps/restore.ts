/**
 * restore --uri URI [--force]: the guide's "Database Recovery". Checks the dump's SHA-256
 * against its manifest, refuses a database that holds anything (any table, view or sequence
 * outside the system schemas) unless --force (then replaces the backup's objects in one
 * transaction: --clean --if-exists --single-transaction), and compares the result with the
 * manifest. It holds the migration lock meanwhile: no migrate runs while it restores.
 */
import { parseFlags, requireFlag } from "../lib/args";
import { fetchVerified, pgRestoreInto } from "../lib/backupFile";
import { parseLockWait, withMigrationLock } from "../lib/migrationLock";
import { connect, connectionFromEnv, type ConnectionSettings } from "../lib/connection";
import { StepError } from "../lib/errors";
import { isCurrent, type Check } from "../lib/manifest";
import { assertToolCanHandle, pgTool } from "../lib/pgTools";
import { progress } from "../lib/progress";
import { compareWithManifest } from "./verify-restore";

export interface RestoreResult extends Record<string, unknown> {
  uri: string;
  sha256: string;
  database: string;
  checks: Check[];
  /** False for a backup of an earlier manifest format: counts, schema and revision only. */
  fingerprintsCompared: boolean;
}

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseFlags("restore", args, {
    uri: { type: "string" },
    force: { type: "boolean", default: false },
    "lock-wait-seconds": { type: "string" },
  });
  const uri = requireFlag("restore", values.uri, "--uri", "URI (the uri printed by backup)");
  const lockWaitMs = parseLockWait("restore", values["lock-wait-seconds"]);
  const settings = connectionFromEnv(env);
  const log = progress("restore");
  // A restore during a migrate (or its rollback) would mix the two: it waits for the lock migrate
  // holds, on a session of its own (migrate's rollback calls restoreBackup holding it already).
  const lock = await connect(settings, { applicationName: "vibes-hooks restore (lock)" });
  try {
    return await withMigrationLock(lock, lockWaitMs, log, () => restoreBackup(settings, uri, env, { force: values.force, log }));
  } finally {
    await lock.end().catch(() => undefined);
  }
}

/**
 * Restores the backup at `uri` into settings.database and checks it against the manifest.
 * migrate uses it as its last resort when the down command cannot bring the data back.
 */
export async function restoreBackup(
  settings: ConnectionSettings,
  uri: string,
  env: NodeJS.ProcessEnv,
  opts: { force: boolean; log?: (msg: string) => void },
): Promise<RestoreResult> {
  const log = opts.log ?? progress("restore");
  const dump = await fetchVerified(uri, env, log);
  try {
    const tables = Object.keys(dump.manifest.tables);
    const client = await connect(settings, { applicationName: "vibes-hooks restore" });
    try {
      await assertToolCanHandle(pgTool("pg_restore", env), env, client);
      // Anything in the database counts, not only the backup's tables: a restore must not mix a
      // backup into another database, nor be refused late by objects that depend on its tables.
      const present = await client.query(
        `SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_%'
            -- an extension's own relations (pg_stat_statements' view) are not the database's content
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
          ORDER BY 1`);
      const existing = present.rows.map((r) => r.name as string);
      const named = existing.length > 8 ? `${existing.slice(0, 8).join(", ")} and ${existing.length - 8} more` : existing.join(", ");
      if (existing.length > 0 && !opts.force) {
        throw new StepError(`${settings.database} is not empty: it has ${named}`,
          `to replace the backup's tables (${tables.join(", ")}) with its contents pass --force (take a backup of the current state first if it matters)`);
      }
      log(existing.length > 0 ? `replacing the backup's objects in ${settings.database} (it has ${named})` : `restoring into ${settings.database}`);
      const extra = existing.length > 0 ? ["--clean", "--if-exists", "--single-transaction"] : ["--single-transaction"];
      await pgRestoreInto(settings, dump.path, env, extra,
        "the restore was rolled back (single transaction), nothing changed: fix the cause shown (an object outside the backup that depends on its tables, such as a view, must be dropped first; locks: stop the app) and rerun");
      const checks = await compareWithManifest(client, dump.manifest, { privileges: true });
      const failed = checks.filter((c) => !c.ok);
      if (failed.length > 0) {
        throw new StepError(`the restored database differs from the manifest: ${failed.map((c) => c.name).join(", ")}`,
          "check for writers (maintenance mode) and objects outside the backup; inspect the checks", { details: { checks } });
      }
      log(`restored; ${checks.length} checks match the manifest`);
      return { uri, sha256: dump.sha256, database: settings.database, checks, fingerprintsCompared: isCurrent(dump.manifest) };
    } finally {
      await client.end().catch(() => undefined);
    }
  } finally {
    await dump.cleanup();
  }
}
