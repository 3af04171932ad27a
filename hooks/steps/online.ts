// `online <phase>`: the online id change (hooks/online/), one phase per run, so that the program
// runs each phase as a resource of its own and an operator can run any of them by hand. Where the
// change stands is read from the catalog every time (readPhase), never kept here, so that:
//   - a phase run again where it runs continues (each phase of the library is idempotent);
//   - a phase the database is already past does nothing and says so (the program may run the
//     chain again on a database that went further);
//   - a phase whose prerequisites are missing is refused, naming the phase the database is in and
//     the step to run.
// status changes nothing.
import { constants as osConstants } from "node:os";
import type { Client } from "pg";
import type { Check } from "../../common/types";
import type { StepFlags, StepWord } from "../contracts";
import { parseStep } from "../lib/args";
import { connect, connectionFromEnv } from "../lib/database/connection";
import { quoteIdent, tablesFromEnv } from "../lib/database/tables";
import { StepError, UsageError, errorMessage } from "../lib/errors";
import { progress } from "../lib/progress";
import { proofOptions } from "../lib/proof/proof";
import { recordOnlineSwap, recordOnlineSwapBack } from "../lib/database/revision";
import { REVISION_RE } from "../lib/migrationSource";
import { backfill } from "../online/backfill";
import { buildConstraints, notReady } from "../online/constraints";
import type { LockRetryOptions } from "../online/ddl";
import { expand } from "../online/expand";
import { assertSynced, readPhase, readPlan, tablesWithoutTrigger, uuidName, type OnlinePlan, type Phase } from "../online/plan";
import { proveBeforeSwap } from "../online/proof";
import { rollback } from "../online/rollback";
import { contract, reverseSwap, swap } from "../online/swap";

type Work = Exclude<StepWord<"online">, "status">;

interface Settings {
  /** swap: the revision to record for the swapped schema. */
  revision?: string;
  idDefault: string | null;
  uuidVersion: number | null;
  batchSize?: number;
  pauseMs?: number;
  /** Absent: each library call keeps its own default (the swap's is shorter than a DDL's). */
  lockTimeoutMs?: number;
  lockAttempts?: number;
}

interface Context {
  client: Client;
  plan: OnlinePlan;
  tables: string[];
  settings: Settings;
  lock: LockRetryOptions;
  log: (msg: string) => void;
}

/** Where each phase runs, and where the database is already past it (a re-run does nothing);
 * anywhere else it is refused. */
const RULES: Record<Work, { runs: Phase[]; past: Phase[] }> = {
  expand: { runs: ["initial", "expanded"], past: ["swapped", "contracted"] },
  backfill: { runs: ["expanded"], past: ["swapped", "contracted"] },
  constraints: { runs: ["expanded"], past: ["swapped", "contracted"] },
  swap: { runs: ["expanded"], past: ["swapped", "contracted"] },
  // Before expand and after a swap reversed the database looks the same: nothing to reverse.
  "swap-back": { runs: ["swapped"], past: ["initial"] },
  rollback: { runs: ["expanded"], past: ["initial"] },
  contract: { runs: ["swapped"], past: ["contracted"] },
};

const STANDS: Record<Phase, string> = {
  initial: "initial (integer ids, nothing of the change in place)",
  expanded: "expanded (uuid columns beside the integer ones, kept right by triggers; the app on the integer ids)",
  swapped: "swapped (the uuid columns carry the ids; the integer ones kept right for a swap-back)",
  contracted: "contracted (uuid ids only; the integer ones dropped)",
};

