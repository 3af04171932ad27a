/**
 * Maintenance window benchmark (prints figures; never a test).
 *
 *   node -r ts-node/register/transpile-only bench/window-bench.ts [--sizes 1e5,1e6]
 *
 * Per size (journals; users = journals/10, 50 tags), on copies of one generated database:
 *   bare      `alembic upgrade 001_uuid_schema_migration` alone, and the app's restart alone
 *             (stop.sh + start.sh, which returns once /health answers);
 *   chain     the dev stack rehearsed for real (every stage, real PostgreSQL, alembic and app),
 *             each stage's time, migrate's own phases, and the window: maintenance on (its start)
 *             to maintenance off (its end), the time the app refuses writes;
 *   ratio     window / (bare migration + bare restart); the target is <= 1.3x;
 *   proof     on the migrated database: the schema proof alone against the data proof (schema and
 *             data in one snapshot), and the row localisation after one changed journal title.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { connect, connectionFromEnv } from "../hooks/lib/connection";
import { locateDifferingRows } from "../hooks/lib/locate";
import { loadManifest } from "../hooks/lib/manifest";
import { prove } from "../hooks/lib/proof";
import { rehearse, restartApp, setUp, tearDown } from "../test/e2e/harness";
import { getCluster } from "../test/support/pgCluster";

const { values } = parseArgs({ options: { sizes: { type: "string", default: "1e5,1e6" } } });
const sizes = values.sizes.split(",").map(Number);
const TARGET = 1.3;
const TARGET_REVISION = "001_uuid_schema_migration";

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`.padStart(8);
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

async function main(): Promise<void> {
  const pg = await getCluster();
  const lines: string[] = [];
  const out = (l = "") => lines.push(l);
  for (const journals of sizes) {
    const shape = { users: Math.max(1, Math.round(journals / 10)), journalsPerUser: 10, tags: 50, seed: 1 };
    log(`${journals} journals: generating (once; copies follow)`);
    const bareDb = await pg.createVibesDatabase(shape);
    const bare = await timedMs(() => pg.runApp(bareDb.env, ["-m", "alembic", "upgrade", TARGET_REVISION], "alembic upgrade"));
    await pg.dropDatabase(bareDb.name);
    log(`bare alembic upgrade ${secs(bare.ms)}`);

    const e = await setUp(shape);
    try {
      const restart = await timedMs(() => restartApp(e));
      log(`bare app restart ${secs(restart.ms)}; rehearsing the whole chain`);
      const run = await rehearse(e, {}, 1_800_000);
      if (run.code !== 0) throw new Error(`the rehearsal failed: ${run.summary.error}\n${run.output.slice(-4000)}`);
      const stages = run.summary.stages;
      const on = stages.find((s) => s.name === "maintenance-on")!;
      const off = stages.find((s) => s.name === "maintenance-off")!;
      const windowMs = off.startedMs! + off.durationMs! - on.startedMs!;
      const bareTotal = bare.ms + restart.ms;
      const ratio = windowMs / bareTotal;
      const rows = Object.entries(JSON.parse(readFileSync(new URL(String(run.summary.outputs!.backupManifestUri)), "utf8")).tables as Record<string, { rows: number }>)
        .reduce((a, [, t]) => a + t.rows, 0);

      // The proofs on the migrated database, against the backup the chain relied on.
      const manifest = await loadManifest(String(run.summary.outputs!.backupManifestUri), e.runnerEnv);
      const client = await connect(connectionFromEnv(e.db.env));
      const opts = { idType: "uuid" as const, idDefault: "gen_random_uuid()", uuidVersion: 4 };
      let schemaOnly, withData, located;
      try {
        schemaOnly = await timedMs(() => prove(client, manifest, { ...opts, data: false }));
        withData = await timedMs(() => prove(client, manifest, opts));
        await client.query("UPDATE journals SET title = title || ' (edited)' WHERE id = (SELECT id FROM journals ORDER BY created_at DESC LIMIT 1)");
        const failed = (await prove(client, manifest, opts)).checks.filter((c) => !c.ok);
        located = await timedMs(() => locateDifferingRows(client, connectionFromEnv(e.db.env), manifest, failed, e.runnerEnv, () => undefined));
      } finally {
        await client.end();
      }
      const found = located.value?.find((d) => d.table === "journals");

      out(`${journals} journals (${rows} rows in the covered tables)`);
      out(`  bare: alembic upgrade ${secs(bare.ms)}   app restart ${secs(restart.ms)}   sum ${secs(bareTotal)}`);
      out("  chain, per stage:");
      for (const s of stages) if (s.durationMs !== undefined) out(`    ${s.name.padEnd(20)} ${secs(s.durationMs)}`);
      out("  migrate's phases:");
      for (const [phase, ms] of Object.entries(migratePhases(run.output))) out(`    ${phase.padEnd(24)} ${secs(ms)}`);
      out(`  window (maintenance on -> off) ${secs(windowMs)}   ratio to bare ${ratio.toFixed(2)}x   target <= ${TARGET}x: ${ratio <= TARGET ? "PASS" : "MISS"}`);
      out(`  proof: schema alone ${schemaOnly.ms.toFixed(0)} ms   schema + data ${secs(withData.ms)}   (${(withData.ms / bare.ms).toFixed(2)}x the bare migration; target <= 0.25x)`);
      out(`  one changed journal located in ${secs(located.ms)} (scratch restore of the backup's data included): ` +
        `${found ? `${found.onlyInBackup.length} row(s) as backed up, ${found.onlyNow.length} as now` : "NOT located"}`);
      out();
    } finally {
      await tearDown(e);
    }
  }
  console.log(lines.join("\n"));
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
