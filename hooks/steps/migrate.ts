// `migrate --to REV`: runs the schema change exactly once, under a session advisory lock, and
// leaves the database as it found it when the change or its validation fails (down command,
// then, if the data still differs from the manifest, the verified backup). The revisions come
// from alembic or from a folder of SQL files (--mode); both go through the same steps here.
import { hostname } from "node:os";
import { statSync } from "node:fs";
import type { Client } from "pg";
import { durationSetting, parseFlags, requireFlag } from "../lib/args";
import { withPassfile } from "../lib/childEnv";
import { connect, connectionFromEnv } from "../lib/connection";
import { errorMessage, StepError, UsageError } from "../lib/errors";
import { captureState, compareState, loadManifest, type Check, type Manifest } from "../lib/manifest";
import { migrationFilesDir, plannedMigrationFilesSha256 } from "../lib/migrationFiles";
import { parseLockWait, withMigrationLock } from "../lib/migrationLock";
import { alembicSource, REVISION_RE, sqlSource, type History, type MigrationSource } from "../lib/migrationSource";
import { progress } from "../lib/progress";
import { currentRevision, recordedMigrationFiles, recordMigrationFiles } from "../lib/revision";
import { stderrSummary, type RunResult } from "../lib/run";
import { restoreBackup } from "./restore";
import { validateAgainstManifest } from "./validate";


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


/**
 * Ends the database sessions a migration command left behind and waits until they are gone. A
 * command stopped on its timeout (or a shell that exited before its psql) leaves its backend
 * running its statement, holding its locks, until the statement ends: the checks and the down
 * command after it would wait on those locks, and the migration lock would be released while
 * the orphan still changes the database.
 */