// PostgreSQL's lock_timeout and Node's timers both stop at 2^31 - 1 ms.
const MAX_MS = 2_147_483_647;
/** status counts the rows left to backfill only while that is cheap: a full scan per table. */
const COUNT_BUDGET_MS = 5000;

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values, positionals } = parseStep("online", args);
  const phase = positionals[0];
  const settings = settingsFrom(values);
  const tables = tablesFromEnv(env);
  const log = progress("online");
  const client = await connect(connectionFromEnv(env), { applicationName: `vibes-hooks online ${phase}` });
  try {
    const plan = await readPlan(client, tables, { idDefault: settings.idDefault });
    const before = await readPhase(client, plan);
    if (phase === "status") return await status(client, plan, before, log);
    const rule = RULES[phase];
    if (rule.past.includes(before)) {
      // A run cut short between its phase and recording the revision finishes that here.
      if (phase === "swap" && settings.revision) await recordOnlineSwap(client, settings.revision, env.VIBES_MIGRATION_FILES_SHA256 ?? "", log);
      if (phase === "swap-back" && before === "initial") await recordOnlineSwapBack(client, log);
      log(`${phase}: nothing to do, the database is ${STANDS[before]}`);
      return { phaseBefore: before, phase: before, did: `nothing: the database is already ${before}` };
    }
    if (!rule.runs.includes(before)) throw refusal(phase, before);
    const lock: LockRetryOptions = {
      ...(settings.lockTimeoutMs === undefined ? {} : { lockTimeoutMs: settings.lockTimeoutMs }),
      ...(settings.lockAttempts === undefined ? {} : { attempts: settings.lockAttempts }),
    };
    const out = await PHASES[phase]({ client, plan, tables, settings, lock, log });
    // The schema is the target's now (or the one before, again): the version table says so.
    if (phase === "swap" && settings.revision) await recordOnlineSwap(client, settings.revision, env.VIBES_MIGRATION_FILES_SHA256 ?? "", log);
    if (phase === "swap-back") await recordOnlineSwapBack(client, log);
    return { phaseBefore: before, phase: await readPhase(client, plan), ...out };
  } finally {
    await client.end().catch(() => undefined);
  }
}

