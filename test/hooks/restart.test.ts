// The restart step, and the maintenance-window guard every step that changes things gets from
// the dispatcher (a retried `pulumi up` does not re-run window-check).
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeApp } from "../support/fakeApp";
import { assertSecretAbsent, runHooks } from "../support/hooks";

const PASSWORD = "pw-Restart-5e1f";
const TOKEN = "adm-Restart-9c2d";

/** A window around now (open) or two hours ahead (closed), every day, in UTC. */
function windowAt(offsetHours: number): string {
  const hhmm = (h: number) => {
    const d = new Date(Date.now() + h * 3_600_000);
    return `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
  };
  const days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  return JSON.stringify({ days, start: hhmm(offsetHours - 1), end: hhmm(offsetHours + 1) });
}

describe("restart", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "vibes-restart-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("runs the local restart with the deployment's settings; its output stays off the JSON channel", async () => {
    const marker = join(dir, "ran");
    const env = {
      VIBES_RESTART_COMMAND: `echo restarting; printf %s "$VIBES_DB_PASSWORD" > ${marker}`,
      VIBES_DB_PASSWORD: PASSWORD,
      VIBES_ADMIN_TOKEN: TOKEN,
    };
    const res = await runHooks("restart", [], env);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.json.where, "local");
    assert.equal(res.stdout.trim().split("\n").length, 1, "stdout holds only the JSON result");
    assert.match(res.stderr, /restarting/);
    // Local start scripts need the password (app/scripts/start.sh moves it into a passfile).
    assert.equal(readFileSync(marker, "utf8"), PASSWORD);
    assertSecretAbsent(res, PASSWORD);
  });

  it("runs the command on the app host over ssh, without any secret of ours", async () => {
    const log = join(dir, "ssh.log");
    const fakeSsh = join(dir, "ssh");
    writeFileSync(fakeSsh, `#!/bin/sh\nprintf '%s\\n' "$@" > ${log}\nenv >> ${log}\n`);
    chmodSync(fakeSsh, 0o755);
    const env = {
      PATH: `${dir}:${process.env.PATH}`,
      VIBES_RESTART_COMMAND: "sudo systemctl restart vibes",
      VIBES_RESTART_HOST: "deploy@app-1.internal",
      VIBES_DB_PASSWORD: PASSWORD,
      VIBES_ADMIN_TOKEN: TOKEN,
    };
    const res = await runHooks("restart", [], env);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.json.where, "deploy@app-1.internal");
    const seen = readFileSync(log, "utf8");
    assert.ok(seen.startsWith("-o\nBatchMode=yes\n--\ndeploy@app-1.internal\nsudo systemctl restart vibes\n"), seen);
    assert.ok(!seen.includes(PASSWORD) && !seen.includes(TOKEN), "a secret reached ssh");
  });

  it("fails with the command's error and what to do; a timeout stops it", async () => {
    const failed = await runHooks("restart", [], { VIBES_RESTART_COMMAND: "echo 'unit vibes not found' >&2; exit 5" });
    assert.equal(failed.code, 1);
    assert.match(failed.json.error, /the restart failed \(exit 5\): unit vibes not found/);
    assert.match(failed.json.next, /maintenance mode stays on/);
    const started = Date.now();
    const slow = await runHooks("restart", ["--timeout-seconds", "0.5"], { VIBES_RESTART_COMMAND: "sleep 30" });
    assert.equal(slow.code, 1);
    // The shell's child is stopped with it, not waited out.
    assert.ok(Date.now() - started < 20_000, "the timed-out restart was waited out");
    assert.match(slow.json.error, /timed out after 0.5s/);
    const unset = await runHooks("restart", [], {});
    assert.match(unset.json.error, /VIBES_RESTART_COMMAND is not set/);
  });

  describe("with the health gate (--health-timeout-seconds)", () => {
    let app: FakeApp;
    beforeEach(async () => (app = await FakeApp.start()));
    afterEach(() => app.close());

    it("restarts, then waits in the same process until /health answers ok", async () => {
      const marker = join(dir, "ran");
      app.unhealthyForCalls = 2;
      const res = await runHooks("restart", ["--health-timeout-seconds", "10", "--health-interval-seconds", "0.05"],
        { VIBES_RESTART_COMMAND: `touch ${marker}`, VIBES_APP_URL: app.url });
      assert.equal(res.code, 0, res.stderr);
      assert.equal(existsSync(marker), true);
      const health = (res.json as { health: { healthy: boolean; attempts: number } }).health;
      assert.deepEqual([health.healthy, health.attempts], [true, 3]);
      assert.equal(app.requests.filter((r) => r.path === "/health").length, 3);
    });

    it("an app that stays unhealthy fails the step after the timeout, saying the app was restarted and what to do", async () => {
      app.healthy = false;
      const res = await runHooks("restart", ["--health-timeout-seconds", "0.5", "--health-interval-seconds", "0.1"],
        { VIBES_RESTART_COMMAND: "true", VIBES_APP_URL: app.url });
      assert.equal(res.code, 1);
      const json = res.json as { error: string; next: string; where: string; health: { healthy: boolean } };
      assert.match(json.error, /the app was not healthy within 0.5s \(\d+ attempts\); last answer: HTTP 503/);
      assert.match(json.next, /restarted but not healthy: read the app's log.*maintenance mode stays on/);
      assert.equal(json.where, "local");
      assert.equal(json.health.healthy, false);
    });

    it("a gate that cannot run is refused before the restart runs", async () => {
      const marker = join(dir, "ran");
      const noUrl = await runHooks("restart", ["--health-timeout-seconds", "5"], { VIBES_RESTART_COMMAND: `touch ${marker}` });
      assert.match(noUrl.json.error, /VIBES_APP_URL is not set/);
      const badTimeout = await runHooks("restart", ["--health-timeout-seconds", "0"], { VIBES_RESTART_COMMAND: `touch ${marker}`, VIBES_APP_URL: app.url });
      assert.equal(badTimeout.code, 2);
      assert.match(badTimeout.json.error, /--health-timeout-seconds must be a positive number of seconds, not "0"/);
      const intervalAlone = await runHooks("restart", ["--health-interval-seconds", "1"], { VIBES_RESTART_COMMAND: `touch ${marker}`, VIBES_APP_URL: app.url });
      assert.match(intervalAlone.json.error, /--health-interval-seconds needs --health-timeout-seconds/);
      assert.equal(existsSync(marker), false, "the restart ran");
    });
  });

  it("refuses outside the maintenance window before running anything; inside, or with an override, it runs", async () => {
    const marker = join(dir, "ran");
    const base = { VIBES_RESTART_COMMAND: `touch ${marker}` };
    const closed = await runHooks("restart", [], { ...base, VIBES_MAINTENANCE_WINDOW: windowAt(3) });
    assert.equal(closed.code, 1);
    assert.match(closed.json.error, /outside maintenance window .*; nothing was changed/);
    assert.match(closed.json.next, /after .*maintenanceWindowOverride/);
    assert.equal(existsSync(marker), false, "the restart ran outside the window");

    const override = JSON.stringify({ reason: "sev1", approvedBy: "cto", ticket: "OPS-1" });
    const overridden = await runHooks("restart", [], { ...base, VIBES_MAINTENANCE_WINDOW: windowAt(3), VIBES_MAINTENANCE_WINDOW_OVERRIDE: override });
    assert.equal(overridden.code, 0, overridden.stderr);
    assert.match(overridden.stderr, /OVERRIDDEN/);

    rmSync(marker);
    const open = await runHooks("restart", [], { ...base, VIBES_MAINTENANCE_WINDOW: windowAt(0) });
    assert.equal(open.code, 0, open.stderr);
    assert.equal(existsSync(marker), true);
  });

  it("too little window left: maintenance on refuses; migrate, restart and maintenance off still run", async () => {
    // Opened an hour ago, closes in 10 minutes; a deployment needs 30 left to start.
    const hhmm = (min: number) => new Date(Date.now() + min * 60_000).toISOString().slice(11, 16);
    const days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    const late = JSON.stringify({ days, start: hhmm(-60), end: hhmm(10), minRemaining: "30m" });
    const env = { VIBES_MAINTENANCE_WINDOW: late, VIBES_APP_URL: "http://127.0.0.1:9" };
    const on = await runHooks("maintenance", ["on"], env);
    assert.match(on.json.error, /less than minRemaining 30m: too late to start a deployment.*; nothing was changed/);
    // Migrate goes on (the backup before it may have used the time): past the guard, it fails on
    // its own missing manifest.
    const migrate = await runHooks("migrate", ["--to", "x", "--manifest", "file:///none"], env);
    assert.doesNotMatch(migrate.json.error, /maintenance window|minRemaining/);
    const marker = join(dir, "ran");
    const restart = await runHooks("restart", [], { ...env, VIBES_RESTART_COMMAND: `touch ${marker}` });
    assert.equal(restart.code, 0, restart.stderr);
    assert.equal(existsSync(marker), true);
    assert.match(restart.stderr, /inside maintenance window .*; it closes .*\(in \d+m\)\n/, "the plain message, not a refusal");
    assert.doesNotMatch(restart.stderr, /too late/);
    // Outside the window altogether, maintenance off is not held back by the guard (the app is
    // simply unreachable here).
    const off = await runHooks("maintenance", ["off"], { ...env, VIBES_MAINTENANCE_WINDOW: windowAt(3) });
    assert.doesNotMatch(off.json.error, /maintenance window/);
  });

  it("the guard covers maintenance and migrate too, and not the read-only steps", async () => {
    const env = { VIBES_MAINTENANCE_WINDOW: windowAt(3), VIBES_APP_URL: "http://127.0.0.1:9" };
    for (const step of ["maintenance", "migrate"]) {
      const res = await runHooks(step, step === "maintenance" ? ["on"] : ["--to", "x", "--manifest", "file:///none"], env);
      assert.match(res.json.error, /outside maintenance window/, step);
    }
    const gate = await runHooks("health-gate", ["--timeout-seconds", "1", "--interval-seconds", "0.2"], env);
    assert.doesNotMatch(gate.json.error, /maintenance window/);
  });
});
