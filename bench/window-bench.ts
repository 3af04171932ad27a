/**
 * Maintenance window benchmark (prints figures; never a test).
 *
 *   node -r ts-node/register/transpile-only bench/window-bench.ts [--sizes 1e5,1e6] [--runs 3]
 *
 * Per size (journals; users = journals/10, 50 tags), on copies of one generated database, --runs
 * times, bare and chain in turn; each figure is the median of its runs (one run here varies by
 * 10-20%, more than the gap the target leaves):
 *   bare      `alembic upgrade 001_uuid_schema_migration` alone, and the app's restart alone
 *             (stop.sh + start.sh, which returns once /health answers);
 *   chain     the dev stack rehearsed for real (every stage, real PostgreSQL, alembic and app),
 *             each stage's time, migrate's own phases, and the window two ways: the time the app
 *             refused writes (from its own log: maintenance mode enabled -> disabled), and the steps'
 *             span (maintenance on's start to maintenance off's switch's end: two step start-ups and the
 *             status checks around each switch more);
 *   ratio     median window / (median bare migration + median bare restart), each way; target <= 1.3x
 *             both ways;
 *   proof     on the last run's migrated database: the schema proof alone against the data proof (schema and
 *             data in one snapshot), and the row localisation after one changed journal title.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connect, connectionFromEnv } from "../hooks/lib/database/connection";
import { locateDifferingRows } from "../hooks/lib/proof/locate";
import { loadManifest } from "../hooks/lib/proof/manifest";
import { prove } from "../hooks/lib/proof/proof";
import { rehearse, restartApp, setUp, tearDown } from "../test/e2e/harness";
import { getCluster } from "../test/support/pgCluster";

const { values: flags } = parseArgs({ options: { sizes: { type: "string", default: "1e5,1e6" }, runs: { type: "string", default: "3" } } });
const sizes = flags.sizes.split(",").map(Number);
const RUNS = Number(flags.runs);
if (!(Number.isInteger(RUNS) && RUNS >= 1)) throw new Error(`--runs "${flags.runs}" is not a positive integer: pass e.g. --runs 3`);
const TARGET = 1.3;
const TARGET_REVISION = "001_uuid_schema_migration";

const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`.padStart(8);
const log = (m: string) => process.stderr.write(`[bench] ${m}\n`);

async function timedMs<T>(f: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await f();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, value };
}

/** migrate's phases from its progress lines ("[migrate +12.3s] ..."): seconds at each marker. */
function migratePhases(output: string): Record<string, number> {
  const at = (marker: RegExp) => {
    const line = output.split("\n").find((l) => /\[migrate \+[\d.]+s\]/.test(l) && marker.test(l));
    return line ? Number(/\[migrate \+([\d.]+)s\]/.exec(line)![1]) * 1000 : NaN;
  };
  const start = at(/holding the migration lock/);
  const unchanged = at(/checking nothing changed since the backup/);
  const up = at(/ up: /);
  const proving = at(/proving schema and data against the backup/);
  const done = at(/checks passed$/);
  return { "lock, revision, files": unchanged - start, "unchanged since backup": up - unchanged, "up command": proving - up, "proof + record": done - proving };
}

/** When the app logged `message` last (its log's asctime: local time, milliseconds), in ms since
 * the epoch. Only differences of two such times are used: a time zone of the app's own cancels out. */
function appLogged(log: string, message: string): number {
  const line = log.split("\n").filter((l) => l.endsWith(` vibes ${message}`)).pop();
  const m = line && /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3}) /.exec(line);
  if (!m) throw new Error(`the app's log has no "${message}" line: was maintenance mode switched by the chain?`);
  const [y, mo, d, h, mi, sec, ms] = m.slice(1).map(Number);
  return new Date(y, mo - 1, d, h, mi, sec, ms).getTime();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

interface ChainRun {
  bareMs: number;
  restartMs: number;
  /** Maintenance mode on -> off as the app logged it: the time it refused writes. */
  windowMs: number;
  /** maintenance on's start -> maintenance off's end. */
  stepSpanMs: number;
  stages: { name: string; ms: number; commands: { name: string; ms: number }[] }[];
  phases: Record<string, number>;
}