function settingsFrom(values: StepFlags<"online">): Settings {
  // The same id flags as migrate and validate; the ids' type is uuid by definition here.
  const { idDefault, uuidVersion } = proofOptions("online", { ...values, "id-type": "uuid" });
  const whole = (flag: "batch-size" | "pause-ms" | "lock-timeout-ms" | "lock-attempts", min: number, max: number, example: string): number | undefined => {
    const text = values[flag];
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!/^\d+$/.test(text.trim()) || n < min || n > max) {
      throw new UsageError(`online: --${flag} "${text}" is not a whole number ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`}`, `pass e.g. --${flag} ${example}`);
    }
    return n;
  };
  if (values.revision !== undefined && !REVISION_RE.test(values.revision)) {
    throw new UsageError(`online: --revision "${values.revision}" is not a revision id`, "pass the target revision, e.g. --revision 001_uuid_schema_migration");
  }
  return {
    revision: values.revision,
    idDefault, uuidVersion,
    batchSize: whole("batch-size", 1, Number.MAX_SAFE_INTEGER, "1000"),
    pauseMs: whole("pause-ms", 0, MAX_MS, "50"),
    lockTimeoutMs: whole("lock-timeout-ms", 1, MAX_MS, "1000"),
    lockAttempts: whole("lock-attempts", 1, Number.MAX_SAFE_INTEGER, "10"),
  };
}

function refusal(work: Work, at: Phase): StepError {
  let next: string;
  if (at === "contracted") next = "the integer ids are gone: going back is the backup taken before the change (vibes-hooks restore --uri URI --force)";
  else if (work === "rollback") next = "after the swap, `vibes-hooks online swap-back` reverses it (together with the app back on the version that uses the integer ids)";
  else if (work === "swap-back") next = "the swap has not happened: `vibes-hooks online rollback` drops what expand added";
  else if (at === "initial") next = "run `vibes-hooks online expand` first";
  else next = "run `vibes-hooks online swap` first (after backfill and constraints)";
  return new StepError(`online ${work}: the database is ${STANDS[at]}; ${work} runs when it is ${RULES[work].runs.join(" or ")}`, next, { details: { phase: at } });
}

const round = (ms: number) => Math.round(ms * 10) / 10;

const PHASES: Record<Work, (c: Context) => Promise<Record<string, unknown>>> = {
  async expand({ client, plan, lock, log }) {
    const { added } = await expand(client, plan, { ...lock, log });
    const columns = added.filter((a) => !a.includes(": trigger "));
    return { added, did: `${columns.length} uuid columns added; the sync triggers in place on ${plan.tables.length} tables` };
  },

  async backfill({ client, plan, settings, lock, log }) {
    log(`backfill: ${plan.tables.length} tables${settings.batchSize ? `, ${settings.batchSize} keys per batch` : ""}; SIGINT or SIGTERM stops it between batches (a re-run continues)`);
    const { value: r, signal } = await stoppable(log, (stop) => backfill(client, plan, {
      batchSize: settings.batchSize, pauseMs: settings.pauseMs, lockTimeoutMs: lock.lockTimeoutMs,
      // --lock-attempts counts the first try; the library counts the retries after it.
      lockRetries: lock.attempts === undefined ? undefined : lock.attempts - 1, log, stop,
    }));
    const written = Object.values(r.rows).reduce((n, t) => n + t.ids + t.foreignKeys, 0);
    const summary = { rows: r.rows, batches: r.batches, lockRetries: r.lockRetries, elapsedMs: r.elapsedMs };
    if (!r.completed) {
      throw new StepError(`online backfill: stopped by ${signal ?? "request"} between batches after ${written} rows; what it wrote is kept`,
        "run `vibes-hooks online backfill` again: it continues where it stopped", { details: { phase: "expanded", resumable: true, ...summary } });
    }
    return { ...summary, did: `${written} rows written in ${r.batches} batches (${r.lockRetries} lock retries)` };
  },

  async constraints({ client, plan, lock, log }) {
    await assertSynced(client, plan, "online constraints");
    try {
      const { made } = await buildConstraints(client, plan, { ...lock, log });
      return { made, did: `${made.length} indexes and constraints made, every one now valid` };
    } catch (err) {
      throw constraintFailure(err);
    }
  },

  async swap({ client, plan, tables, settings, lock, log }) {
    await assertSynced(client, plan, "online swap");
    const pending = await notReady(client, plan);
    if (pending.length > 0) {
      throw new StepError(`online swap: refused, not ready: ${pending.join("; ")}; nothing was swapped`,
        "run `vibes-hooks online constraints` (it builds what is missing), then swap again", { details: { phase: "expanded", notReady: pending } });
    }
    // Just before the swap: the triggers keep what it proves right for every write after it.
    log("proof before the swap (one snapshot)");
    const proof = await proveBeforeSwap(client, plan, { tables, uuidVersion: settings.uuidVersion });
    const failed = proof.checks.filter((c) => !c.ok);
    for (const c of failed) log(`FAIL ${c.name}: ${c.detail}`);
    if (failed.length > 0) {
      throw new StepError(`online swap: refused, the proof before the swap failed: ${failed.map((c) => c.name).join(", ")}; nothing was swapped`,
        proofNext(failed, settings.uuidVersion), { details: { phase: "expanded", failedChecks: failed, checks: proof.checks.length } });
    }
    log(`proof before the swap: ${proof.checks.length} checks passed`);
    const r = await swap(client, plan, { ...lock, log });
    return { holdMs: round(r.holdMs), attempts: r.attempts, statements: r.statements, checks: proof.checks.length,
      did: `proven (${proof.checks.length} checks), then swapped in one transaction: ACCESS EXCLUSIVE held ${round(r.holdMs)} ms` };
  },

  async "swap-back"({ client, plan, lock, log }) {
    const r = await reverseSwap(client, plan, { ...lock, log });
    return { holdMs: round(r.holdMs), attempts: r.attempts, statements: r.statements, validated: r.validated,
      did: `the swap reversed, what expand added dropped: ACCESS EXCLUSIVE held ${round(r.holdMs)} ms; ${r.validated.length} foreign keys validated after it` };
  },

  async rollback({ client, plan, lock, log }) {
    const r = await rollback(client, plan, { ...lock, log });
    return { holdMs: round(r.holdMs), did: `what expand and constraints added dropped: ACCESS EXCLUSIVE held ${round(r.holdMs)} ms` };
  },

  async contract({ client, plan, lock, log }) {
    const r = await contract(client, plan, { ...lock, log });
    return { holdMs: round(r.holdMs), attempts: r.attempts, statements: r.statements,
      did: `the integer columns and the triggers dropped: ACCESS EXCLUSIVE held ${round(r.holdMs)} ms` };
  },
};

/** What to do after a failed proof: only the uuid version wrong is a matter of flags; otherwise
 * the backfill and constraints fill what is missing, and what they cannot fix calls for rollback. */
function proofNext(failed: Check[], uuidVersion: number | null): string {
  if (failed.every((c) => c.name.startsWith("online.uuid_version."))) {
    return `the new ids are not uuid version ${uuidVersion}: pass the --uuid-version that --id-default makes (or any); to change the ids' default, ` +
      "run `vibes-hooks online rollback` and expand again with that --id-default";
  }
  return "run `vibes-hooks online backfill` (it fills only what is missing) and `vibes-hooks online constraints`, then swap again; if the same checks fail, " +
    "the new columns hold values the triggers did not write: run `vibes-hooks online rollback` and start again from expand";
}

