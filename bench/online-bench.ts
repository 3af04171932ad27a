/**
 * Online id change benchmark (prints figures; never a test): issue 19's figures, the online
 * strategy (hooks/online/) side by side with the offline one, while a load generator
 * (bench/loadgen.ts, in a process of its own) writes users, journals, tags and links through the
 * real app the whole time.
 *
 *   node -r ts-node/register/transpile-only bench/online-bench.ts [--sizes 1e5,1e6] [--runs 1]
 *     [--writers 8] [--think-ms 20] [--batch-size 1000] [--pause-ms 10] [--baseline-s 15] [--tail-s 5]
 *     [--vacuum] [--proof-outside-window]
 *
 * Per size (journals; users = journals/10, 50 tags), per run, each strategy on a fresh copy of
 * one generated database with the app started on it (test/e2e/harness.ts setUp), the load
 * started, then `--baseline-s` of load alone (the latency before), then:
 *   online    expand, backfill (batches of --batch-size keys, --pause-ms between), indexes and
 *             constraints, maintenance on (the app's admin switch, as the maintenance step does),
 *             the proof before the swap, the swap, the app's restart (it must come back on uuid
 *             ids), maintenance off; --tail-s more of load, the load stopped and checked, then
 *             contract (after the load: a later deployment's stage). --vacuum: VACUUM (ANALYZE) of
 *             the tables after the backfill (it leaves a dead version of every row, so autovacuum
 *             comes, and the phases' lock requests queue behind it). --proof-outside-window: the
 *             proof before maintenance on, with the load writing (the window is then the swap
 *             and the restart; the writes after the proof's snapshot are not in it);
 *   offline   maintenance on, `alembic upgrade 001_uuid_schema_migration`, the restart,
 *             maintenance off; the tail, the load stopped and checked.
 * Figures:
 *   window    the longest time any write waited from its first try to its acknowledgement
 *             (refusals and retries included); target <= 5 s at 10^6, and 10^6 within 1.5x of 10^5;
 *   holds     the longest ACCESS EXCLUSIVE hold per phase. Online: the bench's own session, whose
 *             every transaction is watched: from the statement after which the session holds an
 *             ACCESS EXCLUSIVE relation lock (pg_locks, asked right after it) to its COMMIT's
 *             end; an upper bound (the statement's own lock wait is in it), beside the library's
 *             holdMs for the swap and contract. Both: a sampler (another session, every 20 ms)
 *             sees ACCESS EXCLUSIVE locks granted on the covered tables: a lower bound, blind to
 *             holds shorter than its period; for the offline migration it is the figure.
 *             Beside them, the longest part of any write's wait inside each phase: what a lock
 *             request queued in front of the app's writes cost them (a hold is short; the queue
 *             lasts up to the request's lock_timeout);
 *   writes    acknowledged, lost (every acknowledged write looked up in the database with its
 *             content, tags and ids: must be 0), and after the swap the rows whose integer side
 *             (what the swap reversed would serve) is off; p99 write latency during the backfill
 *             against the baseline's (target <= 3x);
 *   total     online: expand to maintenance off, plus contract; offline: maintenance on to off.
 * Also printed: failed attempts by cause, autovacuum runs on the tables (and those cancelled by a
 * lock request, from the server's log), and after the swap a session of the old version (a
 * statement prepared before it) and the id type the still running app reports.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { Client } from "pg";
import { DEFAULT_TABLES } from "../common/tables";
import { request } from "../hooks/lib/app/http";
import { connect, connectionFromEnv } from "../hooks/lib/database/connection";
import { tableOids } from "../hooks/lib/database/tables";
import { backfill, type BackfillResult } from "../hooks/online/backfill";
import { buildConstraints } from "../hooks/online/constraints";
import { expand } from "../hooks/online/expand";
import { readPlan } from "../hooks/online/plan";
import { proveBeforeSwap } from "../hooks/online/proof";
import { contract, swap } from "../hooks/online/swap";
import { run as maintenanceStep } from "../hooks/steps/maintenance";
import { restartApp, setUp, tearDown, type E2eEnv } from "../test/e2e/harness";
import { checkAcknowledged, now, spawnLoad, type AcknowledgedCheck, type LoadHandle, type LoadResult, type WriteRecord } from "./loadgen";

const { values: flags } = parseArgs({
  options: {
    sizes: { type: "string", default: "1e5,1e6" },
    runs: { type: "string", default: "1" },
    writers: { type: "string", default: "8" },
    "think-ms": { type: "string", default: "20" },
    "batch-size": { type: "string", default: "1000" },
    "pause-ms": { type: "string", default: "10" },
    "baseline-s": { type: "string", default: "15" },
    "tail-s": { type: "string", default: "5" },
    vacuum: { type: "boolean", default: false },
    "proof-outside-window": { type: "boolean", default: false },
  },
});
const num = (name: "runs" | "writers" | "think-ms" | "batch-size" | "pause-ms" | "baseline-s" | "tail-s", min: number) => {
  const v = Number(flags[name]);
  if (!(Number.isFinite(v) && v >= min)) throw new Error(`--${name} "${flags[name]}" is not a number >= ${min}`);
  return v;
};
const sizes = String(flags.sizes).split(",").map(Number);
const RUNS = num("runs", 1);
const WRITERS = num("writers", 1);
const THINK_MS = num("think-ms", 0);
const BATCH = num("batch-size", 1);
const PAUSE_MS = num("pause-ms", 0);
const BASELINE_MS = num("baseline-s", 5) * 1000;
const TAIL_MS = num("tail-s", 0) * 1000;
const TARGET_REVISION = "001_uuid_schema_migration";
const WINDOW_TARGET_MS = 5000;
const WINDOW_GROWTH = 1.5;
const P99_GROWTH = 3;
/** The load's first seconds are no baseline (connections, each writer's first user). */
const WARMUP_MS = 3000;

