// The check that opens the window: nothing changed since the backup (taken while the app still
// served), exactly; else the backup is taken again inside the window and relied on instead.
import { createBackup } from "../lib/storage/backup";
import { StepError } from "../lib/errors";
import type { Proof } from "../lib/proof/proof";
import { openBackupStore } from "../lib/storage/storage";
import { verifyBackup } from "../lib/proof/verify";
import { failedOf, summarize, type MigrateRun } from "./run";

/**
 * The schema exactly and every row's content, links and ids against the backup's snapshot. If
 * anything changed, the backup is taken again (and verified by a restore, its copy kept for a
 * swap) inside the window: correctness never depends on the app having been idle.
 */
export async function ensureUnchanged(run: MigrateRun): Promise<Proof> {
  const { log, env, settings } = run;
  log("checking nothing changed since the backup (schema, data and ids, exactly)");
  const first = await run.prove();
  if (failedOf(first.checks).length === 0) return first;
  log(`the database changed since the backup (${summarize(first.checks)}); taking the backup again inside the maintenance window`);
  const retaken = await createBackup(settings, openBackupStore(env), Object.keys(run.manifest.tables), env, { label: `for-${run.to}-retaken`, lockWaitTimeout: run.opts.lockWaitTimeout });
  // The copy kept for a swap is of the old backup: the new one replaces it.
  const verified = await verifyBackup(settings, retaken.uri, env, { log, keepCopy: env.VIBES_ROLLBACK !== "restore" });
  if (verified.keptCopy === null) log(`no copy kept for a swap: ${(verified.swapObstacles as string[]).join("; ")}`);
  await run.relyOn(retaken.manifestUri);
  log(`backup taken again: ${retaken.uri}`);
  const again = await run.prove();
  if (failedOf(again.checks).length > 0) {
    throw new StepError(`the database changed again while the backup was taken again (${summarize(again.checks)}): something still writes`,
      "turn maintenance mode on (or stop what writes to the covered tables), then re-run", { details: run.backupFacts() });
  }
  return again;
}
