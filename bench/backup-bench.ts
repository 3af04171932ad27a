/**
 * Backup and validation benchmark (prints figures; never a test).
 *
 *   node -r ts-node/register/transpile-only bench/backup-bench.ts [--sizes 1e4,1e5,1e6] [--runs 2]
 *
 * Per size (journals; users = journals/10): the backup hook's time against a bare
 * `pg_dump -Fc > /dev/null` of the same database (ratio), captureState's time against rows, and
 * the peak RSS (VmHWM) of the hook processes. Targets: backup <= 1.15x bare pg_dump; validation
 * time linear in rows; hook memory flat as the database grows.
 */
import { spawn } from "node:child_process";
import { openSync, closeSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { withPassfile } from "../hooks/lib/childEnv";
import { connect, connectionFromEnv } from "../hooks/lib/connection";
import { captureState } from "../hooks/lib/manifest";
import { HOOKS_BIN, REPO_ROOT } from "../test/support/hooks";
import { getCluster, PG_BIN } from "../test/support/pgCluster";

const { values } = parseArgs({ options: { sizes: { type: "string", default: "1e4,1e5" }, runs: { type: "string", default: "2" } } });
const sizes = values.sizes.split(",").map(Number);
const runs = Number(values.runs);

/** Runs a program; returns wall time and the peak RSS of that process (polled VmHWM). */
function timed(file: string, args: string[], env: NodeJS.ProcessEnv, stdoutFd?: number): Promise<{ ms: number; peakKiB: number; out: string }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(file, args, { env, cwd: REPO_ROOT, stdio: ["ignore", stdoutFd ?? "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
    let peakKiB = 0;
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
        if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
      } catch {
        // exited between polls
      }
    }, 10);
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(poll);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (code !== 0) reject(new Error(`${file} ${args.join(" ")} exited ${code}: ${err.slice(-2000)}`));
      else resolve({ ms, peakKiB, out });
    });
  });
}

const best = async <T extends { ms: number }>(f: () => Promise<T>): Promise<T> => {
  let min: T | undefined;
  for (let i = 0; i < runs; i++) {
    const r = await f();
    if (!min || r.ms < min.ms) min = r;
  }
  return min!;
};

async function main(): Promise<void> {
  const pg = await getCluster();
  const rows: string[] = [];
  console.log(`sizes ${sizes.join(", ")} journals; best of ${runs} runs; ${process.env.VIBES_BENCH_NOTE ?? ""}`);
  for (const journals of sizes) {
    const t0 = Date.now();
    const db = await pg.createVibesDatabase({ users: Math.max(1, Math.round(journals / 10)), journalsPerUser: 10, tags: 50, seed: 1 });
    process.stderr.write(`[bench] ${journals} journals generated in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
    const settings = connectionFromEnv(db.env);
    const dir = mkdtempSync(join(tmpdir(), "vibes-bench-"));
    try {
      const bare = await withPassfile(settings, (childEnv) => best(async () => {
        const fd = openSync("/dev/null", "w");
        try {
          return await timed(join(PG_BIN, "pg_dump"), ["-Fc"], childEnv, fd);
        } finally {
          closeSync(fd);
        }
      }), db.env);
      const env = { ...db.env, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: dir, VIBES_PG_BIN: PG_BIN };
      const hook = await best(() => timed(HOOKS_BIN, ["backup", "--label", "bench"], env));
      const result = JSON.parse(hook.out);
      const totalRows = Object.values(result.tables as Record<string, { rows: number }>).reduce((a, t) => a + t.rows, 0);
      const validate = await best(() => timed(HOOKS_BIN, ["validate", "data", "--manifest", result.manifestUri, "--id-type", "integer"], env));
      const client = await connect(settings);
      let captureMs = 0;
      try {
        captureMs = (await best(async () => {
          const s = process.hrtime.bigint();
          await captureState(client, ["users", "journals", "tags", "journal_tags"]);
          return { ms: Number(process.hrtime.bigint() - s) / 1e6 };
        })).ms;
      } finally {
        await client.end();
      }
      rows.push([
        String(journals).padStart(8), String(totalRows).padStart(9), `${(result.bytes / 1048576).toFixed(1)} MiB`.padStart(10),
        `${bare.ms.toFixed(0)} ms`.padStart(9), `${hook.ms.toFixed(0)} ms`.padStart(9), `${(hook.ms / bare.ms).toFixed(2)}x`.padStart(6),
        `${captureMs.toFixed(0)} ms`.padStart(9), `${((captureMs * 1000) / totalRows).toFixed(2)} us`.padStart(9),
        `${validate.ms.toFixed(0)} ms`.padStart(10), `${(hook.peakKiB / 1024).toFixed(0)} MiB`.padStart(9),
        `${(validate.peakKiB / 1024).toFixed(0)} MiB`.padStart(9),
      ].join(" "));
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await pg.dropDatabase(db.name);
    }
  }
  console.log(" journals      rows       dump   pg_dump    backup  ratio   capture   per row   validate  backupRSS  validRSS");
  for (const r of rows) console.log(r);
  console.log("backup = hook wall time incl. node/ts-node start (~0.7 s), verification and manifest; capture = captureState in-process;");
  console.log("validate = `validate data` hook wall time; RSS = peak VmHWM of the hook process.");
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