const log = (m: string) => process.stderr.write(`[bench +${((performance.now()) / 1000).toFixed(1)}s] ${m}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const secs = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : "-");
const msText = (ms: number | undefined) => (ms === undefined ? "-" : ms < 1000 ? `${ms.toFixed(1)} ms` : secs(ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};

interface Span {
  name: string;
  start: number;
  end: number;
}

interface Hold {
  phase: string;
  ms: number;
  statement: string;
}

interface Figures {
  strategy: "online" | "offline";
  /** The longest write wait, and that write. */
  windowMs: number;
  windowWrite: string;
  refusedWrites: number;
  spans: Span[];
  /** Longest ACCESS EXCLUSIVE hold per phase: the watched session's (online), the sampler's. */
  held: Record<string, number>;
  sampled: Record<string, number>;
  /** The library's own figure (swap, contract). */
  library: Record<string, number>;
  /** Per phase, the longest part of any write's wait spent inside it. */
  loadWait: Record<string, number>;
  writes: { acknowledged: number; abandoned: number; check: AcknowledgedCheck; intSideOff?: number };
  /** Every attempt that was not acknowledged, by cause ("maintenance", a status, a network error). */
  attempts: Record<string, number>;
  /** Writes with a failed attempt other than the app being down (restart): cause and phase. */
  odd: string[];
  autovacuum: Autovacuum;
  p99BeforeMs: number;
  p99BackfillMs?: number;
  totalMs: number;
  backfill?: BackfillResult;
  /** After the swap: the old version's prepared statement, and the id type the app still running reports. */
  afterSwap?: { oldSession: string; appBeforeRestart: string };
}

/**
 * The bench's session with every transaction watched for ACCESS EXCLUSIVE relation locks (see
 * the header): the same Client to the library, its queries passed through.
 */
function watched(client: Client, phase: () => string, holds: Hold[]): Client {
  let inTx = false;
  let since: number | null = null;
  let first = "";
  const held = async () => (await client.query(
    "SELECT count(*)::int AS n FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND mode = 'AccessExclusiveLock' AND granted")).rows[0].n > 0;
  const query = async (...args: unknown[]) => {
    const sql = String(typeof args[0] === "string" ? args[0] : (args[0] as { text: string }).text).trim();
    const verb = sql.split(/\s+/)[0].toUpperCase();
    if (verb === "BEGIN" || verb === "START") {
      inTx = true;
      since = null;
    }
    if (verb === "COMMIT" || verb === "ROLLBACK" || verb === "END") {
      try {
        return await (client.query as (...a: unknown[]) => Promise<unknown>)(...args);
      } finally {
        if (since !== null) holds.push({ phase: phase(), ms: now() - since, statement: first });
        inTx = false;
        since = null;
      }
    }
    const t0 = now();
    const res = await (client.query as (...a: unknown[]) => Promise<unknown>)(...args);
    // Once per transaction; set_config (the lock_timeout) takes no lock.
    if (inTx && since === null && !/^SELECT set_config/i.test(sql) && verb !== "BEGIN" && await held()) {
      since = t0;
      first = sql.replace(/\s+/g, " ").slice(0, 70);
    }
    // Outside a transaction a lock is gone when the statement returns: its whole time bounds the hold.
    if (!inTx && /^(ALTER|LOCK|TRUNCATE|CLUSTER|VACUUM FULL|DROP TABLE|CREATE (UNIQUE )?INDEX (?!CONCURRENTLY)|REINDEX (?!.*CONCURRENTLY))/i.test(sql)) {
      holds.push({ phase: phase(), ms: now() - t0, statement: sql.slice(0, 70) });
    }
    return res;
  };
  return new Proxy(client, {
    get(target, prop) {
      if (prop === "query") return query;
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** ACCESS EXCLUSIVE locks granted on the covered tables, as another session sees them every
 * `everyMs`: per transaction the time from first to last seen. */
async function lockSampler(e: E2eEnv, everyMs = 20) {
  const c = await connect(connectionFromEnv(e.db.env), { applicationName: "online bench lock sampler" });
  const oids = [...(await tableOids(c, DEFAULT_TABLES)).values()];
  const seen = new Map<string, { first: number; last: number }>();
  let on = true;
  const loop = (async () => {
    while (on) {
      const t = now();
      const rows = (await c.query(
        `SELECT DISTINCT virtualtransaction AS vx FROM pg_locks
          WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' AND granted AND relation = ANY($1::oid[]) AND pid <> pg_backend_pid()`, [oids])).rows;
      for (const r of rows) {
        const s = seen.get(r.vx);
        if (s) s.last = t;
        else seen.set(r.vx, { first: t, last: t });
      }
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      on = false;
      await loop;
      await c.end();
      return [...seen.values()];
    },
  };
}