/** A constraint the data violates: rows the backfill has not reached, or values written around the triggers. */
function constraintFailure(err: unknown): unknown {
  const code = (err as { code?: string }).code ?? ((err as Error).cause as { code?: string } | undefined)?.code;
  if (code === "23514") {
    return new StepError(`online constraints: ${errorMessage(err)}: rows without their new id (the backfill is not done)`,
      "run `vibes-hooks online backfill` to the end, then constraints again", { cause: err, details: { phase: "expanded" } });
  }
  if (code?.startsWith("23")) {
    return new StepError(`online constraints: ${errorMessage(err)}`,
      "the new columns hold values the triggers did not write (see `vibes-hooks online status`): run `vibes-hooks online rollback` and start again from expand",
      { cause: err, details: { phase: "expanded" } });
  }
  return err;
}

const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/**
 * Runs `work` with the first SIGINT or SIGTERM asking it to stop (`stop()` true). The backfill
 * runs in this process, so the CLI's own handlers, which pass a signal on to child processes and
 * exit when there is none, are set aside meanwhile; a second signal goes to them: exit at once.
 */
async function stoppable<T>(log: (msg: string) => void, work: (stop: () => boolean) => Promise<T>): Promise<{ value: T; signal?: NodeJS.Signals }> {
  const saved = new Map(STOP_SIGNALS.map((s) => [s, process.listeners(s) as NodeJS.SignalsListener[]]));
  let signal: NodeJS.Signals | undefined;
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    for (const s of STOP_SIGNALS) {
      process.removeListener(s, onSignal);
      for (const l of saved.get(s)!) process.on(s, l);
    }
  };
  const onSignal = (s: NodeJS.Signals) => {
    if (signal === undefined) {
      signal = s;
      log(`${s}: stopping after the batch in flight (a re-run continues; a second signal exits at once)`);
      return;
    }
    restore();
    const others = saved.get(s as (typeof STOP_SIGNALS)[number])!;
    if (others.length === 0) process.exit(128 + osConstants.signals[s]);
    for (const l of others) l(s);
  };
  for (const s of STOP_SIGNALS) {
    process.removeAllListeners(s);
    process.on(s, onSignal);
  }
  try {
    return { value: await work(() => signal !== undefined), signal };
  } finally {
    restore();
  }
}

