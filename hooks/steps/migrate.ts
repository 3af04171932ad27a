// `migrate --to REV`: runs the schema change exactly once, under a session advisory lock, and
// leaves the database as it found it when the change or its validation fails (down command,
// then, if the data still differs from the manifest, the verified backup). The revisions come
// from alembic or from a folder of SQL files (--mode); both go through the same steps here.
import { hostname } from "node:os";
import type { Client } from "pg";
import { durationSetting, parseStep, requireFlag } from "../lib/args";
import { withPassfile } from "../lib/childEnv";
import { connect, connectionFromEnv, withClient } from "../lib/connection";
import { errorMessage, StepError, UsageError } from "../lib/errors";
import { locateDifferingRows } from "../lib/locate";
import { loadManifest, type Check } from "../lib/manifest";
import { plannedMigrationFilesSha256 } from "../lib/migrationFiles";
import { parseLockWait, withMigrationLock } from "../lib/migrationLock";
import { historyProblem, REVISION_RE, sourceFromFlags, VERSION_SCHEMA_VARIABLE, type History, type PreparedRun } from "../lib/migrationSource";
import { progress } from "../lib/progress";
import { prove, proofOptions, type Proof, type ProofOptions } from "../lib/proof";
import { canWriteRecord, currentRevision, readRecord, recordedMigrationFiles, versionTableSchema, writeRecord } from "../lib/revision";
import { stderrSummary, type RunResult } from "../lib/run";
import type { SchemaSnapshot } from "../lib/schemaSnapshot";
import { openBackupStore } from "../lib/storage";
import { tableOids, uncoveredProblem, uncoveredReferencingTables } from "../lib/tables";
import { restoreBackup } from "../lib/restore";
import { swapInCopy } from "../lib/swapInCopy";
import { verifyBackup } from "../lib/verify";
import { createBackup } from "./backup";


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

/** How long naming the differing rows may take once the copy is swapped in: it is a help, and the
 * failed database is kept for a closer look. */
const LOCATE_AFTER_SWAP_MS = 10_000;