/** Per phase (by when it was first seen / started), the longest. */
function byPhase(spans: Span[], items: { at: number; ms: number }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const it of items) {
    const s = spans.find((p) => it.at >= p.start && it.at <= p.end);
    if (s) out[s.name] = Math.max(out[s.name] ?? 0, it.ms);
  }
  return out;
}

class Timeline {
  readonly spans: Span[] = [];
  current = "between phases";

  async phase<T>(name: string, f: () => Promise<T> | T): Promise<T> {
    const span = { name, start: now(), end: NaN };
    this.current = name;
    log(`${name} ...`);
    try {
      return await f();
    } finally {
      span.end = now();
      this.spans.push(span);
      this.current = "between phases";
      log(`${name}: ${secs(span.end - span.start)}`);
    }
  }

  span(name: string): Span {
    return this.spans.find((s) => s.name === name)!;
  }
}

interface Autovacuum {
  vacuums: number;
  analyzes: number;
  /** Cancelled because a lock request waited for them past deadlock_timeout (the server's log). */
  cancelled: string[];
  /** "deadlock detected" in the server's log during the run (one database at a time runs): each
   * with the log's lines on it (the processes, their locks and statements). */
  deadlocks: string[];
}

/** Autovacuum on the covered tables so far: the statistics' counts and where the server log ends. */
async function autovacuumMark(e: E2eEnv, c: Client) {
  const r = (await c.query("SELECT coalesce(sum(autovacuum_count), 0)::int AS v, coalesce(sum(autoanalyze_count), 0)::int AS a FROM pg_stat_user_tables WHERE relname = ANY($1)", [DEFAULT_TABLES])).rows[0];
  return { vacuums: r.v as number, analyzes: r.a as number, logAt: statSync(join(e.pg.dir, "server.log")).size };
}

