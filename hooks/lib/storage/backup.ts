// The backup (hooks/steps/backup.ts runs it; migrate takes it again inside the window when the
// database changed since the one it was given). pg_dump -Fc streamed to the backup store, SHA-256
// and size computed on the way, the same bytes read in full by `pg_restore -f /dev/null` while
// they stream, and a manifest whose counts and fingerprints come from pg_dump's own snapshot.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { PassThrough, Transform } from "node:stream";
import type { Client, QueryResult } from "pg";
import { withPassfile } from "../database/childEnv";
import { connect, terminateSession, type ConnectionSettings } from "../database/connection";
import { StepError } from "../errors";
import { captureState, MANIFEST_FORMAT, manifestUriFor, type Manifest } from "../proof/manifest";
import { pgTool } from "../database/pgTools";
import { formatBytes } from "../../../common/text";
import { progress } from "../progress";
import { currentRevision } from "../database/revision";
import { runChild, stderrSummary, type RunResult } from "../processes/run";
import type { BackupStore } from "./storage";
import { tableOids } from "../database/tables";

export interface BackupResult extends Record<string, unknown> {
  uri: string;
  manifestUri: string;
  sha256: string;
  bytes: number;
  createdAt: string;
  revision: string | null;
  tables: Record<string, { rows: number }>;
  /** Milliseconds since the hook process started at which each phase was reached: where the time went. */
  timings: BackupTimings;
}

export interface BackupTimings {
  /** Node started and the step's code loaded. */
  stepStarted: number;
  /** Connected, snapshot exported, tables and revision read: pg_dump starts now. */
  dumpStarted: number;
  fingerprintsDone: number;
  dumpDone: number;
  verifyDone: number;
  /** The dump is stored (and, for a local folder, synced to disk). */
  dumpStored: number;
  manifestStored: number;
}

/** Milliseconds since this process started. */
const sinceStart = () => Math.round(performance.now());

/** vibes_backup_<YYYYmmdd_HHMMSS UTC>_at-<revision it holds>_<label>.dump: named after what it
 * holds, then what it is for (the deployment passes for-<target revision>). */
export function backupName(revision: string | null, label: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, "").replace("T", "_").slice(0, 15);
  return `vibes_backup_${stamp}_at-${revision ?? "none"}_${label}.dump`;
}

