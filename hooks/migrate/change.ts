// The change itself, under the migration lock: where the database stands, the unchanged check,
// the up or down command, the proof of its result; an interrupted earlier run is proven and
// finished the way it would have been.
import { errorMessage, StepError } from "../lib/errors";
import { historyProblem, VERSION_SCHEMA_VARIABLE, type History, type PreparedRun } from "../lib/migrationSource";
import type { Check } from "../../common/types";
import { canWriteRecord, currentRevision, readRecord, recordedMigrationFiles, versionTableSchema, writeRecord } from "../lib/database/revision";
import { stderrSummary } from "../lib/processes/run";
import { tableOids, uncoveredProblem, uncoveredReferencingTables } from "../lib/database/tables";
import { rollBack } from "./rollback";
import { failedOf, summarize, type MigrateRun } from "./run";
import { ensureUnchanged } from "./unchanged";

type Result = Record<string, unknown>;

function isAncestor(history: History, ancestor: string, of: string): boolean {
  const seen = new Set<string>();
  const todo = [...(history.parents.get(of) ?? [])];
  while (todo.length > 0) {
    const rev = todo.pop()!;
    if (rev === ancestor) return true;
    if (!seen.has(rev)) {
      seen.add(rev);
      todo.push(...(history.parents.get(rev) ?? []));
    }
  }
  return false;
}

export async function migrateLocked(run: MigrateRun): Promise<Result> {
  const { client, log, to, source } = run;
  const uncovered = uncoveredProblem(await uncoveredReferencingTables(client, [...(await tableOids(client, Object.keys(run.manifest.tables))).values()]));
  if (uncovered) throw new StepError(uncovered.problem, uncovered.fix);
  // The history (alembic: a Python start) is read beside the unchanged check, which does not need
  // it: that time is inside the maintenance window. Not before the lock: a Ctrl-C while waiting
  // for it must find no command to stop.
  const historyRead = source.history(run.runContext("history")).then((h) => {
    const problem = historyProblem(source, h, to);
    if (problem) throw new StepError(problem.problem, problem.fix);
    return h;
  });
  historyRead.catch(() => undefined); // awaited below; not unhandled meanwhile
  const revisionBefore = await currentRevision(client);
  // The commands write the revision where it was read now, whatever search_path they set.
  run.childEnv[VERSION_SCHEMA_VARIABLE] = await versionTableSchema(client);
  log(`database revision ${revisionBefore ?? "none"}, target ${to}`);
  const unchanged = revisionBefore !== to && run.manifest.revision === revisionBefore ? ensureUnchanged(run) : undefined;
  unchanged?.catch(() => undefined); // awaited below, after the history
  try {
    run.history = await historyRead;
  } catch (err) {
    await unchanged?.catch(() => undefined);
    throw err;
  }
  if (revisionBefore === to) return atTarget(run);
  // The command starts beside the unchanged check (alembic: Python and its imports, about 0.2 s
  // of the window) and reaches the database only once the check passed, or the backup was
  // taken again.
  let direction: "up" | "down";
  let prepared: PreparedRun;
  try {
    direction = directionFrom(run, revisionBefore) ? "down" : "up";
    prepared = source.prepare(direction, revisionBefore, to, run.runContext(direction));
  } catch (err) {
    await unchanged?.catch(() => undefined); // nothing may run on after the step
    throw err;
  }
  try {
    await unchanged;
  } catch (err) {
    await prepared.cancel();
    throw err;
  }
  return change(run, direction, revisionBefore, prepared);
}

/** At the target already: a finished run (proven again for this backup), or an interrupted one. */
async function atTarget(run: MigrateRun): Promise<Result> {
  const { client, log, to, manifest } = run;
  // The record is written only after validation passed: without it, and with a backup from
  // before the target, an earlier run was cut short between the change and its validation.
  const recorded = await recordedMigrationFiles(client, to);
  if (recorded === null && manifest.revision !== to) return resumeInterrupted(run);
  if (recorded !== run.filesSha) {
    log(`warning: the database reached ${to} with ${recorded ? `migration files ${recorded}` : "unrecorded migration files"}, not these (${run.filesSha}); ` +
      "an applied revision was edited or the database was migrated by other means: change the schema with a new revision, never by editing an applied one");
  }
  const proof = manifest.revision === to ? await ensureUnchanged(run) : await run.prove();
  if (failedOf(proof.checks).length > 0) {
    throw new StepError(`the database is at ${to} but does not match the backup from ${run.manifest.revision}: ${summarize(proof.checks)}`,
      "take a new backup (backup step) and pass its manifestUri", { details: { failedChecks: failedOf(proof.checks), ...run.backupFacts() } });
  }
  log("already at the target revision: nothing to do");
  // The record of the files that actually brought the database here stays as it is (for the
  // promotion gate); only the proof is renewed for this backup.
  const record = await readRecord(client);
  if (record?.revision === to) {
    await writeRecord(client, { ...record, schemas: { ...record.schemas, [to]: proof.schema }, validation: { backupSha256: run.manifest.dump.sha256, at: new Date().toISOString(), checks: proof.checks } }, log);
  }
  return { revisionBefore: to, revisionAfter: to, changed: false, rolledBack: false, restoredFromBackup: false, checks: proof.checks.length, filesSha256: recorded, ...run.backupFacts() };
}