async function autovacuumSince(e: E2eEnv, c: Client, mark: Awaited<ReturnType<typeof autovacuumMark>>): Promise<Autovacuum> {
  const at = await autovacuumMark(e, c);
  const lines = readFileSync(join(e.pg.dir, "server.log")).subarray(mark.logAt).toString("utf8").split("\n");
  const cancelled: string[] = [];
  lines.forEach((l, i) => {
    const context = /automatic (?:vacuum|analyze) of table "([^"]+)"/.exec(lines[i + 1] ?? "");
    if (l.includes("canceling autovacuum task") && context && context[1].startsWith(`${e.db.name}.`)) cancelled.push(context[1].slice(e.db.name.length + 1));
  });
  return { vacuums: at.vacuums - mark.vacuums, analyzes: at.analyzes - mark.analyzes, cancelled, deadlocks: deadlocksIn(lines) };
}

/** Each "deadlock detected" with its DETAIL, CONTEXT and STATEMENT lines, one line each. */
function deadlocksIn(lines: string[]): string[] {
  const out: string[] = [];
  lines.forEach((l, i) => {
    if (!l.includes("deadlock detected")) return;
    const rest: string[] = [];
    for (let j = i + 1; j < lines.length && !/ (ERROR|LOG|WARNING|FATAL): /.test(lines[j]); j++) rest.push(lines[j].replace(/^\S+ \S+ \S+ \[\d+\] /, "").trim());
    out.push(rest.join(" | ").replace(/\s+/g, " ").slice(0, 900));
  });
  return out;
}

const ADMIN = (e: E2eEnv) => ({ ...process.env, VIBES_APP_URL: e.appUrl, VIBES_ADMIN_TOKEN: e.adminToken });

async function idTypeServed(e: E2eEnv): Promise<string> {
  const res = await request(e.appUrl, "/api/v1/status", { retries: 3 });
  return String((res.body as { id_type?: string } | null)?.id_type);
}

/** The load's figures, common to both strategies. */
function writeFigures(load: LoadResult, t: Timeline): Pick<Figures, "windowMs" | "windowWrite" | "refusedWrites" | "loadWait" | "p99BeforeMs" | "attempts" | "odd"> {
  const writes = load.writes;
  const wait = (w: WriteRecord) => w.end - w.start;
  const longest = writes.reduce((a, w) => (wait(w) > wait(a) ? w : a), writes[0]);
  const at = (ms: number) => t.spans.find((s) => ms >= s.start && ms <= s.end)?.name ?? "between phases";
  const loadWait: Record<string, number> = {};
  for (const s of t.spans) loadWait[s.name] = Math.max(0, ...writes.map((w) => Math.min(w.end, s.end) - Math.max(w.start, s.start)));
  const baseline = t.span("load only");
  const before = writes.filter((w) => w.start >= baseline.start && w.end <= baseline.end).map(wait);
  const attempts: Record<string, number> = {};
  for (const w of writes) {
    if (w.refused) attempts.maintenance = (attempts.maintenance ?? 0) + w.refused;
    for (const [k, n] of Object.entries(w.failures)) attempts[k] = (attempts[k] ?? 0) + n;
  }
  return {
    attempts,
    odd: writes.flatMap((w) => Object.entries(w.failures).filter(([k]) => !/^(ECONNREFUSED|ECONNRESET)$/.test(k))
      .map(([k, n]) => `${w.kind}: ${k} x${n}, its first try during ${at(w.start)}, acknowledged during ${at(w.end)}`)),
    windowMs: wait(longest),
    windowWrite: `${longest.kind}, ${longest.attempts} attempts (${longest.refused} refused by maintenance${Object.keys(longest.failures).length ? `, ${JSON.stringify(longest.failures)}` : ""}), from ${at(longest.start)} to ${at(longest.end)}`,
    refusedWrites: writes.filter((w) => w.refused > 0).length,
    loadWait,
    p99BeforeMs: quantile(before, 0.99),
  };
}

async function startLoad(e: E2eEnv, c: Client, prefix: string): Promise<LoadHandle> {
  const existingTags = (await c.query("SELECT name FROM tags")).rows.map((r) => r.name as string);
  // Bounded by itself too (an hour, and a grace for the writes in flight): stop() ends it sooner.
  return spawnLoad({ baseUrl: e.appUrl, writers: WRITERS, thinkMs: THINK_MS, durationMs: 3_600_000, graceMs: 120_000, prefix, existingTags, progressEveryMs: 15_000 });
}

