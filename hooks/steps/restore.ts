/**
 * restore --uri URI [--force]: the guide's "Database Recovery". Checks the dump's SHA-256
 * against its manifest, refuses a database that already has any of the covered tables unless
 * --force (then replaces them in one transaction: --clean --if-exists --single-transaction),
 * and compares the result with the manifest.
 */
import { parseFlags, requireFlag } from "../lib/args";
import { fetchVerified, pgRestoreInto } from "../lib/backupFile";
import { connect, connectionFromEnv, type ConnectionSettings } from "../lib/connection";
import { StepError } from "../lib/errors";
import { MANIFEST_FORMAT, type Check } from "../lib/manifest";
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
  const { values } = parseFlags("restore", args, { uri: { type: "string" }, force: { type: "boolean", default: false } });
  const uri = requireFlag("restore", values.uri, "--uri", "URI (the uri printed by backup)");
  return restoreBackup(connectionFromEnv(env), uri, env, { force: values.force });
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
      const present = await client.query(
        "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(quote_ident(t)) IS NOT NULL ORDER BY t", [tables]);
      const existing = present.rows.map((r) => r.t as string);
      if (existing.length > 0 && !opts.force) {
        throw new StepError(`${settings.database} is not empty: it has ${existing.join(", ")}`,
          `to replace them with the backup's contents pass --force (take a backup of the current state first if it matters)`);
      }
      log(existing.length > 0 ? `replacing ${existing.join(", ")} in ${settings.database}` : `restoring into ${settings.database}`);
      const extra = existing.length > 0 ? ["--clean", "--if-exists", "--single-transaction"] : ["--single-transaction"];
      await pgRestoreInto(settings, dump.path, env, extra,
        "the restore was rolled back (single transaction): fix the cause shown (locks? stop the app) and rerun");
      const checks = await compareWithManifest(client, dump.manifest);
      const failed = checks.filter((c) => !c.ok);
      if (failed.length > 0) {
        throw new StepError(`the restored database differs from the manifest: ${failed.map((c) => c.name).join(", ")}`,
          "check for writers (maintenance mode) and objects outside the backup; inspect the checks", { details: { checks } });
      }
      log(`restored; ${checks.length} checks match the manifest`);
      return { uri, sha256: dump.sha256, database: settings.database, checks, fingerprintsCompared: dump.manifest.format === MANIFEST_FORMAT };
    } finally {
      await client.end().catch(() => undefined);
    }
  } finally {
    await dump.cleanup();
  }
}
