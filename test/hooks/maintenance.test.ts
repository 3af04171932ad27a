import assert from "node:assert/strict";
import { FakeApp } from "../support/fakeApp";
import { runHooks } from "../support/hooks";

describe("maintenance", () => {
  let app: FakeApp;
  let env: NodeJS.ProcessEnv;

  beforeEach(async () => {
    app = await FakeApp.start();
    env = { ...process.env, VIBES_APP_URL: app.url, VIBES_ADMIN_TOKEN: app.adminToken };
  });
  afterEach(() => app.close());

  function assertNoToken(res: { stdout?: string; stderr: string; json: unknown }) {
    assert.ok(!JSON.stringify(res.json).includes(app.adminToken), "token in the JSON result");
    assert.ok(!res.stderr.includes(app.adminToken), "token on stderr");
    // The CLI redacts env secrets as a last resort: "***" would mean this step tried to print it.
    assert.ok(!res.stderr.includes("***") && !JSON.stringify(res.json).includes("***"), "the step printed a secret");
  }

  it("turns maintenance on and off idempotently, reporting whether anything changed", async () => {
    const on1 = await runHooks("maintenance", ["on"], env);
    assert.equal(on1.code, 0, on1.stderr);
    assert.deepEqual(on1.json, { ok: true, step: "maintenance", enabled: true, changed: true });
    assert.equal(app.maintenance, true);
    const enable = app.requests.find((r) => r.path === "/admin/maintenance/enable");
    assert.equal(enable?.method, "POST");
    assert.equal(enable?.headers["x-admin-token"], app.adminToken);

    const on2 = await runHooks("maintenance", ["on"], env);
    assert.equal(on2.code, 0, on2.stderr);
    assert.equal((on2.json as { changed: boolean }).changed, false);

    const off1 = await runHooks("maintenance", ["off"], env);
    assert.deepEqual(off1.json, { ok: true, step: "maintenance", enabled: false, changed: true });
    assert.equal(app.maintenance, false);
    const off2 = await runHooks("maintenance", ["off"], env);
    assert.equal((off2.json as { changed: boolean }).changed, false);
    for (const r of [on1, on2, off1, off2]) assertNoToken(r);
  });

  it("fails without printing the token when the app refuses it", async () => {
    const wrong = "wrong-token-" + app.adminToken.slice(-8);
    const res = await runHooks("maintenance", ["on"], { ...env, VIBES_ADMIN_TOKEN: wrong });
    assert.notEqual(res.code, 0);
    assert.match(String((res.json as { error: string }).error), /refused the admin token \(HTTP 401/);
    assert.match(String((res.json as { next: string }).next), /VIBES_ADMIN_TOKEN/);
    assert.ok(!res.stderr.includes(wrong) && !JSON.stringify(res.json).includes(wrong));
    assert.equal(app.maintenance, false);
  });

  it("fails when /api/v1/status does not agree with the switch", async () => {
    app.statusMaintenanceOverride = false;
    const res = await runHooks("maintenance", ["on"], env);
    assert.notEqual(res.code, 0);
    assert.match(String((res.json as { error: string }).error), /still reports maintenance=false/);
    assertNoToken(res);
  });

  it("names the missing setting and refuses a bad argument", async () => {
    const noUrl = await runHooks("maintenance", ["on"], { ...env, VIBES_APP_URL: "" });
    assert.notEqual(noUrl.code, 0);
    assert.match(String((noUrl.json as { error: string }).error), /VIBES_APP_URL is not set/);
    const noToken = await runHooks("maintenance", ["on"], { ...env, VIBES_ADMIN_TOKEN: "" });
    assert.match(String((noToken.json as { error: string }).error), /VIBES_ADMIN_TOKEN is not set/);
    const bad = await runHooks("maintenance", ["maybe"], env);
    assert.equal(bad.code, 2);
    assert.equal(app.requests.length, 0, "nothing was sent for bad input");
  });

  it("fails clearly when the app does not answer", async () => {
    await app.close();
    const res = await runHooks("maintenance", ["on"], env);
    assert.notEqual(res.code, 0);
    assert.match(String((res.json as { error: string }).error), /does not answer.*ECONNREFUSED/);
  });
});