async function onlineRun(shape: object, prefix: string): Promise<Figures> {
  const e = await setUp(shape);
  const raw = await connect(connectionFromEnv(e.db.env), { applicationName: "online bench" });
  const t = new Timeline();
  const holds: Hold[] = [];
  const c = watched(raw, () => t.current, holds);
  const libLog = (m: string) => (/hold|held|done|validated|built|not granted|too long/.test(m) ? log(`  ${m}`) : undefined);
  let load: LoadHandle | undefined;
  const sampler = await lockSampler(e);
  const vacuumMark = await autovacuumMark(e, raw);
  try {
    load = await startLoad(e, raw, prefix);
    await sleep(WARMUP_MS);
    await t.phase("load only", () => sleep(BASELINE_MS));
    const plan = await readPlan(c, DEFAULT_TABLES);
    await t.phase("expand", () => expand(c, plan, { log: libLog }));
    const filled = await t.phase("backfill", () => backfill(c, plan, { batchSize: BATCH, pauseMs: PAUSE_MS, progressEveryMs: 10_000, log }));
    if (!filled.completed) throw new Error("the backfill stopped before its end");
    if (flags.vacuum) await t.phase("vacuum", () => c.query(`VACUUM (ANALYZE) ${DEFAULT_TABLES.join(", ")}`));
    await t.phase("constraints", () => buildConstraints(c, plan, { log: libLog }));
    const prove = async () => {
      const proof = await t.phase("proof", () => proveBeforeSwap(c, plan, { tables: DEFAULT_TABLES, uuidVersion: 4 }));
      if (!proof.ok) {
        await maintenanceStep(["off"], ADMIN(e));
        throw new Error(`the proof before the swap failed: ${JSON.stringify(proof.checks.filter((k) => !k.ok))}`);
      }
    };
    if (flags["proof-outside-window"]) await prove();
    await t.phase("maintenance on", () => maintenanceStep(["on"], ADMIN(e)));
    if (!flags["proof-outside-window"]) await prove();
    // A session of the old version: a statement prepared before the swap, run again after it.
    const old = await connect(connectionFromEnv(e.db.env), { applicationName: "online bench: old version's session" });
    const prepared = { name: "old_version_user", text: "SELECT id, email FROM users WHERE email = $1", values: ["nobody@load.test"] };
    await old.query(prepared);
    const swapped = await t.phase("swap", () => swap(c, plan, { log: libLog }));
    const oldSession = await old.query(prepared).then(() => "still answers", (err: Error) => `fails: ${err.message}`).finally(() => old.end());
    const beforeRestart = await idTypeServed(e);
    await t.phase("restart", () => restartApp(e));
    const served = await idTypeServed(e);
    if (served !== "uuid") throw new Error(`after the swap and the restart the app serves ${served} ids, not uuid`);
    await t.phase("maintenance off", () => maintenanceStep(["off"], ADMIN(e)));
    await t.phase("load after", () => sleep(TAIL_MS));
    const result = await load.stop();
    load = undefined;
    log(`load stopped: ${result.writes.length} writes; checking them`);
    const check = await checkAcknowledged(raw, result);
    const intSideOff = await integerSideOff(raw);
    const contracted = await t.phase("contract", () => contract(c, plan, { log: libLog }));
    const lockSeen = await sampler.stop();
    const autovacuum = await autovacuumSince(e, raw, vacuumMark);
    const backfillSpan = t.span("backfill");
    const during = result.writes.filter((w) => w.start >= backfillSpan.start && w.start < backfillSpan.end).map((w) => w.end - w.start);
    return {
      strategy: "online",
      autovacuum,
      ...writeFigures(result, t),
      spans: t.spans,
      held: holds.reduce<Record<string, number>>((acc, h) => ({ ...acc, [h.phase]: Math.max(acc[h.phase] ?? 0, h.ms) }), {}),
      sampled: byPhase(t.spans, lockSeen.map((s) => ({ at: s.first, ms: s.last - s.first }))),
      library: { swap: swapped.holdMs, contract: contracted.holdMs },
      writes: { acknowledged: result.writes.filter((w) => w.outcome === "acknowledged").length, abandoned: result.writes.filter((w) => w.outcome === "abandoned").length, check, intSideOff },
      p99BackfillMs: quantile(during, 0.99),
      totalMs: t.span("maintenance off").end - t.span("expand").start + (t.span("contract").end - t.span("contract").start),
      backfill: filled,
      afterSwap: { oldSession, appBeforeRestart: beforeRestart },
    };
  } finally {
    await load?.stop().catch(() => undefined);
    await sampler.stop().catch(() => undefined);
    await raw.end().catch(() => undefined);
    await tearDown(e);
  }
}