export async function createBackup(
  settings: ConnectionSettings,
  store: BackupStore,
  tables: string[],
  env: NodeJS.ProcessEnv,
  opts: { label: string; lockWaitTimeout: string },
): Promise<BackupResult> {
  const stepStarted = sinceStart();
  const log = progress("backup");
  // No `--version` check of its own: pg_dump refuses a newer server itself, right after
  // connecting and before it writes anything (see dumpError), and the verifying pg_restore only
  // reads what pg_dump writes.
  const pgDump = pgTool("pg_dump", env);
  const pgRestore = pgTool("pg_restore", env);
  const client = await connect(settings, { applicationName: "vibes-hooks backup" });
  let closing: Promise<void> | undefined;
  try {
    // One round trip (a simple query of three statements): pg_dump waits for the snapshot.
    // pg_dump (compression, single-threaded) is the critical path and needs a core of its own;
    // parallel workers for the fingerprints would take CPU from it and finish no sooner overall.
    const begun = (await client.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
      SET LOCAL max_parallel_workers_per_gather = 0; SELECT pg_export_snapshot() AS s, pg_backend_pid() AS pid`)) as unknown as QueryResult[];
    const snapshot = begun[2].rows[0].s as string;
    const sessionPid = begun[2].rows[0].pid as number;
    await tableOids(client, tables); // fail on a missing table before anything is written
    const revision = await currentRevision(client);
    const createdAt = new Date();
    const name = backupName(revision, opts.label, createdAt);
    log(`revision ${revision ?? "(none)"}; dumping ${settings.database} to ${store.uriFor(name)}`);

    const dumped = await withPassfile(settings, (childEnv) =>
      dumpAndVerify({ client, settings, sessionPid, store, name, tables, childEnv, pgDump, pgRestore, snapshot, lockWaitTimeout: opts.lockWaitTimeout, log }),
    env);
    // The session has served its purpose: it commits (ending without would count a rollback in
    // pg_stat_database) and closes while the manifest is written.
    closing = client.query("COMMIT").catch(() => undefined).then(() => client.end()).catch(() => undefined);

    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      createdAt: createdAt.toISOString(),
      revision,
      dump: { uri: dumped.uri, sha256: dumped.sha256, bytes: dumped.bytes },
      ...dumped.state,
    };
    let manifestUri: string;
    try {
      manifestUri = await store.putJson(`${name}.manifest.json`, manifest);
    } catch (err) {
      // A dump without its manifest cannot be verified or compared: it is not a backup.
      await store.remove(dumped.uri).catch(() => undefined);
      throw err;
    }
    if (manifestUri !== manifestUriFor(dumped.uri)) throw new Error(`manifest stored at unexpected ${manifestUri}`);
    log(`done: ${formatBytes(dumped.bytes)} sha256 ${dumped.sha256.slice(0, 12)}..., manifest ${manifestUri}`);
    return {
      uri: dumped.uri,
      manifestUri,
      sha256: dumped.sha256,
      bytes: dumped.bytes,
      createdAt: manifest.createdAt,
      revision,
      tables: Object.fromEntries(Object.entries(manifest.tables).map(([t, s]) => [t, { rows: s.rows }])),
      timings: { stepStarted, ...dumped.timings, manifestStored: sinceStart() },
    };
  } finally {
    await (closing ?? client.end().catch(() => undefined));
  }
}

interface DumpJob {
  client: Client;
  settings: ConnectionSettings;
  /** The backend of `client`'s session, which runs the fingerprint queries. */
  sessionPid: number;
  store: BackupStore;
  name: string;
  tables: string[];
  childEnv: NodeJS.ProcessEnv;
  pgDump: string;
  pgRestore: string;
  snapshot: string;
  lockWaitTimeout: string;
  log: (msg: string) => void;
}

/** Resolves with the value and the time it came (ms since the process started). */
function timed<T>(p: Promise<T>): Promise<{ value: T; at: number }> {
  return p.then((value) => ({ value, at: sinceStart() }));
}

async function dumpAndVerify(job: DumpJob) {
  const { store, name, childEnv, log } = job;
  const uri = store.uriFor(name);
  const hash = createHash("sha256");
  let bytes = 0;
  const raw = new PassThrough();
  const verifyIn = new PassThrough();
  const stop = new AbortController();
  const dumpStarted = sinceStart();

  const dump = runChild(job.pgDump, ["-Fc", "--no-password", `--snapshot=${job.snapshot}`, `--lock-wait-timeout=${job.lockWaitTimeout}`],
    { env: childEnv, stdout: raw, label: "pg_dump", signal: stop.signal });
  const verify = runChild(job.pgRestore, ["-f", "/dev/null"], { env: childEnv, stdin: verifyIn, label: "pg_restore (verification)", signal: stop.signal });
  const verifyGone = verify.then(() => undefined, () => undefined);
  let verifyExited = false;
  void verifyGone.then(() => (verifyExited = true));

  // Hash, count and copy to the verifier while the bytes pass on to the store. The stream ends
  // only once pg_dump has exited 0: a failed dump errors the upload instead of completing it.
  const tee = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      if (!verifyExited && !verifyIn.write(chunk)) {
        Promise.race([once(verifyIn, "drain"), verifyGone]).then(() => cb(null, chunk), cb);
      } else {
        cb(null, chunk);
      }
    },
    flush(cb) {
      dump.then((res) => {
        verifyIn.end();
        cb(res.code === 0 ? null : dumpError(res, job.pgDump));
      }, cb);
    },
  });
  raw.pipe(tee);
  dump.catch((err) => tee.destroy(err));

  const ticker = setInterval(() => log(`${formatBytes(bytes)} dumped and streamed`), 5000);
  let stateSettled = false;
  const state = captureState(job.client, job.tables).finally(() => (stateSettled = true));
  const put = store.put(name, tee);
  try {
    const [stored, dumpDone, verifyDone, captured] = await Promise.all([timed(put), timed(dump), timed(verify), timed(state)]);
    const [dumpRes, verifyRes] = [dumpDone.value, verifyDone.value];
    if (dumpRes.code !== 0) throw dumpError(dumpRes, job.pgDump);
    if (verifyRes.code !== 0) {
      if (/unsupported version \([\d.]+\) in file header/.test(verifyRes.stderr)) {
        throw new StepError(`${job.pgRestore} is older than ${job.pgDump}: it cannot read the archive (${stderrSummary(verifyRes.stderr, 1)})`,
          "use pg_dump and pg_restore of the same PostgreSQL version (VIBES_PG_BIN, or VIBES_PG_DUMP and VIBES_PG_RESTORE), then rerun the backup");
      }
      throw new StepError(`the dump failed verification: pg_restore could not read it in full (${stderrSummary(verifyRes.stderr)})`,
        "the dump is unusable: check pg_dump's output above and disk space, then rerun the backup");
    }
    const storedBytes = await store.size(uri);
    if (storedBytes !== bytes || stored.value.bytes !== bytes) {
      throw new StepError(`stored object is ${storedBytes ?? "missing"} bytes, ${bytes} were dumped`,
        "the backup store lost data: check it and rerun the backup");
    }
    log(`dump verified (pg_restore read all ${formatBytes(bytes)})`);
    return {
      uri, sha256: hash.digest("hex"), bytes, state: captured.value,
      timings: { dumpStarted, fingerprintsDone: captured.at, dumpDone: dumpDone.at, verifyDone: verifyDone.at, dumpStored: stored.at },
    };
  } catch (err) {
    // Stop whatever still runs, then remove anything stored under the name. The fingerprint pass
    // may have minutes to go on a large database (or wait on a lock): its session is ended
    // rather than waited for.
    stop.abort();
    tee.destroy(err as Error);
    raw.destroy();
    verifyIn.destroy();
    if (!stateSettled) await terminateSession(job.settings, job.sessionPid).catch(() => undefined);
    await Promise.allSettled([put, dump, verify, state]);
    await store.remove(uri).catch(() => undefined);
    log(`failed; removed ${uri}`);
    throw err;
  } finally {
    clearInterval(ticker);
  }
}

function dumpError(res: RunResult, pgDump: string): StepError {
  const mismatch = /server version: (\d+)[^;]*; \S+ version: (\d+)/.exec(res.stderr);
  if (mismatch) {
    return new StepError(`${pgDump} is version ${mismatch[2]} but the server is PostgreSQL ${mismatch[1]}`,
      `install PostgreSQL ${mismatch[1]} client programs and point VIBES_PG_BIN (or VIBES_PG_DUMP) at them`);
  }
  const why = res.timedOut ? "timed out" : stderrSummary(res.stderr) || `exit ${res.code}`;
  return new StepError(`pg_dump failed: ${why}`,
    /lock/i.test(why) ? "something holds locks on the tables: stop it (maintenance mode on?) and rerun the backup"
      : "fix the cause shown and rerun the backup");
}
