import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { REPO_ROOT } from "./hooks";
import { stopPostgres } from "./pgCluster";

// The throwaway cluster of a test process that is stopped by a signal (Ctrl-C, a CI timeout) must
// be stopped and removed too: without the signal handlers the postmaster outlives the process.
describe("test support: the throwaway cluster", function () {
  this.timeout(120_000);

  const cases: { signals: NodeJS.Signals[]; code: number }[] = [
    { signals: ["SIGTERM"], code: 143 },
    { signals: ["SIGINT"], code: 130 },
    // Ctrl-C under mocha: the terminal's SIGINT, then mocha's own, while the first is cleaning up.
    { signals: ["SIGINT", "SIGINT"], code: 130 },
  ];
  for (const { signals, code } of cases) {
    it(`is stopped and removed when its test process gets ${signals.join(" then ")}`, async () => {
      const child = spawn(process.execPath, [
        "--no-experimental-strip-types", "-r", "ts-node/register/transpile-only", "-e",
        `require("./test/support/pgCluster").getCluster().then((c) => { console.log(c.dataDir); setInterval(() => {}, 1e9); })`,
      ], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "inherit"] });
      const exited = once(child, "exit");
      let dataDir: string | undefined;
      try {
        let out = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
        while (!out.includes("\n")) {
          const ended = await Promise.race([once(child.stdout, "data").then(() => false), exited.then(() => true)]);
          assert.ok(!ended, "the test process exited before its cluster started");
        }
        dataDir = out.trim();
        assert.ok(existsSync(join(dataDir, "postmaster.pid")), "the cluster is running");
        for (const signal of signals) {
          child.kill(signal);
          await new Promise((resolve) => setTimeout(resolve, 30));
        }
        const [exitCode] = await exited;
        assert.equal(exitCode, code);
        assert.ok(!existsSync(dataDir), `${dataDir} is left behind`);
      } finally {
        // Whatever failed above, leave no process and no cluster behind.
        child.kill("SIGKILL");
        if (dataDir) {
          stopPostgres(dataDir);
          rmSync(dirname(dataDir), { recursive: true, force: true });
        }
      }
    });
  }
});