/** After the swap, rows whose integer side (kept by the triggers for the swap reversed) is not
 * what the uuid keys say: must be 0, or the swap reversed would lose writes. */
async function integerSideOff(c: Client): Promise<number> {
  const r = (await c.query(`SELECT
      (SELECT count(*) FROM users WHERE id__int IS NULL) + (SELECT count(*) FROM tags WHERE id__int IS NULL) + (SELECT count(*) FROM journals WHERE id__int IS NULL)
    + (SELECT count(*) FROM journals j JOIN users u ON u.id = j.user_id WHERE j.user_id__int IS DISTINCT FROM u.id__int)
    + (SELECT count(*) FROM journal_tags x JOIN journals j ON j.id = x.journal_id WHERE x.journal_id__int IS DISTINCT FROM j.id__int)
    + (SELECT count(*) FROM journal_tags x JOIN tags g ON g.id = x.tag_id WHERE x.tag_id__int IS DISTINCT FROM g.id__int) AS n`)).rows[0];
  return Number(r.n);
}

async function offlineRun(shape: object, prefix: string): Promise<Figures> {
  const e = await setUp(shape);
  const raw = await connect(connectionFromEnv(e.db.env), { applicationName: "online bench (offline run)" });
  const t = new Timeline();
  let load: LoadHandle | undefined;
  const sampler = await lockSampler(e);
  const vacuumMark = await autovacuumMark(e, raw);
  try {
    load = await startLoad(e, raw, prefix);
    await sleep(WARMUP_MS);
    await t.phase("load only", () => sleep(BASELINE_MS));
    await t.phase("maintenance on", () => maintenanceStep(["on"], ADMIN(e)));
    await t.phase("migration", () => e.pg.runApp(e.db.env, ["-m", "alembic", "upgrade", TARGET_REVISION], "alembic upgrade"));
    await t.phase("restart", () => restartApp(e));
    const served = await idTypeServed(e);
    if (served !== "uuid") throw new Error(`after the migration and the restart the app serves ${served} ids, not uuid`);
    await t.phase("maintenance off", () => maintenanceStep(["off"], ADMIN(e)));
    await t.phase("load after", () => sleep(TAIL_MS));
    const result = await load.stop();
    load = undefined;
    log(`load stopped: ${result.writes.length} writes; checking them`);
    const check = await checkAcknowledged(raw, result);
    const lockSeen = await sampler.stop();
    const autovacuum = await autovacuumSince(e, raw, vacuumMark);
    return {
      strategy: "offline",
      autovacuum,
      ...writeFigures(result, t),
      spans: t.spans,
      held: {},
      sampled: byPhase(t.spans, lockSeen.map((s) => ({ at: s.first, ms: s.last - s.first }))),
      library: {},
      writes: { acknowledged: result.writes.filter((w) => w.outcome === "acknowledged").length, abandoned: result.writes.filter((w) => w.outcome === "abandoned").length, check },
      totalMs: t.span("maintenance off").end - t.span("maintenance on").start,
    };
  } finally {
    await load?.stop().catch(() => undefined);
    await sampler.stop().catch(() => undefined);
    await raw.end().catch(() => undefined);
    await tearDown(e);
  }
}

const pass = (ok: boolean) => (ok ? "PASS" : "MISS");