/** Whether going from `revisionBefore` to the target is down; refuses what is no move on the history. */
function directionFrom(run: MigrateRun, revisionBefore: string | null): boolean {
  const { history, to } = run;
  if (revisionBefore !== null && !history.parents.has(revisionBefore)) {
    throw new StepError(`the database is at ${revisionBefore}, which is not in ${run.source.dir}`,
      "deploy with the migration files that match the database (or check DATABASE_URL)");
  }
  const down = revisionBefore !== null && isAncestor(history, to, revisionBefore);
  if (!down && revisionBefore !== null && !isAncestor(history, revisionBefore, to)) {
    throw new StepError(`${to} is neither an ancestor nor a descendant of the database's ${revisionBefore}`,
      "pass --to a revision on the database's line of history");
  }
  if (run.manifest.revision !== revisionBefore) {
    throw new StepError(`the manifest describes revision ${run.manifest.revision}, but the database is at ${revisionBefore ?? "no revision"}`,
      "take a new backup (backup step) and pass its manifestUri");
  }
  return down;
}

// At the target already, unrecorded, and this deployment's backup is from another revision:
// an earlier run was interrupted after its change committed. It is proven now, and rolled
// back exactly as its run would have been.
async function resumeInterrupted(run: MigrateRun): Promise<Result> {
  const { to, history } = run;
  const from = run.manifest.revision;
  if (!(await canWriteRecord(run.client))) {
    // Then a finished run left no record either: the app may have written since, and a
    // rollback would lose that.
    throw new StepError(`the database is at ${to} without a record of a proven change, and this role cannot write that record on alembic_version: ` +
      "a run cut short and a finished one look alike here, so migrate neither proves nor rolls back",
      `give the deploying role the table (ALTER TABLE alembic_version OWNER TO ${run.settings.user}); check the database (vibes-hooks validate schema data --manifest ${run.manifestUri} --revision ${to}); ` +
        "then take a new backup at this revision and pass its manifestUri: the run is then a no-op");
  }
  if (from !== null && !history.parents.has(from)) {
    throw new StepError(`the backup is from revision ${from}, which is not in ${run.source.dir}`,
      "take a new backup (backup step) and pass its manifestUri");
  }
  const wentDown = from !== null && isAncestor(history, to, from);
  if (!wentDown && from !== null && !isAncestor(history, from, to)) {
    throw new StepError(`the backup is from ${from}, neither an ancestor nor a descendant of ${to}`,
      "take a new backup (backup step) and pass its manifestUri");
  }
  run.log(`the database is at ${to} but the backup is from ${from ?? "no revision"}: an interrupted run ${wentDown ? "went down" : "migrated it"}; proving it now`);
  const proven = await proveChange(run, from, `after the interrupted ${wentDown ? "rollback" : "migration"}`);
  if ("failure" in proven) {
    run.log(`FAILED: ${proven.failure}`);
    return rollBack(run, proven.failure, proven.failed, !wentDown);
  }
  return { ...proven.result, changed: false, resumedAfterInterruption: true };
}

/** Runs the up or down command from `revisionBefore` (the manifest's revision) to the target, then proves the result. */
async function change(run: MigrateRun, direction: "up" | "down", revisionBefore: string | null, prepared: PreparedRun): Promise<Result> {
  const { to } = run;
  let failure: string;
  let failed: Check[] = [];
  // From here on the database may change: any failure, also an error while checking (a lost
  // connection, a timeout), goes through the rollback, which finds out what changed.
  try {
    const res = await run.runStep(direction, revisionBefore, to, direction, prepared);
    const revisionAfter = await currentRevision(run.client);
    if (res.code !== 0) {
      failure = `the ${direction} command failed (${res.timedOut ? `timed out after ${run.opts.migrationTimeout.text}: VIBES_MIGRATION_TIMEOUT` : `exit ${res.code}`}): ${stderrSummary(res.stderr) || "no error output"}`;
    } else if (revisionAfter !== to) {
      failure = `the ${direction} command succeeded but the database is at ${revisionAfter ?? "no revision"}, not ${to}`;
    } else {
      const proven = await proveChange(run, revisionBefore, `after the ${direction === "up" ? "migration" : "rollback"}`);
      if ("result" in proven) return proven.result;
      ({ failure, failed } = proven);
    }
  } catch (err) {
    failure = `the ${direction} step failed: ${errorMessage(err)}`;
  }
  run.log(`FAILED: ${failure}`);
  return rollBack(run, failure, failed, direction === "up");
}

/** Proves the database, now at the target, against the manifest (of `revisionBefore`) and records
 * the proof; or returns what failed, for the rollback. */
async function proveChange(run: MigrateRun, revisionBefore: string | null, when: string): Promise<{ result: Result } | { failure: string; failed: Check[] }> {
  run.log(`proving schema and data against the backup ${when}`);
  const proof = await run.prove();
  const failed = failedOf(proof.checks);
  if (failed.length > 0) return { failure: `validation failed ${when}: ${summarize(failed)}`, failed };
  const filesSha256 = await run.recordProof(proof, revisionBefore === null ? {} : { [revisionBefore]: run.manifest.schema });
  run.log(`at ${run.to}; ${proof.checks.length} checks passed`);
  return { result: { revisionBefore, revisionAfter: run.to, changed: true, rolledBack: false, restoredFromBackup: false, checks: proof.checks.length, filesSha256, ...run.backupFacts() } };
}