async function status(client: Client, plan: OnlinePlan, phase: Phase, log: (msg: string) => void): Promise<Record<string, unknown>> {
  // Only where a trigger must be (between expand and contract), and constraints matter (before the swap).
  const withoutTrigger = phase === "expanded" || phase === "swapped" ? await tablesWithoutTrigger(client, plan) : [];
  const pending = phase === "expanded" ? await notReady(client, plan) : [];
  // Without every trigger, expand stopped halfway: some new columns may be missing.
  const rows = phase === "expanded" && withoutTrigger.length === 0 ? await rowsToBackfill(client, plan) : null;
  const next = statusNext(phase, withoutTrigger, pending, rows);
  log(`the database is ${STANDS[phase]}`);
  if (withoutTrigger.length > 0) log(`no sync trigger on ${withoutTrigger.join(", ")}`);
  for (const p of pending) log(`not ready: ${p}`);
  for (const [table, r] of Object.entries(rows ?? {})) log(`to backfill: ${table}: ${r === null ? "not counted (too large to count cheaply)" : `${r.ids} ids, ${r.foreignKeys} rows' foreign keys`}`);
  log(`next: ${next}`);
  return { phase, tables: plan.tables.map((t) => t.table), tablesWithoutTrigger: withoutTrigger, notReady: pending, rowsToBackfill: rows, next };
}

type Left = Record<string, { ids: number; foreignKeys: number } | null>;

/** Rows the backfill would still write, per table (null once counting ran over its budget). */
async function rowsToBackfill(client: Client, plan: OnlinePlan): Promise<Left> {
  const q = quoteIdent;
  const deadline = Date.now() + COUNT_BUDGET_MS;
  const out: Left = {};
  try {
    for (const t of plan.tables) {
      const left = deadline - Date.now();
      if (left <= 0) {
        out[t.table] = null;
        continue;
      }
      // Autocommit statements: each table's ACCESS SHARE lock is released before the next.
      await client.query("SELECT set_config('statement_timeout', $1, false)", [`${left}ms`]);
      const fks = t.foreignKeys.map((fk) => `(${q(uuidName(fk.column))} IS NULL AND ${q(fk.column)} IS NOT NULL)`);
      try {
        const r = (await client.query(
          `SELECT ${t.id ? `count(*) FILTER (WHERE ${q(uuidName(t.id))} IS NULL)` : "0"}::bigint AS ids,
                  ${fks.length > 0 ? `count(*) FILTER (WHERE ${fks.join(" OR ")})` : "0"}::bigint AS fks FROM ${t.sql}`)).rows[0];
        out[t.table] = { ids: Number(r.ids), foreignKeys: Number(r.fks) };
      } catch (err) {
        if ((err as { code?: string }).code !== "57014") throw err; // statement_timeout
        out[t.table] = null;
      }
    }
  } finally {
    await client.query("SELECT set_config('statement_timeout', '0', false)").catch(() => undefined);
  }
  return out;
}

function statusNext(phase: Phase, withoutTrigger: string[], pending: string[], rows: Left | null): string {
  if (phase === "initial") return "run `vibes-hooks online expand`";
  if (phase === "contracted") return "nothing: the change is done";
  if (phase === "swapped") {
    return withoutTrigger.length > 0
      ? `the triggers that keep the integer side right are missing on ${withoutTrigger.join(", ")}: swap-back would lose writes and refuses; run \`vibes-hooks online contract\` once the app runs on the uuid ids, or restore the backup to go back`
      : "`vibes-hooks online contract` once the app no longer needs the integer ids (irreversible); `vibes-hooks online swap-back` reverses the swap";
  }
  if (withoutTrigger.length > 0) return "expand stopped halfway: run `vibes-hooks online expand` again";
  const counts = Object.values(rows ?? {});
  if (counts.some((r) => r === null)) return "run `vibes-hooks online backfill` (the ranges already done are passed over without writing), then constraints";
  if (counts.some((r) => r!.ids + r!.foreignKeys > 0)) return "run `vibes-hooks online backfill`";
  if (pending.length > 0) return "run `vibes-hooks online constraints`";
  return "run `vibes-hooks online swap`";
}
