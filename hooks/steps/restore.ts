/**
 * restore --uri URI [--force]: the guide's "Database Recovery". Checks the dump's SHA-256
 * against its manifest, refuses a database that holds anything (any table, view or sequence
 * outside the system schemas) unless --force, and compares the result with the manifest. With
 * --force it restores into a fresh database and swaps that in (the one replaced is kept as
 * `<db>_failed_<stamp>`), or where a swap cannot be exact replaces the backup's objects in one
 * transaction, after saving and removing what is in their way (hooks/lib/storage/restore.ts). It holds
 * the migration lock meanwhile: no migrate runs while it restores.
 */
import { parseStep, requireFlag } from "../lib/args";
import { parseLockWait, withMigrationLock } from "../lib/database/migrationLock";
import { connect, connectionFromEnv } from "../lib/database/connection";
import { progress } from "../lib/progress";
import { restoreBackup } from "../lib/storage/restore";

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseStep("restore", args);
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