const failedOf = (checks: Check[]) => checks.filter((c) => !c.ok);
const summarize = (checks: Check[]) => failedOf(checks).map((c) => `${c.name}: ${c.detail}`).join("; ");

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseStep("migrate", args);
  const to = requireFlag("migrate", values.to, "--to", "001_uuid_schema_migration");
  if (!REVISION_RE.test(to)) throw new UsageError(`migrate: --to "${to}" is not an alembic revision id`, "pass --to REV with letters, digits, _ . - only");
  let manifestUri = requireFlag("migrate", values.manifest, "--manifest", "<manifestUri printed by backup>");
  // The target revision's id type and defaults, for the proof after the change.
  const proofOpts = proofOptions("migrate", values);
  const acceptRenumberedIds = values["accept-renumbered-ids"];
  const lockWaitMs = parseLockWait("migrate", values["lock-wait-seconds"]);
  const expectedSha = values["files-sha256"]?.toLowerCase();
  if (expectedSha !== undefined && !/^[0-9a-f]{64}$/.test(expectedSha)) {
    throw new UsageError("migrate: --files-sha256 must be 64 hex digits", "pass the migrationFilesSha256 the deployment was planned with");
  }
  const mode = values.mode ?? "alembic";
  const lockTimeout = durationSetting(env, "VIBES_LOCK_TIMEOUT", "5s");
  const statementTimeout = durationSetting(env, "VIBES_STATEMENT_TIMEOUT", "30min");
  // The whole command, its statements together (statement_timeout bounds each one alone).
  const migrationTimeout = durationSetting(env, "VIBES_MIGRATION_TIMEOUT", "1h");
  const source = sourceFromFlags("migrate", values, env);
  const settings = connectionFromEnv(env);
  const log = progress("migrate");

  const filesSha = plannedMigrationFilesSha256(mode === "sql" ? { mode: "sql", sqlDir: source.dir } : { mode: "alembic", appDir: env.VIBES_APP_DIR! });
  if (expectedSha === undefined) {
    log(`warning: no --files-sha256 given; migration files are ${filesSha}`);
  } else if (filesSha !== expectedSha) {
    throw new StepError(`the migration files in ${source.dir} have SHA-256 ${filesSha}, not the planned ${expectedSha}`,
      "the migrations changed since the deployment was planned: review the change and run `pulumi preview` / `pulumi up` again");
  }
  // The backup the run relies on: the given one, or one taken again inside the window when the
  // database changed since it (ensureUnchanged).
  let manifest = await loadManifest(manifestUri, env);
  let backupRetaken = false;

  return withPassfile(settings, async (childEnv) => {
    // client_connection_check_interval: a backend whose command was killed notices it and stops
    // (PostgreSQL 14+), instead of running on until its statement ends.
    const options = `-c lock_timeout=${lockTimeout.text} -c statement_timeout=${statementTimeout.text} -c client_connection_check_interval=2s`;
    childEnv.PGOPTIONS = childEnv.PGOPTIONS ? `${childEnv.PGOPTIONS} ${options}` : options;
    // The commands' own sessions, by name: those a failed command leaves running are ended.
    const childApplication = `vibes-hooks migrate command ${process.pid}`;
    childEnv.PGAPPNAME = childApplication;
    const runContext = (what: string) => ({ env: childEnv, timeoutMs: migrationTimeout.ms, log: (m: string) => log(`${what}: ${m}`) });
    // The history (alembic: a Python start) is read beside the unchanged check, which does not
    // need it: that time is inside the maintenance window. Not before the lock: a Ctrl-C while
    // waiting for it must find no command to stop.
    const readHistory = () => source.history(runContext("history")).then((h) => {
      const problem = historyProblem(source, h, to);
      if (problem) throw new StepError(problem.problem, problem.fix);
      return h;
    });
    let history: History;

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
    async function runStep(direction: "up" | "down", from: string | null, rev: string, what: string, prepared?: PreparedRun): Promise<RunResult> {
      const res = await (prepared ? prepared.go() : source.run(direction, from, rev, runContext(what)));
      for (const line of res.stderr.split("\n").filter((l) => l.trim())) log(`  ${line}`);
      if (res.code !== 0) {
        // What failed is the command: a session that cannot be ended is reported, not raised.
        await endChildSessions(client, childApplication, log).catch((err) => log(`warning: ${errorMessage(err)}`));
      }
      return res;
    }

    /** The proof against the manifest; an error (a covered table dropped by a bad migration) is one
     * failed check, so that a rollback restores instead of giving up. */
    async function proveOrFailure(client: Client, extra: Partial<ProofOptions> = {}): Promise<Proof | { checks: Check[]; revision: string | null; schema?: undefined }> {
      try {
        return await prove(client, manifest, { ...proofOpts, ...extra });
      } catch (err) {
        return { checks: [{ name: "data.readable", ok: false, detail: errorMessage(err) }], revision: await currentRevision(client) };
      }
    }

    /** The result fields every outcome reports: which backup the run relied on. */
    function backupFacts() {
      return {
        backup: { uri: manifest.dump.uri, manifestUri, sha256: manifest.dump.sha256, bytes: manifest.dump.bytes, revision: manifest.revision, retaken: backupRetaken },
      };
    }

    /**
     * Records what was proven: the files that brought the database to `to`, the schemas of the
     * revisions it was proven at (`proof`'s is `to`'s), and the checks, for the validation stage.
     * Returns the files checksum recorded, or null when it could not be.
     */
    async function recordProof(client: Client, proof: Proof, extra: Record<string, SchemaSnapshot> = {}): Promise<string | null> {
      const previous = await readRecord(client);
      const written = await writeRecord(client, {
        revision: to,
        filesSha256: filesSha,
        schemas: { ...previous?.schemas, ...extra, [to]: proof.schema },
        validation: { backupSha256: manifest.dump.sha256, at: new Date().toISOString(), checks: proof.checks },
      }, log);
      return written ? filesSha : null;
    }

    /**
     * The exact check that nothing changed since the backup's snapshot (the backup is taken while
     * the app still serves): the schema exactly and every row's content, links and ids. If
     * anything changed, the backup is taken again (and verified by a restore) inside the window:
     * correctness never depends on the app having been idle.
     */
    async function ensureUnchanged(client: Client): Promise<Proof> {
      log("checking nothing changed since the backup (schema, data and ids, exactly)");
      const first = await prove(client, manifest, proofOpts);
      if (failedOf(first.checks).length === 0) return first;
      log(`the database changed since the backup (${summarize(first.checks)}); taking the backup again inside the maintenance window`);
      const store = openBackupStore(env);
      const lockWaitTimeout = values["lock-wait-timeout"];
      const retaken = await createBackup(settings, store, Object.keys(manifest.tables), env, { label: `for-${to}-retaken`, lockWaitTimeout });
      // The copy kept for a swap is of the old backup: the new one replaces it.
      const verified = await verifyBackup(settings, retaken.uri, env, { log, keepCopy: env.VIBES_ROLLBACK !== "restore" });
      if (verified.keptCopy === null) log(`no copy kept for a swap: ${(verified.swapObstacles as string[]).join("; ")}`);
      manifestUri = retaken.manifestUri;
      manifest = await loadManifest(manifestUri, env);
      backupRetaken = true;
      log(`backup taken again: ${retaken.uri}`);
      const again = await prove(client, manifest, proofOpts);
      if (failedOf(again.checks).length > 0) {
        throw new StepError(`the database changed again while the backup was taken again (${summarize(again.checks)}): something still writes`,
          "turn maintenance mode on (or stop what writes to the covered tables), then re-run", { details: backupFacts() });
      }
      return again;
    }

    async function migrateLocked(client: Client): Promise<Record<string, unknown>> {
      const uncovered = uncoveredProblem(await uncoveredReferencingTables(client, [...(await tableOids(client, Object.keys(manifest.tables))).values()]));
      if (uncovered) throw new StepError(uncovered.problem, uncovered.fix);
      const historyRead = readHistory();
      historyRead.catch(() => undefined); // awaited below; not unhandled meanwhile
      const revisionBefore = await currentRevision(client);
      // The commands write the revision where it was read now, whatever search_path they set.
      childEnv[VERSION_SCHEMA_VARIABLE] = await versionTableSchema(client);
      log(`database revision ${revisionBefore ?? "none"}, target ${to}`);
      const unchanged = revisionBefore !== to && manifest.revision === revisionBefore ? ensureUnchanged(client) : undefined;
      unchanged?.catch(() => undefined); // awaited below, after the history
      try {
        history = await historyRead;
      } catch (err) {
        await unchanged?.catch(() => undefined);
        throw err;
      }
      if (revisionBefore === to) {
        // The record is written only after validation passed: without it, and with a backup from
        // before the target, an earlier run was cut short between the change and its validation.
        const recorded = await recordedMigrationFiles(client, to);
        if (recorded === null && manifest.revision !== to) return resumeInterrupted(client);
        if (recorded !== filesSha) {
          log(`warning: the database reached ${to} with ${recorded ? `migration files ${recorded}` : "unrecorded migration files"}, not these (${filesSha}); ` +
            "an applied revision was edited or the database was migrated by other means: change the schema with a new revision, never by editing an applied one");
        }
        const proof = manifest.revision === to ? await ensureUnchanged(client) : await prove(client, manifest, proofOpts);
        if (failedOf(proof.checks).length > 0) {
          throw new StepError(`the database is at ${to} but does not match the backup from ${manifest.revision}: ${summarize(proof.checks)}`,
            "take a new backup (backup step) and pass its manifestUri", { details: { failedChecks: failedOf(proof.checks), ...backupFacts() } });
        }
        log("already at the target revision: nothing to do");
        // The record of the files that actually brought the database here stays as it is (for the
        // promotion gate); only the proof is renewed for this backup.
        const record = await readRecord(client);
        if (record?.revision === to) {
          await writeRecord(client, { ...record, schemas: { ...record.schemas, [to]: proof.schema! }, validation: { backupSha256: manifest.dump.sha256, at: new Date().toISOString(), checks: proof.checks } }, log);
        }
        return { revisionBefore, revisionAfter: to, changed: false, rolledBack: false, restoredFromBackup: false, checks: proof.checks.length, filesSha256: recorded, ...backupFacts() };
      }
      // The command starts beside the unchanged check (alembic: Python and its imports, about 0.2 s
      // of the window) and reaches the database only once the check passed, or the backup was
      // taken again.
      let direction: "up" | "down";
      let prepared: PreparedRun;
      try {
        direction = directionFrom(revisionBefore) ? "down" : "up";
        prepared = source.prepare(direction, revisionBefore, to, runContext(direction));
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
      return change(client, direction, revisionBefore, prepared);
    }

    /** Whether going from `revisionBefore` to `to` is down; refuses what is no move on the history. */
    function directionFrom(revisionBefore: string | null): boolean {
      if (revisionBefore !== null && !history.parents.has(revisionBefore)) {
        throw new StepError(`the database is at ${revisionBefore}, which is not in ${source.dir}`,
          "deploy with the migration files that match the database (or check DATABASE_URL)");
      }
      const down = revisionBefore !== null && isAncestor(history, to, revisionBefore);
      if (!down && revisionBefore !== null && !isAncestor(history, revisionBefore, to)) {
        throw new StepError(`${to} is neither an ancestor nor a descendant of the database's ${revisionBefore}`,
          "pass --to a revision on the database's line of history");
      }
      if (manifest.revision !== revisionBefore) {
        throw new StepError(`the manifest describes revision ${manifest.revision}, but the database is at ${revisionBefore ?? "no revision"}`,
          "take a new backup (backup step) and pass its manifestUri");
      }
      return down;
    }

    // At the target already, unrecorded, and this deployment's backup is from another revision:
    // an earlier run was interrupted after its change committed. It is proven now, and rolled
    // back exactly as its run would have been.
    async function resumeInterrupted(client: Client): Promise<Record<string, unknown>> {
      const from = manifest.revision;
      if (!(await canWriteRecord(client))) {
        // Then a finished run left no record either: the app may have written since, and a
        // rollback would lose that.
        throw new StepError(`the database is at ${to} without a record of a proven change, and this role cannot write that record on alembic_version: ` +
          "a run cut short and a finished one look alike here, so migrate neither proves nor rolls back",
          `give the deploying role the table (ALTER TABLE alembic_version OWNER TO ${settings.user}); check the database (vibes-hooks validate schema data --manifest ${manifestUri} --revision ${to}); ` +
            "then take a new backup at this revision and pass its manifestUri: the run is then a no-op");
      }
      if (from !== null && !history.parents.has(from)) {
        throw new StepError(`the backup is from revision ${from}, which is not in ${source.dir}`,
          "take a new backup (backup step) and pass its manifestUri");
      }
      const wentDown = from !== null && isAncestor(history, to, from);
      if (!wentDown && from !== null && !isAncestor(history, from, to)) {
        throw new StepError(`the backup is from ${from}, neither an ancestor nor a descendant of ${to}`,
          "take a new backup (backup step) and pass its manifestUri");
      }
      log(`the database is at ${to} but the backup is from ${from ?? "no revision"}: an interrupted run ${wentDown ? "went down" : "migrated it"}; proving it now`);
      const proven = await proveChange(client, from, `after the interrupted ${wentDown ? "rollback" : "migration"}`);
      if ("failure" in proven) {
        log(`FAILED: ${proven.failure}`);
        return rollBack(client, proven.failure, proven.failed, !wentDown);
      }
      return { ...proven.result, changed: false, resumedAfterInterruption: true };
    }

    /** Runs the up or down command from `revisionBefore` (the manifest's revision) to `to`, then proves the result. */
    async function change(client: Client, direction: "up" | "down", revisionBefore: string | null, prepared: PreparedRun): Promise<Record<string, unknown>> {
      let failure: string;
      let failed: Check[] = [];
      // From here on the database may change: any failure, also an error while checking (a lost
      // connection, a timeout), goes through the rollback, which finds out what changed.
      try {
        const res = await runStep(direction, revisionBefore, to, direction, prepared);
        const revisionAfter = await currentRevision(client);
        if (res.code !== 0) {
          failure = `the ${direction} command failed (${res.timedOut ? `timed out after ${migrationTimeout.text}: VIBES_MIGRATION_TIMEOUT` : `exit ${res.code}`}): ${stderrSummary(res.stderr) || "no error output"}`;
        } else if (revisionAfter !== to) {
          failure = `the ${direction} command succeeded but the database is at ${revisionAfter ?? "no revision"}, not ${to}`;
        } else {
          const proven = await proveChange(client, revisionBefore, `after the ${direction === "up" ? "migration" : "rollback"}`);
          if ("result" in proven) return proven.result;
          ({ failure, failed } = proven);
        }
      } catch (err) {
        failure = `the ${direction} step failed: ${errorMessage(err)}`;
      }
      log(`FAILED: ${failure}`);
      return rollBack(client, failure, failed, direction === "up");
    }

    /** Proves the database, now at `to`, against the manifest (of `revisionBefore`) and records
     * the proof; or returns what failed, for the rollback. */
    async function proveChange(client: Client, revisionBefore: string | null, when: string): Promise<{ result: Record<string, unknown> } | { failure: string; failed: Check[] }> {
      log(`proving schema and data against the backup ${when}`);
      const proof = await prove(client, manifest, proofOpts);
      const failed = failedOf(proof.checks);
      if (failed.length > 0) return { failure: `validation failed ${when}: ${summarize(failed)}`, failed };
      const filesSha256 = await recordProof(client, proof, revisionBefore === null ? {} : { [revisionBefore]: manifest.schema });
      log(`at ${to}; ${proof.checks.length} checks passed`);
      return { result: { revisionBefore, revisionAfter: to, changed: true, rolledBack: false, restoredFromBackup: false, checks: proof.checks.length, filesSha256, ...backupFacts() } };
    }

    /**
     * Brings the database back to the manifest's revision after a failure: the verified copy
     * swapped in where verify-restore kept one (seconds at any size, exact; the failed database is
     * kept), else the down command (after a failed migration up; going down has no way back but the
     * backup), then, unless schema, data and ids are all proven as in the backup, the verified
     * backup itself. The message says "back at" only when that proof passed.
     */
    async function rollBack(client: Client, failure: string, failedChecks: Check[], tryDownCommand: boolean): Promise<never> {
      const revisionBefore = manifest.revision;
      let rolledBack = false;
      let restoredFromBackup = false;
      let problem = "";
      let proof: { checks: Check[]; revision: string | null };
      let differingRows: Awaited<ReturnType<typeof locateDifferingRows>> = null;
      const facts = () => ({ revisionBefore, failedChecks, rolledBack, restoredFromBackup, ...(differingRows ? { differingRows } : {}), ...backupFacts() });
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
            const res = await runStep("down", revisionFailed, revisionBefore ?? "base", "roll back");
            rolledBack = res.code === 0;
            if (!rolledBack) problem = `the down command failed (${res.timedOut ? "timed out" : `exit ${res.code}`}): ${stderrSummary(res.stderr) || "no error output"}`;
          } catch (err) {
            problem = `the down command could not run: ${errorMessage(err)}`;
          }
          if (problem) log(problem);
        }
        proof = await proveOrFailure(client);
        if (acceptRenumberedIds && proof.revision === revisionBefore && renumberedOnly(proof.checks)) {
          // Other ids: equal ids no longer stand for equal links, so the links are proven themselves.
          proof = await proveOrFailure(client, { relationships: true });
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
            proof = await proveOrFailure(client);
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
  }, env);
}
