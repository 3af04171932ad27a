import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { once } from "node:events";
import { REPO_ROOT } from "./hooks";

// The throwaway cluster of a test process that is stopped by a signal (Ctrl-C, a CI timeout) must
// be stopped and removed too: without the signal handlers the postmaster outlives the process.
describe("test support: the throwaway cluster", function () {
  this.timeout(120_000);

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`is stopped and removed when its test process gets ${signal}`, async () => {
      const child = spawn(process.execPath, [
        "--no-experimental-strip-types", "-r", "ts-node/register/transpile-only", "-e",
        `require("./test/support/pgCluster").getCluster().then((c) => { console.log(c.dataDir); setInterval(() => {}, 1e9); })`,
      ], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
      while (!out.includes("\n")) await once(child.stdout, "data");
      const dataDir = out.trim();
      assert.ok(existsSync(`${dataDir}/postmaster.pid`), "the cluster is running");
      child.kill(signal);
      const [code] = await once(child, "exit");
      assert.equal(code, signal === "SIGTERM" ? 143 : 130);
      assert.ok(!existsSync(dataDir), `${dataDir} is left behind`);
    });
  }
});