async function main(): Promise<void> {
  const pg = await getCluster();
  const lines: string[] = [];
  const out = (l = "") => lines.push(l);
  for (const journals of sizes) {
    const shape = { users: Math.max(1, Math.round(journals / 10)), journalsPerUser: 10, tags: 50, seed: 1 };
    log(`${journals} journals: generating (once; copies follow)`);
    const runs: ChainRun[] = [];
    let proofs: Awaited<ReturnType<typeof measureProofs>> | undefined;
    // Bare and chain interleaved, so that the machine's drift weighs on both alike.
    for (let i = 1; i <= RUNS; i++) {
      const bareDb = await pg.createVibesDatabase(shape);
      const bare = await timedMs(() => pg.runApp(bareDb.env, ["-m", "alembic", "upgrade", TARGET_REVISION], "alembic upgrade"));
      await pg.dropDatabase(bareDb.name);
      const e = await setUp(shape);
      try {
        const restart = await timedMs(() => restartApp(e));
        log(`run ${i}/${RUNS}: bare alembic upgrade ${secs(bare.ms)}, bare app restart ${secs(restart.ms)}; rehearsing the whole chain`);
        const run = await rehearse(e, {}, 1_800_000);
        if (run.code !== 0) throw new Error(`the rehearsal failed: ${run.summary.error}\n${run.output.slice(-4000)}`);
        const stages = run.summary.stages.filter((st) => st.durationMs !== undefined);
        const on = stages.find((st) => st.name === "maintenance-on")!;
        // The switch itself: the kept copy is dropped after it, with the app serving again.
        const off = stages.find((st) => st.name === "maintenance-off")!.resources.find((r) => r.name === "maintenance-off-maintenance")!;
        const appLog = readFileSync(join(e.runDir, "vibes.log"), "utf8");
        runs.push({
          bareMs: bare.ms,
          restartMs: restart.ms,
          windowMs: appLogged(appLog, "maintenance mode disabled") - appLogged(appLog, "maintenance mode enabled"),
          stepSpanMs: off.startedMs! + off.durationMs! - on.startedMs!,
          stages: stages.map((st) => ({
            name: st.name,
            ms: st.durationMs!,
            commands: st.resources.filter((r) => r.durationMs !== undefined).map((r) => ({ name: r.name, ms: r.durationMs! })),
          })),
          phases: migratePhases(run.output),
        });
        if (i < RUNS) continue;
        proofs = await measureProofs(e, String(run.summary.outputs!.backupManifestUri));
      } finally {
        await tearDown(e);
      }
    }
    const m = (f: (r: ChainRun) => number) => median(runs.map(f));
    const bareMs = m((r) => r.bareMs);
    const restartMs = m((r) => r.restartMs);
    const windowMs = m((r) => r.windowMs);
    const stepSpanMs = m((r) => r.stepSpanMs);
    const ratio = windowMs / (bareMs + restartMs);
    out(`${journals} journals (${proofs!.rows} rows in the covered tables), median of ${runs.length} run(s)`);
    out(`  bare: alembic upgrade ${secs(bareMs)}   app restart ${secs(restartMs)}   sum ${secs(bareMs + restartMs)}`);
    out("  chain, per stage:");
    runs[0].stages.forEach((st, si) => {
      out(`    ${st.name.padEnd(20)} ${secs(m((r) => r.stages[si].ms))}`);
      // A stage of several commands: each one's own time (side by side ones overlap).
      if (st.commands.length > 1) st.commands.forEach((c, ci) => out(`      ${c.name.padEnd(28)} ${secs(m((r) => r.stages[si].commands[ci].ms))}`));
    });
    out("  migrate's phases:");
    for (const phase of Object.keys(runs[0].phases)) out(`    ${phase.padEnd(24)} ${secs(m((r) => r.phases[phase]))}`);
    const spanRatio = stepSpanMs / (bareMs + restartMs);
    out(`  window (writes refused, app's log) ${secs(windowMs)}   ratio to bare ${ratio.toFixed(3)}x`);
    out(`  maintenance steps' span            ${secs(stepSpanMs)}   ratio to bare ${spanRatio.toFixed(3)}x`);
    out(`  target <= ${TARGET}x, both ways: ${Math.max(ratio, spanRatio) <= TARGET ? "PASS" : "MISS"}`);
    if (runs.length > 1) out(`    each run (window / span / bare): ${runs.map((r) => [r.windowMs, r.stepSpanMs, r.bareMs + r.restartMs].map((ms) => (ms / 1000).toFixed(2)).join(" / ")).join(", ")}`);
    out(`  proof: schema alone ${proofs!.schemaMs.toFixed(0)} ms   schema + data ${secs(proofs!.dataMs)}   (${(proofs!.dataMs / bareMs).toFixed(2)}x the bare migration; target <= 0.25x)`);
    out(`  one changed journal located in ${secs(proofs!.locatedMs)} (scratch restore of the backup's data included): ` +
      `${proofs!.found ? `${proofs!.found.onlyInBackup.length} row(s) as backed up, ${proofs!.found.onlyNow.length} as now` : "NOT located"}`);
    out();
  }
  console.log(lines.join("\n"));
}

/** The proofs on the migrated database, against the backup the chain relied on (its manifest's
 * row count too). */
async function measureProofs(e: Awaited<ReturnType<typeof setUp>>, manifestUri: string) {
  const manifest = await loadManifest(manifestUri, e.runnerEnv);
  const client = await connect(connectionFromEnv(e.db.env));
  const opts = { idType: "uuid" as const, idDefault: "gen_random_uuid()", uuidVersion: 4 };
  try {
    const schemaOnly = await timedMs(() => prove(client, manifest, { ...opts, data: false }));
    const withData = await timedMs(() => prove(client, manifest, opts));
    await client.query("UPDATE journals SET title = title || ' (edited)' WHERE id = (SELECT id FROM journals ORDER BY created_at DESC LIMIT 1)");
    const failed = (await prove(client, manifest, opts)).checks.filter((c) => !c.ok);
    const located = await timedMs(() => locateDifferingRows(client, connectionFromEnv(e.db.env), manifest, failed, e.runnerEnv, () => undefined));
    return {
      rows: Object.values(manifest.tables).reduce((a, t) => a + t.rows, 0),
      schemaMs: schemaOnly.ms,
      dataMs: withData.ms,
      locatedMs: located.ms,
      found: located.value?.find((d) => d.table === "journals"),
    };
  } finally {
    await client.end();
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
