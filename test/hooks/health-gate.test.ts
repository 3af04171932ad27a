import assert from "node:assert/strict";
import { FakeApp } from "../support/fakeApp";
import { runHooks } from "../support/hooks";

describe("health-gate", () => {
  let app: FakeApp;
  let env: NodeJS.ProcessEnv;

  beforeEach(async () => {
    app = await FakeApp.start();
    env = { ...process.env, VIBES_APP_URL: app.url };
  });
  afterEach(() => app.close());

  it("passes at once when the app is healthy", async () => {
    const res = await runHooks("health-gate", ["--timeout-seconds", "5", "--interval-seconds", "0.05"], env);
    assert.equal(res.code, 0, res.stderr);
    const json = res.json as { healthy: boolean; attempts: number; elapsedMs: number };
    assert.equal(json.healthy, true);
    assert.equal(json.attempts, 1);
  });

  it("keeps polling until the app turns healthy", async () => {
    app.unhealthyForCalls = 3;
    const res = await runHooks("health-gate", ["--timeout-seconds", "10", "--interval-seconds", "0.05"], env);
    assert.equal(res.code, 0, res.stderr);
    assert.equal((res.json as { attempts: number }).attempts, 4);
    assert.equal(app.requests.filter((r) => r.path === "/health").length, 4);
  });

  it("fails after the timeout with the last answer", async () => {
    app.healthy = false;
    const started = Date.now();
    const res = await runHooks("health-gate", ["--timeout-seconds", "0.6", "--interval-seconds", "0.1"], env);
    assert.notEqual(res.code, 0);
    const json = res.json as { error: string; attempts: number };
    assert.match(json.error, /not healthy within 0.6s/);
    assert.match(json.error, /HTTP 503/);
    assert.ok(json.attempts >= 2, `attempts ${json.attempts}`);
    assert.ok(Date.now() - started < 15_000);
  });

  it("reports the connection error when nothing listens", async () => {
    await app.close();
    const res = await runHooks("health-gate", ["--timeout-seconds", "0.3", "--interval-seconds", "0.1"], env);
    assert.notEqual(res.code, 0);
    assert.match((res.json as { error: string }).error, /ECONNREFUSED/);
  });

  it("rejects a bad duration naming the flag", async () => {
    const res = await runHooks("health-gate", ["--timeout-seconds", "soon"], env);
    assert.equal(res.code, 2);
    assert.match((res.json as { error: string }).error, /--timeout-seconds must be a positive number/);
    assert.equal(app.requests.length, 0);
  });
});
