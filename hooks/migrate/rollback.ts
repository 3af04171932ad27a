// Back to the backup after a failure: the verified copy swapped in where one is kept (seconds at
// any size, exact), else the down command and, unless that is proven exact, the backup restored.
import { withClient } from "../lib/database/connection";
import { errorMessage, StepError } from "../lib/errors";
import { locateDifferingRows } from "../lib/proof/locate";
import type { Check } from "../../common/types";
import { restoreBackup } from "../lib/storage/restore";
import { currentRevision } from "../lib/database/revision";
import { stderrSummary } from "../lib/processes/run";
import { swapInCopy } from "../lib/storage/swapInCopy";
import { failedOf, summarize, type MigrateRun } from "./run";

/** How long naming the differing rows may take once the copy is swapped in: it is a help, and the
 * failed database is kept for a closer look. */
const LOCATE_AFTER_SWAP_MS = 10_000;

/**
 * Brings the database back to the manifest's revision after a failure: the verified copy
 * swapped in where verify-restore kept one (seconds at any size, exact; the failed database is
 * kept), else the down command (after a failed migration up; going down has no way back but the
 * backup), then, unless schema, data and ids are all proven as in the backup, the verified
 * backup itself. The message says "back at" only when that proof passed.
 */
export async function rollBack(run: MigrateRun, failure: string, failedChecks: Check[], tryDownCommand: boolean): Promise<never> {
  const { client, settings, env, log, manifest, manifestUri } = run;
  const { acceptRenumberedIds } = run.opts;
  const revisionBefore = manifest.revision;
  let rolledBack = false;
  let restoredFromBackup = false;
  let problem = "";
  let proof: { checks: Check[]; revision: string | null };
  let differingRows: Awaited<ReturnType<typeof locateDifferingRows>> = null;
  const facts = () => ({ revisionBefore, failedChecks, rolledBack, restoredFromBackup, ...(differingRows ? { differingRows } : {}), ...run.backupFacts() });
  const swapped = await swapInCopy(settings, env, manifest.dump.sha256, log).catch((err: unknown) => {
    // Begun and not finished: the database is as the failure left it, or the copy in and unproven.
    const next = err instanceof StepError ? err.next : "keep maintenance mode on; re-run migrate: it proves the database and rolls back again";
    throw new StepError(`${failure}. The swap to the verified copy failed: ${errorMessage(err)}`, next, { details: { ...facts(), revisionAfter: null, changed: true } });
  });
  if (!("unavailable" in swapped)) {
    // Which rows differ, read in the failed database, kept as it was, against the copy now in its
    // place (proven equal to the backup: no scratch restore): after the rollback, not before it.
    differingRows = await withClient({ ...settings, database: swapped.failedDatabase }, "migrate (locate)",
      (failedDb) => locateDifferingRows(failedDb, settings, manifest, failedChecks, env, log, { database: settings, budgetMs: LOCATE_AFTER_SWAP_MS })).catch((err) => {
      log(`warning: the differing rows could not be located: ${errorMessage(err)}`);
      return null;
    });
    throw new StepError(`${failure}. The database is back at ${revisionBefore ?? "no revision"}: the verified copy of the backup was swapped in ` +
      `(${swapped.swapMs} ms) and its schema, data and ids proven equal to the backup's (${swapped.checks.length} checks, ${swapped.proofMs} ms); ` +
      `the failed database is kept as ${swapped.failedDatabase} (docs/operations.md: inspect it, then drop it)`,
      "keep maintenance mode on or turn it off to serve the old version; fix the migration and deploy again",
      { details: { ...facts(), restoredFromBackup: true, swappedIn: true, failedDatabase: swapped.failedDatabase, swapMs: swapped.swapMs, proofMs: swapped.proofMs, revisionAfter: revisionBefore, changed: false, idsRenumbered: false } });
  }
  log(`no swap (${swapped.unavailable}): rolling back ${tryDownCommand ? "with the down command" : "from the backup"}`);
  // Which rows differ, read while the database still holds them (before the down command).
  differingRows = await locateDifferingRows(client, settings, manifest, failedChecks, env, log);
  const renumberedOnly = (checks: Check[]) => failedOf(checks).length > 0 && failedOf(checks).every((c) => c.name.startsWith("data.ids."));
  const accepted = (p: typeof proof) => p.revision === revisionBefore && (failedOf(p.checks).length === 0 || (acceptRenumberedIds && renumberedOnly(p.checks)));
  try {
    const revisionFailed = await currentRevision(client);
    if (revisionFailed !== revisionBefore && tryDownCommand) {
      try {
        const res = await run.runStep("down", revisionFailed, revisionBefore ?? "base", "roll back");
        rolledBack = res.code === 0;
        if (!rolledBack) problem = `the down command failed (${res.timedOut ? "timed out" : `exit ${res.code}`}): ${stderrSummary(res.stderr) || "no error output"}`;
      } catch (err) {
        problem = `the down command could not run: ${errorMessage(err)}`;
      }
      if (problem) log(problem);
    }
    proof = await run.proveOrFailure();
    if (acceptRenumberedIds && proof.revision === revisionBefore && renumberedOnly(proof.checks)) {
      // Other ids: equal ids no longer stand for equal links, so the links are proven themselves.
      proof = await run.proveOrFailure({ relationships: true });
    }
    if (!accepted(proof)) {
      log(`after the ${rolledBack ? "down command" : "failure"}: revision ${proof.revision ?? "none"}; ${summarize(proof.checks) || "schema and data match"}; restoring the backup ${manifest.dump.uri}`);
      try {
        // It proves what it restored, on sessions of its own (a swap in ends ours).
        const restored = await restoreBackup(settings, manifest.dump.uri, env, { force: true, log });
        restoredFromBackup = true;
        proof = { checks: restored.checks, revision: revisionBefore };
      } catch (err) {
        problem += `${problem ? "; " : ""}restoring ${manifest.dump.uri} failed: ${errorMessage(err)}`;
        proof = await run.proveOrFailure();
      }
    }
  } catch (err) {
    // The session is lost, or a check cannot run: where the database is cannot be told here.
    throw new StepError(`${failure}. The rollback could not finish (${errorMessage(err)}${problem ? `; ${problem}` : ""}): the database's state is unknown`,
      `keep maintenance mode on; restore the backup by hand (vibes-hooks restore --uri ${manifest.dump.uri} --force) and check it (vibes-hooks validate schema data --manifest ${manifestUri}). ` +
        "Re-running migrate helps only if the database is at the target or untouched: it takes the backup again when the data differs from it",
      { details: { ...facts(), revisionAfter: null, changed: true } });
  }
  const how = restoredFromBackup ? `restored from the backup ${manifest.dump.uri}` : rolledBack ? "rolled back by the down command" : "left unchanged by the failed command";
  if (!accepted(proof)) {
    throw new StepError(`${failure}. The database is at ${proof.revision ?? "no revision"} and does NOT match the backup (${summarize(proof.checks) || "revision differs"})${problem ? `; ${problem}` : ""}`,
      `keep maintenance mode on; restore the backup by hand (vibes-hooks restore --uri ${manifest.dump.uri} --force) and check it (vibes-hooks validate schema data --manifest ${manifestUri}); ` +
        "if the dump itself cannot be used (checksum mismatch), restore the RDS snapshot taken before the migration (docs/operations.md)",
      { details: { ...facts(), revisionAfter: proof.revision, changed: true } });
  }
  const renumbered = failedOf(proof.checks).length > 0;
  const state = renumbered
    ? `the database is back at ${revisionBefore ?? "no revision"} with its schema and data proven equal to the backup's (${how}), but its ids were RENUMBERED (${summarize(proof.checks)}): ` +
      "links, URLs and other systems holding the old ids no longer find their rows (accepted by --accept-renumbered-ids)"
    : `the database is back at ${revisionBefore ?? "no revision"}, its schema, data and ids proven equal to the backup's (${how})`;
  throw new StepError(`${failure}. ${state}`,
    "keep maintenance mode on or turn it off to serve the old version; fix the migration and deploy again",
    { details: { ...facts(), revisionAfter: proof.revision, changed: false, idsRenumbered: renumbered } });
}
