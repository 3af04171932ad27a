/**
 * backup: pg_dump -Fc streamed to the backup store, SHA-256 and size computed on the way, the
 * same bytes read in full by `pg_restore -f /dev/null` while they stream (a truncated or corrupt
 * archive fails there; `pg_restore --list` would pass it), then a manifest beside the dump.
 *
 * The manifest's counts and fingerprints are taken in the very snapshot pg_dump uses
 * (pg_export_snapshot + --snapshot), so they describe exactly what the dump holds.
 * Any failure removes what was written: nothing half-done is ever reported as a backup.
 */
import { parseStep } from "../lib/args";
import { createBackup } from "../lib/storage/backup";
import { connectionFromEnv } from "../lib/database/connection";
import { UsageError } from "../lib/errors";
import { openBackupStore } from "../lib/storage/storage";
import { tablesFromEnv } from "../lib/database/tables";

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseStep("backup", args);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(values.label)) {
    throw new UsageError(`backup: --label "${values.label}" may only hold letters, digits, . _ -`, "pass what the backup is for, e.g. --label for-001_uuid_schema_migration");
  }
  const settings = connectionFromEnv(env);
  const store = openBackupStore(env);
  return createBackup(settings, store, tablesFromEnv(env), env, {
    label: values.label,
    lockWaitTimeout: values["lock-wait-timeout"],
  });
}
