import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withPassfile } from "../../hooks/lib/database/childEnv";
import { connectionFromEnv } from "../../hooks/lib/database/connection";
import { runChild } from "../../hooks/lib/processes/run";
import { FakeApp } from "../support/fakeApp";
import { assertSecretAbsent, runHooks } from "../support/hooks";
import { freePort } from "../support/net";
import { APP_DIR, getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";

interface Check {
  name: string;
  ok: boolean;
  status: number | null;
}

describe("smoke", () => {
  let app: FakeApp;
  let env: NodeJS.ProcessEnv;

  beforeEach(async () => {
    app = await FakeApp.start();
    env = { ...process.env, VIBES_APP_URL: app.url, VIBES_ADMIN_TOKEN: app.adminToken };
  });
  afterEach(() => app.close());

  const sentPassword = () => JSON.parse(app.requests.find((r) => r.path === "/api/v1/users")!.body).password as string;
  const checksOf = (json: unknown) => (json as { checks: Check[] }).checks;

  it("runs the guide's API checks and deletes the user it created", async () => {
    const res = await runHooks("smoke", ["--expect-id-type", "uuid"], env);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(checksOf(res.json).map((c) => [c.name, c.ok]), [
      ["create-user", true], ["id-is-uuid", true], ["obtain-token", true], ["create-journal", true],
      ["get-me", true], ["get-user-by-id", true], ["reject-invalid-id", true], ["delete-user", true],
    ]);
    assert.equal(checksOf(res.json).find((c) => c.name === "reject-invalid-id")?.status, 422);
    assert.equal(app.users.size, 0, "the smoke user is gone");
    const email = JSON.parse(app.requests[0].body).email as string;
    assert.match(email, /^smoke\+[0-9a-f]{16}@example\.invalid$/);
    const password = sentPassword();
    assert.ok(password.length >= 24);
    for (const text of [res.stderr, JSON.stringify(res.json)]) {
      assert.ok(!text.includes(password), "password printed");
      assert.ok(!text.includes(app.adminToken), "admin token printed");
      assert.ok(!text.includes("tok-"), "bearer token printed");
    }
  });

  it("writes through maintenance mode with X-Admin-Token, reads without it", async () => {
    app.maintenance = true;
    const res = await runHooks("smoke", [], env);
    assert.equal(res.code, 0, res.stderr);
    for (const r of app.requests) {
      assert.equal(r.headers["x-admin-token"], r.method === "GET" ? undefined : app.adminToken, `${r.method} ${r.path}`);
    }
    assert.equal(app.users.size, 0);
  });

  it("fails with a hint when maintenance blocks writes and no admin token is set", async () => {
    app.maintenance = true;
    const res = await runHooks("smoke", [], { ...env, VIBES_ADMIN_TOKEN: "" });
    assert.notEqual(res.code, 0);
    assert.match((res.json as { error: string }).error, /create-user \(HTTP 503.*VIBES_ADMIN_TOKEN/);
  });

  it("still deletes its user when a check fails, and reports every check", async () => {
    app.failPaths.add("/api/v1/journals");
    const res = await runHooks("smoke", [], env);
    assert.notEqual(res.code, 0);
    const checks = checksOf(res.json);
    assert.deepEqual(checks.find((c) => c.name === "create-journal"), { name: "create-journal", ok: false, status: 500, detail: "HTTP 500, expected 201" });
    assert.equal(checks.find((c) => c.name === "delete-user")?.ok, true);
    assert.equal(app.users.size, 0);
    assert.ok(!res.stderr.includes(sentPassword()));
  });

  it("catches an app that accepts ids that are not UUIDs", async () => {
    app.acceptAnyUserId = true;
    const res = await runHooks("smoke", [], env);
    assert.notEqual(res.code, 0);
    assert.match((res.json as { error: string }).error, /reject-invalid-id \(HTTP 200, expected a 4xx/);
  });

  it("catches integer ids when uuid ids are expected", async () => {
    app.idType = "integer";
    const res = await runHooks("smoke", ["--expect-id-type", "uuid"], env);
    assert.notEqual(res.code, 0);
    assert.equal(checksOf(res.json).find((c) => c.name === "id-is-uuid")?.ok, false);
    assert.equal(app.users.size, 0);
  });
});

describe("smoke, maintenance and health-gate against the real app", function () {
  this.timeout(180_000);
  let pg: PgCluster;
  let db: TestDatabase;
  let runDir: string;
  const adminToken = `admin-${randomBytes(12).toString("hex")}`;

  before(async () => {
    pg = await getCluster();
    db = await pg.createVibesDatabase({ users: 5, journalsPerUser: 2, tags: 3, revision: "001_uuid_schema_migration" });
    runDir = mkdtempSync(join(tmpdir(), "vibes-run-"));
  });
  after(async () => {
    await pg.dropDatabase(db.name);
    rmSync(runDir, { recursive: true, force: true });
  });

  /** Runs fn while the real app (app/scripts/start.sh) serves db; stops it afterwards. */
  async function withRealApp(fn: (env: NodeJS.ProcessEnv) => Promise<void>): Promise<void> {
    const port = await freePort();
    // The app reads its password from the passfile, which lives only as long as this callback.
    await withPassfile(connectionFromEnv(db.env), async (childEnv) => {
      const appEnv = { ...childEnv, VIBES_ADMIN_TOKEN: adminToken, VIBES_RUN_DIR: runDir, VIBES_PORT: String(port) };
      const started = await runChild(join(APP_DIR, "scripts", "start.sh"), [], { env: appEnv, timeoutMs: 60_000 });
      assert.equal(started.code, 0, started.stderr);
      try {
        await fn({ ...db.env, VIBES_APP_URL: `http://127.0.0.1:${port}`, VIBES_ADMIN_TOKEN: adminToken });
      } finally {
        await runChild(join(APP_DIR, "scripts", "stop.sh"), [], { env: appEnv, timeoutMs: 60_000 });
      }
    }, db.env);
  }

  it("health-gate passes, smoke passes with uuid ids, maintenance switches on and off", async () => {
    await withRealApp(async (env) => {
      const gate = await runHooks("health-gate", ["--timeout-seconds", "30", "--interval-seconds", "0.2"], env);
      assert.equal(gate.code, 0, gate.stderr);
      const smoke = await runHooks("smoke", ["--expect-id-type", "uuid"], env);
      assert.equal(smoke.code, 0, smoke.stderr);
      assert.ok(smoke.json.checks.every((c: { ok: boolean }) => c.ok));
      assert.equal((await pg.query(db.name, "SELECT count(*)::int AS n FROM users WHERE email LIKE 'smoke+%'"))[0].n, 0, "smoke user removed");
      const on = await runHooks("maintenance", ["on"], env);
      assert.deepEqual(on.json, { ok: true, step: "maintenance", enabled: true, changed: true });
      const blocked = await runHooks("smoke", [], { ...env, VIBES_ADMIN_TOKEN: "" });
      assert.match(blocked.json.error, /create-user \(HTTP 503/);
      const off = await runHooks("maintenance", ["off"], env);
      assert.deepEqual(off.json, { ok: true, step: "maintenance", enabled: false, changed: true });
      for (const r of [gate, smoke, on, off]) assertSecretAbsent(r, adminToken);
    });
  });

  it("smoke passes while maintenance is on, through the X-Admin-Token bypass", async () => {
    await withRealApp(async (env) => {
      assert.equal((await runHooks("maintenance", ["on"], env)).code, 0);
      const smoke = await runHooks("smoke", ["--expect-id-type", "uuid"], env);
      assert.equal(smoke.code, 0, smoke.stderr);
      assert.equal((await runHooks("maintenance", ["off"], env)).code, 0);
    });
  });
});
