// Back to the verified backup after a failure inside the maintenance window: the kept copy swapped
// in (seconds at any size, exact), or else the backup restored; then proven, schema, data and ids,
// against the manifest. After a failure past the migration (validation, the release, its health
// gate, the smoke tests) the app is then restarted on the database it ran on before.
import { runRestartCommand, waitHealthy, type Health } from "./app/appRestart";
import { connectionFromEnv, withClient } from "./database/connection";
import { errorMessage, StepError } from "./errors";
import { appUrlFromEnv } from "./app/http";
import { loadManifest } from "./proof/manifest";
import { parseLockWait, withMigrationLock } from "./database/migrationLock";
import { restoreBackup } from "./storage/restore";
import { swapInCopy } from "./storage/swapInCopy";

/** How the database went back, for the message and the result. */
export interface RolledBack {
  how: "swapped-in" | "restored";
  backupUri: string;
  failedDatabase?: string;
  swapMs?: number;
  proofMs?: number;
  checks: number;
  app?: { restarted: boolean; health?: Health };
}

/**
 * The rollback after a failure past the migration (VIBES_ROLLBACK_ON_FAILURE, set by the program
 * for the steps inside the window): the kept copy of this run's backup (VIBES_BACKUP_SHA256)
 * swapped in, else the backup (VIBES_ROLLBACK_MANIFEST) restored, under the migration lock; then
 * the app restarted on it and its health awaited.
 */
export async function rollBackAfterFailure(env: NodeJS.ProcessEnv, log: (m: string) => void): Promise<RolledBack> {
  const settings = connectionFromEnv(env);
  let back: RolledBack;
  const swapped = await swapInCopy(settings, env, env.VIBES_BACKUP_SHA256 || undefined, log);
  if ("unavailable" in swapped) {
    const manifestUri = env.VIBES_ROLLBACK_MANIFEST;
    if (!manifestUri) throw new StepError(`no swap (${swapped.unavailable}) and VIBES_ROLLBACK_MANIFEST is not set`, "restore the backup by hand: vibes-hooks restore --uri <backupObjectUri> --force");
    const uri = (await loadManifest(manifestUri, env, { olderFormats: true })).dump.uri;
    log(`no swap (${swapped.unavailable}); restoring ${uri}`);
    const restored = await withClient(settings, "rollback (lock)", (lock) =>
      withMigrationLock(lock, parseLockWait("rollback", undefined), log, () => restoreBackup(settings, uri, env, { force: true, log })));
    back = { how: "restored", backupUri: uri, failedDatabase: restored.failedDatabase, checks: restored.checks.length };
  } else {
    back = { how: "swapped-in", backupUri: swapped.copy.uri, failedDatabase: swapped.failedDatabase, swapMs: swapped.swapMs, proofMs: swapped.proofMs, checks: swapped.checks.length };
  }
  if (!env.VIBES_RESTART_COMMAND) return back;
  // The app's sessions went with the database it ran on: restarted, it serves the one swapped in.
  try {
    await runRestartCommand(env, 300, log);
    back.app = { restarted: true };
    const timeoutSeconds = Number(env.VIBES_HEALTH_TIMEOUT_SECONDS) > 0 ? Number(env.VIBES_HEALTH_TIMEOUT_SECONDS) : 120;
    if (env.VIBES_APP_URL) back.app.health = await waitHealthy(appUrlFromEnv(env), timeoutSeconds * 1000, 1000, log);
  } catch (err) {
    throw new StepError(`${describe(back)}, but the app did not come back on it: ${errorMessage(err)}`,
      "restart the app by hand (config restartCommand) and check /health; maintenance mode is still on", { details: { rollback: back } });
  }
  return back;
}

export function describe(back: RolledBack): string {
  const how = back.how === "swapped-in"
    ? `the verified copy of ${back.backupUri} was swapped in (${back.swapMs} ms)`
    : `${back.backupUri} was restored`;
  const kept = back.failedDatabase ? `; the database it replaced is kept as ${back.failedDatabase}` : "";
  return `rolled back: ${how}, its schema, data and ids proven equal to the backup's (${back.checks} checks)${kept}`;
}