async function endChildSessions(client: Client, applicationName: string, log: (m: string) => void): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (let announced = false; ; announced = true) {
    const left = await client.query(
      `SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = $1 AND pid <> pg_backend_pid() AND datname = current_database()`, [applicationName]);
    if (left.rowCount === 0) return;
    if (!announced) log(`ending ${left.rowCount} database session(s) the command left running (pid ${left.rows.map((r) => r.pid).join(", ")})`);
    if (Date.now() > deadline) {
      throw new StepError(`the migration command's database session(s) ${left.rows.map((r) => r.pid).join(", ")} did not end within 60s`,
        "end them with SELECT pg_terminate_backend(pid) (the role needs pg_signal_backend), then re-run migrate");
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** dataChecks, with an error (a covered table dropped by a bad migration) as one failed check:
 * the rollback then restores instead of giving up. */
async function dataChecksOrFailure(client: Client, manifest: Manifest): Promise<Check[]> {
  try {
    return await dataChecks(client, manifest);
  } catch (err) {
    return [{ name: "data.readable", ok: false, detail: errorMessage(err) }];
  }
}

/** Row counts and fingerprints of the live data against the manifest, in one snapshot. */
async function dataChecks(client: Client, manifest: Manifest): Promise<Check[]> {
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  try {
    return compareState(manifest, await captureState(client, Object.keys(manifest.tables), manifest));
  } finally {
    // Commit at once: holding even AccessShareLock would block the migration's ALTERs.
    await client.query("COMMIT");
  }
}

const failedOf = (checks: Check[]) => checks.filter((c) => !c.ok);
const summarize = (checks: Check[]) => failedOf(checks).map((c) => `${c.name}: ${c.detail}`).join("; ");

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseFlags("migrate", args, {
    to: { type: "string" },
    manifest: { type: "string" },
    "files-sha256": { type: "string" },
    mode: { type: "string" },
    "sql-dir": { type: "string" },
    up: { type: "string" },
    down: { type: "string" },
    "lock-wait-seconds": { type: "string" },
    "id-type": { type: "string", default: "uuid" },
  });
  const to = requireFlag("migrate", values.to, "--to", "001_uuid_schema_migration");
  if (!REVISION_RE.test(to)) throw new UsageError(`migrate: --to "${to}" is not an alembic revision id`, "pass --to REV with letters, digits, _ . - only");
  const manifestUri = requireFlag("migrate", values.manifest, "--manifest", "<manifestUri printed by backup>");
  // The key columns' type at the target, for the validation after going up.
  const idType = values["id-type"];
  if (idType !== "uuid" && idType !== "integer") throw new UsageError(`migrate: --id-type "${idType}" is not uuid or integer`, "pass the target revision's id type: --id-type uuid (or integer)");
  const lockWaitMs = parseLockWait("migrate", values["lock-wait-seconds"]);
  const expectedSha = values["files-sha256"]?.toLowerCase();
  if (expectedSha !== undefined && !/^[0-9a-f]{64}$/.test(expectedSha)) {
    throw new UsageError("migrate: --files-sha256 must be 64 hex digits", "pass the migrationFilesSha256 the deployment was planned with");
  }
  const mode = values.mode ?? "alembic";
  if (mode !== "alembic" && mode !== "sql") throw new UsageError(`migrate: --mode "${mode}" is not alembic or sql`, "pass --mode alembic (the default) or --mode sql --sql-dir DIR");
  const lockTimeout = durationSetting(env, "VIBES_LOCK_TIMEOUT", "5s");
  const statementTimeout = durationSetting(env, "VIBES_STATEMENT_TIMEOUT", "30min");
  // The whole command, its statements together (statement_timeout bounds each one alone).
  const migrationTimeout = durationSetting(env, "VIBES_MIGRATION_TIMEOUT", "1h");
  const source = mode === "sql" ? sqlFolder(values) : alembicRevisions(values, env);
  const settings = connectionFromEnv(env);
  const log = progress("migrate");

  const filesSha = plannedMigrationFilesSha256(mode === "sql" ? { mode, sqlDir: source.dir } : { mode, appDir: env.VIBES_APP_DIR! });
  if (expectedSha === undefined) {
    log(`warning: no --files-sha256 given; migration files are ${filesSha}`);
  } else if (filesSha !== expectedSha) {
    throw new StepError(`the migration files in ${source.dir} have SHA-256 ${filesSha}, not the planned ${expectedSha}`,
      "the migrations changed since the deployment was planned: review the change and run `pulumi preview` / `pulumi up` again");
  }
  const manifest = await loadManifest(manifestUri, env);

  return withPassfile(settings, async (childEnv) => {
    // client_connection_check_interval: a backend whose command was killed notices it and stops
    // (PostgreSQL 14+), instead of running on until its statement ends.
    const options = `-c lock_timeout=${lockTimeout.text} -c statement_timeout=${statementTimeout.text} -c client_connection_check_interval=2s`;
    childEnv.PGOPTIONS = childEnv.PGOPTIONS ? `${childEnv.PGOPTIONS} ${options}` : options;
    // The commands' own sessions, by name: those a failed command leaves running are ended.
    const childApplication = `vibes-hooks migrate command ${process.pid}`;
    childEnv.PGAPPNAME = childApplication;
    const runContext = (what: string) => ({ env: childEnv, timeoutMs: migrationTimeout.ms, log: (m: string) => log(`${what}: ${m}`) });
    const history = await source.history(runContext("history"));
    if (history.heads.length !== 1) {
      throw new StepError(`${source.name} reports ${history.heads.length} heads (${history.heads.join(", ")})`,
        "merge the branches (alembic merge) or remove the stray revision, then plan the deployment again");
    }
    if (!history.parents.has(to)) {
      throw new StepError(`revision ${to} is not in ${source.dir}`, "pass --to a revision that exists in the migration files");
    }

    const client = await connect(settings, {
      lockTimeout: lockTimeout.text,
      statementTimeout: statementTimeout.text,
      applicationName: `vibes-hooks migrate ${hostname()}:${process.pid}`.slice(0, 63),
    });
    try {
      return await withMigrationLock(client, lockWaitMs, log, () => migrateLocked(client));
    } finally {
      await client.end().catch(() => undefined);
    }

    /** Moves the database from `from` to `rev` ("base": no revision) through the source. A
     * failed command's sessions are ended before anything looks at the database. */
    async function runStep(direction: "up" | "down", from: string | null, rev: string, what: string): Promise<RunResult> {
      const res = await source.run(direction, from, rev, runContext(what));
      for (const line of res.stderr.split("\n").filter((l) => l.trim())) log(`  ${line}`);
      if (res.code !== 0) {
        // What failed is the command: a session that cannot be ended is reported, not raised.
        await endChildSessions(client, childApplication, log).catch((err) => log(`warning: ${errorMessage(err)}`));
      }
      return res;
    }

    async function migrateLocked(client: Client): Promise<Record<string, unknown>> {
      const revisionBefore = await currentRevision(client);
      log(`database revision ${revisionBefore ?? "none"}, target ${to}`);
      if (revisionBefore === to) {
        // The record is written only after validation passed: without it, and with a backup from
        // before the target, an earlier run was cut short between the change and its validation.
        const recorded = await recordedMigrationFiles(client, to);
        if (recorded === null && manifest.revision !== to) return resumeInterrupted(client);
        if (recorded !== filesSha) {
          log(`warning: the database reached ${to} with ${recorded ? `migration files ${recorded}` : "unrecorded migration files"}, not these (${filesSha}); ` +
            "an applied revision was edited or the database was migrated by other means: change the schema with a new revision, never by editing an applied one");
        }
        log("already at the target revision: nothing to do");
        // The files that actually brought the database here, for the promotion gate.
        return { revisionBefore, revisionAfter: to, changed: false, rolledBack: false, restoredFromBackup: false, filesSha256: recorded };
      }
      if (revisionBefore !== null && !history.parents.has(revisionBefore)) {
        throw new StepError(`the database is at ${revisionBefore}, which is not in ${source.dir}`,
          "deploy with the migration files that match the database (or check DATABASE_URL)");
      }
      const down = revisionBefore !== null && isAncestor(history, to, revisionBefore);
      if (!down && revisionBefore !== null && !isAncestor(history, revisionBefore, to)) {
        throw new StepError(`${to} is neither an ancestor nor a descendant of the database's ${revisionBefore}`,
          "pass --to a revision on the database's line of history");
      }
      if (down) return migrateDown(client, revisionBefore!);
      return migrateUp(client, revisionBefore);
    }

    // Going down is itself the rollback of a deployment: no manifest comparison (the app may
    // have written since) and no restore; the source's single transaction (alembic's, or psql's
    // --single-transaction) keeps a failure atomic.
    async function migrateDown(client: Client, revisionBefore: string): Promise<Record<string, unknown>> {
      const res = await runStep("down", revisionBefore, to, "down");
      const revisionAfter = await currentRevision(client);
      if (res.code !== 0 || revisionAfter !== to) {
        throw new StepError(`the down command to ${to} failed (${res.timedOut ? "timed out" : `exit ${res.code}`}): ${stderrSummary(res.stderr) || "no error output"}; the database is at ${revisionAfter ?? "no revision"}`,
          "read the command's output above, fix the cause and re-run migrate", {
            details: { revisionBefore, revisionAfter, changed: revisionAfter !== revisionBefore, rolledBack: false, restoredFromBackup: false },
          });
      }
      const recordedSha = await recordMigrationFiles(client, to, filesSha, log);
      log(`at ${revisionAfter}`);
      return { revisionBefore, revisionAfter, changed: true, rolledBack: false, restoredFromBackup: false, filesSha256: recordedSha };
    }

    // At the target already, unrecorded, and this deployment's backup is from another revision:
    // an earlier run was interrupted after its change committed. A rollback (the backup is from
    // a later revision) only lacks its record; a migration up still needs its validation.
    async function resumeInterrupted(client: Client): Promise<Record<string, unknown>> {
      const from = manifest.revision;
      if (from !== null && !history.parents.has(from)) {
        throw new StepError(`the backup is from revision ${from}, which is not in ${source.dir}`,
          "take a new backup (backup step) and pass its manifestUri");
      }
      if (from !== null && isAncestor(history, to, from)) {
        log(`the database is at ${to} and the backup is from the later ${from}: an interrupted run went down; recording it`);
        const recordedSha = await recordMigrationFiles(client, to, filesSha, log);
        return {
          revisionBefore: from, revisionAfter: to, changed: false, resumedAfterInterruption: true,
          rolledBack: false, restoredFromBackup: false, filesSha256: recordedSha,
        };
      }
      if (from !== null && !isAncestor(history, from, to)) {
        throw new StepError(`the backup is from ${from}, neither an ancestor nor a descendant of ${to}`,
          "take a new backup (backup step) and pass its manifestUri");
      }
      return validateInterrupted(client);
    }

    // Validate the interrupted migration now, and roll back exactly as its run would have.
    async function validateInterrupted(client: Client): Promise<Record<string, unknown>> {
      log(`the database is at ${to} but the backup is from ${manifest.revision ?? "no revision"}: an interrupted run migrated it; validating now`);
      const checks = await validateAgainstManifest(client, manifest, ["schema", "data"], { idType, log });
      const failedChecks = failedOf(checks);
      if (failedChecks.length > 0) {
        return rollBack(client, manifest.revision, `validation failed after the interrupted migration: ${summarize(failedChecks)}`, failedChecks);
      }
      const recordedSha = await recordMigrationFiles(client, to, filesSha, log);
      log(`at ${to}; ${checks.length} checks passed`);
      return {
        revisionBefore: manifest.revision, revisionAfter: to, changed: false, resumedAfterInterruption: true,
        rolledBack: false, restoredFromBackup: false, checks: checks.length, filesSha256: recordedSha,
      };
    }

    async function migrateUp(client: Client, revisionBefore: string | null): Promise<Record<string, unknown>> {
      if (manifest.revision !== revisionBefore) {
        throw new StepError(`the manifest describes revision ${manifest.revision}, but the database is at ${revisionBefore ?? "no revision"}`,
          "take a new backup (backup step) and pass its manifestUri");
      }
      // If the data already differs from the backup, a restore during rollback would lose writes.
      log("checking the data still matches the backup's manifest");
      const before = await dataChecks(client, manifest);
      if (failedOf(before).length > 0) {
        throw new StepError(`the data changed since the backup (${summarize(before)})`,
          "make sure maintenance mode is on (no writes), take a new backup and migrate with its manifest");
      }

      let failure: string;
      let failedChecks: Check[] = [];
      // From here on the database may change: any failure, also an error while checking (a lost
      // connection, a timeout), goes through the rollback, which finds out what changed.
      try {
        const res = await runStep("up", revisionBefore, to, "up");
        const revisionAfter = await currentRevision(client);
        if (res.code !== 0) {
          failure = `the up command failed (${res.timedOut ? `timed out after ${migrationTimeout.text}: VIBES_MIGRATION_TIMEOUT` : `exit ${res.code}`}): ${stderrSummary(res.stderr) || "no error output"}`;
        } else if (revisionAfter !== to) {
          failure = `the up command succeeded but the database is at ${revisionAfter ?? "no revision"}, not ${to}`;
        } else {
          log("validating schema and data against the manifest");
          const checks = await validateAgainstManifest(client, manifest, ["schema", "data"], { idType, log });
          failedChecks = failedOf(checks);
          if (failedChecks.length === 0) {
            const recordedSha = await recordMigrationFiles(client, to, filesSha, log);
            log(`at ${to}; ${checks.length} checks passed`);
            return { revisionBefore, revisionAfter, changed: true, rolledBack: false, restoredFromBackup: false, checks: checks.length, filesSha256: recordedSha };
          }
          failure = `validation failed after the migration: ${summarize(failedChecks)}`;
        }
      } catch (err) {
        failure = `the up step failed: ${errorMessage(err)}`;
      }
      log(`FAILED: ${failure}`);
      return rollBack(client, revisionBefore, failure, failedChecks);
    }

    async function rollBack(client: Client, revisionBefore: string | null, failure: string, failedChecks: Check[]): Promise<never> {
      let rolledBack = false;
      let restoredFromBackup = false;
      let problem = "";
      const target = revisionBefore ?? "base";
      let revisionNow: string | null;
      let checks: Check[];
      try {
        const revisionFailed = await currentRevision(client);
        if (revisionFailed !== revisionBefore) {
          try {
            const res = await runStep("down", revisionFailed, target, "roll back");
            rolledBack = res.code === 0;
            if (!rolledBack) problem = `the down command failed (${res.timedOut ? "timed out" : `exit ${res.code}`}): ${stderrSummary(res.stderr) || "no error output"}`;
          } catch (err) {
            problem = `the down command could not run: ${errorMessage(err)}`;
          }
        }
        revisionNow = await currentRevision(client);
        checks = await dataChecksOrFailure(client, manifest);
        if (revisionNow !== revisionBefore || failedOf(checks).length > 0) {
          log(`after the down command: revision ${revisionNow ?? "none"}; ${summarize(checks) || "data matches"}; restoring the backup ${manifest.dump.uri}`);
          try {
            await restoreBackup(settings, manifest.dump.uri, env, { force: true, log });
            restoredFromBackup = true;
          } catch (err) {
            problem += `${problem ? "; " : ""}restoring ${manifest.dump.uri} failed: ${errorMessage(err)}`;
          }
          revisionNow = await currentRevision(client);
          checks = await dataChecksOrFailure(client, manifest);
        }
      } catch (err) {
        // The session is lost, or a check cannot run: where the database is cannot be told here.
        throw new StepError(`${failure}. The rollback could not finish (${errorMessage(err)}${problem ? `; ${problem}` : ""}): the database's state is unknown`,
          `keep maintenance mode on; restore the backup by hand (vibes-hooks restore --uri ${manifest.dump.uri} --force) and check it (vibes-hooks validate data --manifest ${manifestUri}). ` +
            "Re-running migrate helps only if the database is at the target or untouched: it refuses data that differs from the backup",
          { details: { revisionBefore, revisionAfter: null, changed: true, rolledBack, restoredFromBackup, failedChecks } });
      }
      const intact = revisionNow === revisionBefore && failedOf(checks).length === 0;
      const how = restoredFromBackup ? `restored from the backup ${manifest.dump.uri}` : rolledBack ? "rolled back by the down command" : "left unchanged by the failed command";
      const state = intact
        ? `the database is back at ${revisionBefore ?? "no revision"} with all data matching the backup's manifest (${how})`
        : `the database is at ${revisionNow ?? "no revision"} and does NOT match the backup (${summarize(checks) || "revision differs"})${problem ? `; ${problem}` : ""}`;
      throw new StepError(`${failure}. ${state}`,
        intact
          ? "keep maintenance mode on or turn it off to serve the old version; fix the migration and deploy again"
          : `keep maintenance mode on; restore the backup by hand (vibes-hooks restore --uri ${manifest.dump.uri} --force) and check it (vibes-hooks validate data --manifest ${manifestUri}); ` +
            "if the dump itself cannot be used (checksum mismatch), restore the RDS snapshot taken before the migration (docs/operations.md)",
        { details: { revisionBefore, revisionAfter: revisionNow, changed: !intact, rolledBack, restoredFromBackup, failedChecks } });
    }
  }, env);
}

type Flags = Record<string, string | boolean | undefined>;

/** --mode alembic: the app's revisions in VIBES_APP_DIR, run by alembic or the --up/--down commands. */
function alembicRevisions(values: Flags, env: NodeJS.ProcessEnv): MigrationSource {
  if (values["sql-dir"] !== undefined) throw new UsageError("migrate: --sql-dir needs --mode sql", "pass --mode sql --sql-dir DIR, or drop --sql-dir");
  const templates = { up: values.up as string | undefined, down: values.down as string | undefined };
  for (const [flag, t] of [["--up", templates.up], ["--down", templates.down]]) {
    if (t !== undefined && !t.includes("{rev}")) throw new UsageError(`migrate: ${flag} must contain {rev}`, `pass e.g. ${flag} "python3 -m alembic ${flag === "--up" ? "upgrade" : "downgrade"} {rev}"`);
  }
  const appDir = env.VIBES_APP_DIR;
  if (!appDir || !statSync(appDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new StepError(`VIBES_APP_DIR ${appDir ? `"${appDir}" is not a directory` : "is not set"}`, "set VIBES_APP_DIR to the app's folder (it holds alembic.ini and migrations/versions/)");
  }
  const versionsDir = migrationFilesDir({ mode: "alembic", appDir });
  return alembicSource({ python: env.VIBES_PYTHON || "/usr/bin/python3", appDir, versionsDir, ...templates });
}

/** --mode sql: the `<revision>.up.sql` / `.down.sql` files in --sql-dir, run by psql. */
function sqlFolder(values: Flags): MigrationSource {
  if (values.up !== undefined || values.down !== undefined) {
    throw new UsageError("migrate: --up/--down apply to --mode alembic only", "drop them: in sql mode psql runs <revision>.up.sql / .down.sql from --sql-dir");
  }
  const dir = requireFlag("migrate", values["sql-dir"] as string | undefined, "--sql-dir", "app/migrations/sql");
  return sqlSource(dir);
}