function printSize(out: (l?: string) => void, journals: number, shape: { users: number; tags: number }, online: Figures[], offline: Figures[]): void {
  const m = (fs: Figures[], f: (x: Figures) => number | undefined) => {
    const xs = fs.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
    return xs.length ? median(xs) : undefined;
  };
  const worst = (fs: Figures[], f: (x: Figures) => number) => Math.max(...fs.map(f));
  const row = (label: string, a: string, b: string) => out(`  ${label.padEnd(46)} ${a.padStart(20)} ${b.padStart(20)}`);
  out(`${journals} journals (${shape.users} users, ${shape.tags} tags); load: ${WRITERS} writers, ${THINK_MS} ms between one writer's writes; ` +
    `backfill batches of ${BATCH} keys, ${PAUSE_MS} ms pause; median of ${online.length} run(s)`);
  row("", "online", "offline");
  const windowOn = m(online, (f) => f.windowMs)!;
  const windowOff = m(offline, (f) => f.windowMs)!;
  row("window (longest write wait)", secs(windowOn), secs(windowOff));
  row("writes refused at least once (maintenance)", String(m(online, (f) => f.refusedWrites)), String(m(offline, (f) => f.refusedWrites)));
  row("writes acknowledged", String(m(online, (f) => f.writes.acknowledged)), String(m(offline, (f) => f.writes.acknowledged)));
  row("  lost (acknowledged, not found as such)", String(worst(online, (f) => f.writes.check.lost.length)), String(worst(offline, (f) => f.writes.check.lost.length)));
  row("  abandoned (never acknowledged)", String(worst(online, (f) => f.writes.abandoned)), String(worst(offline, (f) => f.writes.abandoned)));
  row("  duplicates (a retry after a lost answer)", String(worst(online, (f) => f.writes.check.duplicates.length)), String(worst(offline, (f) => f.writes.check.duplicates.length)));
  row("  acknowledged ids found in the database", String(m(online, (f) => f.writes.check.idsChecked)), String(m(offline, (f) => f.writes.check.idsChecked)));
  row("  rows whose integer side is off after the swap", String(worst(online, (f) => f.writes.intSideOff ?? 0)), "-");
  const before = m(online, (f) => f.p99BeforeMs)!;
  const during = m(online, (f) => f.p99BackfillMs)!;
  row("write p99: load only / during the backfill", `${msText(before)} / ${msText(during)}`, `${msText(m(offline, (f) => f.p99BeforeMs))} / -`);
  const causes = (f: Figures) => Object.entries(f.attempts).map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  out(`  attempts not acknowledged, by cause: online ${causes(online[0])}; offline ${causes(offline[0])}`);
  const av = (f: Figures) => `${f.autovacuum.vacuums} vacuums, ${f.autovacuum.analyzes} analyzes, ${f.autovacuum.cancelled.length} cancelled by a lock request${f.autovacuum.cancelled.length ? ` (${f.autovacuum.cancelled.join(", ")})` : ""}`;
  out(`  autovacuum on the tables during the run: online ${av(online[0])}; offline ${av(offline[0])}`);
  out(`  deadlocks in the server's log: online ${online[0].autovacuum.deadlocks.length}, offline ${offline[0].autovacuum.deadlocks.length}`);
  for (const f of [online[0], offline[0]]) for (const d of f.autovacuum.deadlocks.slice(0, 3)) out(`    ${f.strategy}: ${d}`);
  for (const f of [online[0], offline[0]]) for (const l of f.odd.slice(0, 5)) out(`    ${f.strategy}: a write failed other than by the restart: ${l}`);
  const bf = online[0].backfill!;
  row("backfill: batches, lock retries", `${bf.batches}, ${bf.lockRetries}`, "-");
  const totalOn = m(online, (f) => f.totalMs)!;
  const totalOff = m(offline, (f) => f.totalMs)!;
  row("total time (online: expand..off, + contract)", secs(totalOn), secs(totalOff));
  out(`  online / offline total time: ${(totalOn / totalOff).toFixed(2)}x`);
  out("  per phase: its time; the longest ACCESS EXCLUSIVE hold (w: the watched session, an upper bound; s: sampled every 20 ms, a");
  out("  lower bound; lib: the library's holdMs); the longest part of any write's wait inside the phase");
  const cols = (a: string, b: string, c: string, d: string, e: string, f: string, g: string) =>
    out(`    ${a.padEnd(16)} ${b.padStart(9)} ${c.padStart(26)} ${d.padStart(9)}   ${e.padStart(9)} ${f.padStart(12)} ${g.padStart(9)}`);
  cols("phase", "online", "ACCESS EXCLUSIVE", "wait", "offline", "ACC. EXCL.", "wait");
  // Online's order, each offline-only phase after the phase it follows offline.
  const phases = online[0].spans.map((sp) => sp.name);
  offline[0].spans.forEach((sp, i) => {
    if (!phases.includes(sp.name)) phases.splice(i === 0 ? 0 : phases.indexOf(offline[0].spans[i - 1].name) + 1, 0, sp.name);
  });
  const cells = (fs: Figures[], p: string): [string, string, string] => {
    if (!fs[0].spans.some((sp) => sp.name === p)) return ["", "", ""];
    const dur = m(fs, (f) => { const sp = f.spans.find((x) => x.name === p)!; return sp.end - sp.start; })!;
    const held = m(fs, (f) => f.held[p]);
    const sampled = m(fs, (f) => f.sampled[p]);
    const lib = m(fs, (f) => f.library[p]);
    const parts = [held === undefined ? "" : `w<=${msText(held)}`, sampled === undefined ? "" : `s>=${msText(sampled)}`, lib === undefined ? "" : `lib ${msText(lib)}`].filter(Boolean);
    return [secs(dur), parts.join(" ") || "none", secs(m(fs, (f) => f.loadWait[p])!)];
  };
  for (const p of phases) cols(p, ...cells(online, p), ...cells(offline, p));
  if (online.length > 1) out(`  each run's window, online / offline: ${online.map((f, i) => `${secs(f.windowMs)} / ${secs(offline[i].windowMs)}`).join(", ")}`);
  out(`  after the swap: a session of the old version, its statement prepared before: ${online[0].afterSwap!.oldSession}`);
  out(`  after the swap, before its restart, the app reports id_type ${online[0].afterSwap!.appBeforeRestart}`);
  out(`  the longest write online: ${online[0].windowWrite}`);
  out(`  the longest write offline: ${offline[0].windowWrite}`);
  out(`  target window <= ${secs(WINDOW_TARGET_MS)} (at 10^6): online ${pass(windowOn <= WINDOW_TARGET_MS)} (${secs(windowOn)}), offline ${pass(windowOff <= WINDOW_TARGET_MS)} (${secs(windowOff)})`);
  const notKept = (fs: Figures[]) => worst(fs, (f) => f.writes.check.lost.length + f.writes.abandoned);
  out(`  target 0 lost (nor abandoned): online ${pass(notKept(online) === 0)}, offline ${pass(notKept(offline) === 0)}`);
  out(`  target p99 during the backfill <= ${P99_GROWTH}x load only: ${pass(during <= P99_GROWTH * before)} (${(during / before).toFixed(2)}x)`);
  for (const f of [...online, ...offline]) for (const l of [...f.writes.check.lost, ...f.writes.check.duplicates].slice(0, 5)) out(`    ${f.strategy}: ${l}`);
  out();
}

