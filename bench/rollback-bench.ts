/**
 * Rollback benchmark (prints figures; never a test).
 *
 *   node -r ts-node/register/transpile-only bench/rollback-bench.ts [--sizes 1e5,1e6]
 *
 * Per size (journals; users = journals/10, 50 tags), on copies of one generated database: a
 * verified backup, then a migration that fails its proof (the drop_rows fault: the real 001, then
 * rows deleted) rolled back two ways, side by side:
 *   swap     verify-restore --keep-copy before; migrate renames the failed database aside and the
 *            proven copy in, then proves it (schema, data and ids against the manifest);
 *   restore  VIBES_ROLLBACK=restore, the path before the swap: the down command, then the backup
 *            restored in place (pg_restore --clean) and proven.
 * Printed: the rollback itself (swap: rename + proof; restore: from the down command to the proven
 * restore), migrate's whole failure to its end (it also names the differing rows, which takes a
 * scratch restore either way), the bare upgrade for scale, and the extra disk the kept copy costs.
 * Goal: swap <= 2 s at 10^6 journals, and flat across sizes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { appWithFault } from "../test/support/faults";
import { runHooks } from "../test/support/hooks";
import { APP_PYTHON, getCluster, type PgCluster, type TestDatabase } from "../test/support/pgCluster";

const { values: flags } = parseArgs({ options: { sizes: { type: "string", default: "1e5,1e6" } } });
const sizes = flags.sizes.split(",").map(Number);
const TARGET_REVISION = "001_uuid_schema_migration";
const GOAL_MS = 2000;

const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`.padStart(9);
const log = (m: string) => process.stderr.write(`[bench] ${m}\n`);
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

/** Time at the first progress line of migrate matching `marker` ("[migrate +12.3s] ..."), in ms. */
function at(output: string, marker: RegExp): number {
  const line = output.split("\n").find((l) => /^\[migrate \+[\d.]+s\]/.test(l) && marker.test(l));
  if (!line) throw new Error(`migrate printed no line matching ${marker}:\n${output}`);
  return Number(/\[migrate \+([\d.]+)s\]/.exec(line)![1]) * 1000;
}

interface Rollback {
  /** The rollback itself, as migrate's progress lines time it. */
  rollbackMs: number;
  /** From migrate's FAILED line to its exit. */
  afterFailureMs: number;
  /** Swap only: the rename transaction and the proof, as the result reports them. */
  swapMs?: number;
  proofMs?: number;
  /** Swap only: the kept copy's size, the disk it costs until maintenance mode goes off. */
  copyBytes?: number;
}

async function failedMigration(pg: PgCluster, db: TestDatabase, appDir: string, backupDir: string, way: "swap" | "restore"): Promise<Rollback> {
  const env: NodeJS.ProcessEnv = { ...db.env, VIBES_APP_DIR: appDir, VIBES_PYTHON: APP_PYTHON, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: backupDir, VIBES_ROLLBACK: way };
  const backup = await runHooks("backup", ["--label", `for-${TARGET_REVISION}`], env, { timeoutMs: 1_800_000 });
  if (backup.code !== 0) throw new Error(backup.stderr);
  const verify = await runHooks("verify-restore", ["--uri", backup.json.uri, ...(way === "swap" ? ["--keep-copy"] : [])], env, { timeoutMs: 1_800_000 });
  if (verify.code !== 0) throw new Error(verify.stderr);
  if (way === "swap" && !verify.json.keptCopy) throw new Error(`no copy kept: ${verify.json.swapObstacles}`);
  const copyBytes = way === "swap" ? Number((await pg.query("postgres", "SELECT pg_database_size($1) AS b", [verify.json.keptCopy]))[0].b) : undefined;
  const started = Date.now();
  const res = await runHooks("migrate", ["--to", TARGET_REVISION, "--manifest", backup.json.manifestUri], env, { timeoutMs: 3_600_000 });
  const endMs = Date.now() - started;
  if (res.code !== 1 || !/back at 0000_initial/.test(res.json?.error ?? "")) throw new Error(`the failed migration did not roll back:\n${res.stderr}`);
  const failedAt = at(res.stderr, /FAILED: /);
  if (way === "swap") {
    return { rollbackMs: at(res.stderr, /swapped in \(\d+ ms\) and proven/) - at(res.stderr, /swapping in /), afterFailureMs: endMs - failedAt, swapMs: res.json.swapMs, proofMs: res.json.proofMs, copyBytes };
  }
  return { rollbackMs: at(res.stderr, /restored; \d+ checks match/) - at(res.stderr, /no swap/), afterFailureMs: endMs - failedAt };
}

async function main(): Promise<void> {
  const pg = await getCluster();
  const scratch = mkdtempSync(join(tmpdir(), "vibes-rollback-bench-"));
  const faulty = appWithFault(join(scratch, "app-drop_rows"), "drop_rows");
  const rows: string[] = [];
  try {
    for (const journals of sizes) {
      const shape = { users: Math.max(1, Math.round(journals / 10)), journalsPerUser: 10, tags: 50, seed: 1 };
      log(`${journals} journals: generating (once; copies after)`);
      const results: Record<"swap" | "restore", Rollback> = {} as never;
      let bareMs = 0;
      {
        const bare = await pg.createVibesDatabase(shape);
        const started = Date.now();
        await pg.runApp(bare.env, ["-m", "alembic", "upgrade", TARGET_REVISION], "alembic upgrade");
        bareMs = Date.now() - started;
        await pg.dropDatabase(bare.name);
      }
      for (const way of ["swap", "restore"] as const) {
        const db = await pg.createVibesDatabase(shape);
        const backupDir = join(scratch, `backups-${journals}-${way}`);
        log(`${journals} journals: failed migration rolled back by ${way}`);
        results[way] = await failedMigration(pg, db, faulty, backupDir, way);
        for (const r of await pg.query("postgres", "SELECT datname FROM pg_database WHERE datname LIKE $1", [`${db.name}\\_%`])) await pg.dropDatabase(r.datname);
        await pg.dropDatabase(db.name);
      }
      const { swap, restore } = results;
      const verdict = swap.rollbackMs <= GOAL_MS ? "PASS" : "MISS";
      rows.push(`| ${String(journals).padStart(8)} | ${secs(bareMs)} | ${secs(swap.rollbackMs)} (${swap.swapMs} ms + ${swap.proofMs} ms) | ${secs(restore.rollbackMs)} | ${secs(swap.afterFailureMs)} | ${secs(restore.afterFailureMs)} | ${mib(swap.copyBytes ?? 0).padStart(8)} | ${verdict} |`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  process.stdout.write([
    "",
    `Rollback after a failed migration (goal: swap <= ${GOAL_MS / 1000} s at 10^6 journals, flat across sizes)`,
    "| journals | bare upgrade | swap: rename + proof | restore (down + pg_restore + proof) | migrate after FAILED, swap | same, restore | copy kept | swap |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ...rows,
    "",
  ].join("\n"));
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
