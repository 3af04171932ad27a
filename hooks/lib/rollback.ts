// Back to the verified backup after a failure inside the maintenance window: the kept copy swapped
// in (seconds at any size, exact), or else the backup restored; then proven, schema, data and ids,
// against the manifest. After a failure past the migration (validation, the release, its health
// gate, the smoke tests) the app is then restarted on the database it ran on before.
import { runRestartCommand, waitHealthy, type Health } from "./app/appRestart";
import { readPhase, readPlan } from "../online/plan";
import { reverseSwap } from "../online/swap";
import { connectionFromEnv, withClient, type ConnectionSettings } from "./database/connection";
import { recordOnlineSwapBack } from "./database/revision";
import { tablesFromEnv } from "./database/tables";
import { errorMessage, StepError } from "./errors";
import { appUrlFromEnv } from "./app/http";
import { loadManifest } from "./proof/manifest";
import { parseLockWait, withMigrationLock } from "./database/migrationLock";
import { restoreBackup } from "./storage/restore";
import { swapInCopy } from "./storage/swapInCopy";

/** How the database went back, for the message and the result. */
export interface RolledBack {
  how: "swapped-in" | "restored" | "swap-reversed";
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
  const back = env.VIBES_ROLLBACK_ON_FAILURE === "online" ? await reverseOnlineSwap(settings, env, log) : await backToBackup(settings, env, log);
  return restartApp(back, env, log);
}

/**
 * Online (migrationStrategy online): the app kept writing since the backup, so going back to it
 * would lose those writes. The swap is reversed instead: the integer columns, kept right by the
 * triggers, take the ids' names again, every write since included.
 */
async function reverseOnlineSwap(settings: ConnectionSettings, env: NodeJS.ProcessEnv, log: (m: string) => void): Promise<RolledBack> {
  return withClient(settings, "rollback (online)", async (client) => {
    const plan = await readPlan(client, tablesFromEnv(env), { idDefault: env.VIBES_ID_DEFAULT === "none" ? null : env.VIBES_ID_DEFAULT || undefined });
    const phase = await readPhase(client, plan);
    if (phase !== "swapped") {
      throw new StepError(`the online change is ${phase}, not swapped: there is no swap to reverse`,
        phase === "expanded" ? "the old schema still serves; re-run the deployment, or drop what expand added with vibes-hooks online rollback" : "check the database (vibes-hooks online status)");
    }
    log("reversing the online swap: the integer ids take their names back, every write since kept");
    const reversed = await reverseSwap(client, plan, { log });
    await recordOnlineSwapBack(client, log);
    return { how: "swap-reversed" as const, backupUri: "", swapMs: reversed.holdMs, checks: 0 };
  });
}

async function backToBackup(settings: ConnectionSettings, env: NodeJS.ProcessEnv, log: (m: string) => void): Promise<RolledBack> {
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
  return back;
}

/** The app's sessions went with the schema it ran on: restarted, it serves the one put back. */
async function restartApp(back: RolledBack, env: NodeJS.ProcessEnv, log: (m: string) => void): Promise<RolledBack> {
  if (!env.VIBES_RESTART_COMMAND) return back;
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
  if (back.how === "swap-reversed") return `rolled back: the online swap was reversed (${back.swapMs} ms of locks), the integer ids back under their names with every write since`;
  const how = back.how === "swapped-in"
    ? `the verified copy of ${back.backupUri} was swapped in (${back.swapMs} ms)`
    : `${back.backupUri} was restored`;
  const kept = back.failedDatabase ? `; the database it replaced is kept as ${back.failedDatabase}` : "";
  return `rolled back: ${how}, its schema, data and ids proven equal to the backup's (${back.checks} checks)${kept}`;
}