async function main(): Promise<void> {
  const lines: string[] = [];
  const out = (l = "") => lines.push(l);
  const windows = new Map<number, number>();
  for (const journals of sizes) {
    const shape = { users: Math.max(1, Math.round(journals / 10)), journalsPerUser: 10, tags: 50, seed: 1 };
    const online: Figures[] = [];
    const offline: Figures[] = [];
    for (let i = 1; i <= RUNS; i++) {
      log(`${journals} journals, run ${i}/${RUNS}: online (the first copy generates the database)`);
      online.push(await onlineRun(shape, `load-${journals}-${i}-on`));
      log(`${journals} journals, run ${i}/${RUNS}: offline`);
      offline.push(await offlineRun(shape, `load-${journals}-${i}-off`));
    }
    printSize(out, journals, shape, online, offline);
    windows.set(journals, median(online.map((f) => f.windowMs)));
    // The figures so far, while the next size runs.
    if (journals !== sizes.at(-1)) process.stderr.write(lines.join("\n") + "\n");
  }
  const [small, big] = [windows.get(1e5), windows.get(1e6)];
  if (small !== undefined && big !== undefined) {
    out(`target online window at 10^6 within ${WINDOW_GROWTH}x of 10^5: ${pass(big <= WINDOW_GROWTH * small)} (${secs(big)} / ${secs(small)} = ${(big / small).toFixed(2)}x)`);
  }
  console.log(lines.join("\n"));
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
