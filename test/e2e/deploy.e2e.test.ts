// End to end: the whole Pulumi program, run by the rehearsal, against a freshly generated database
// and the running sample app (issue 4). Slow: select with --grep "e2e", skip with --grep "e2e" --invert.
import { strict as assert } from "assert";
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { runHooks } from "../support/hooks";
import { migrationFilesSha256 } from "../../common/migrationFiles";
import { APP_DIR } from "../support/pgCluster";
import {
  DEV_STAGE_ORDER, E2eEnv, REPO_ROOT, appPid, assertIdTypes, assertNoSecrets, content, dataPicture, faultyAppDir, getJson,
  maintenanceOn, rehearse, schemaPicture, setUp, stageStatus, tearDown,
} from "./harness";

const fileOf = (uri: string) => (uri.startsWith("file://") ? new URL(uri).pathname : uri);
const sha256 = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");

describe("e2e: the program under the rehearsal, on a real database and app", function () {
  this.timeout(300_000);
  let e: E2eEnv | undefined;
  afterEach(async () => {
    await tearDown(e);
    e = undefined;
  });

  it("happy path: every stage in the graph's order, uuid ids, all data and relationships, app serves uuids, outputs true", async () => {
    e = await setUp();
    const before = await dataPicture(e.pg, e.db.name);
    assertIdTypes(before, "integer");
    const pidBefore = appPid(e);

    const run = await rehearse(e);
    assert.equal(run.code, 0, run.output);
    assertNoSecrets(run, e);
    assert.match(run.output, /Pulumi state is NOT written/);

    // Every stage ran, each one after the one before it had finished; of the post-deploy checks,
    // the performance checks start beside the app's release, the smoke tests after it.
    const stages = new Map(run.summary.stages.map((s) => [s.name, s]));
    assert.deepEqual(stageStatus(run), Object.fromEntries(DEV_STAGE_ORDER.map((n) => [n, "ok"])));
    const end = (name: string) => stages.get(name)!.startedMs! + stages.get(name)!.durationMs!;
    const startOf = (name: string) => stages.get(name)!.startedMs!;
    for (let i = 1; i < DEV_STAGE_ORDER.length; i++) {
      const [prev, stage] = [DEV_STAGE_ORDER[i - 1], DEV_STAGE_ORDER[i]];
      if (stage === "post-deploy-checks") continue;
      assert.ok(startOf(stage) >= end(prev), `${stage} started before ${prev} ended`);
    }
    const check = (name: string) => stages.get("post-deploy-checks")!.resources.find((r) => r.name === `post-deploy-checks-${name}`)!;
    assert.ok(check("smoke").startedMs! >= end("app-release"), "the smoke tests started before the release ended");
    assert.ok(check("performance").startedMs! >= end("validation"), "the performance checks started before the validation ended");
    assert.ok(check("performance").startedMs! < end("app-release"), "the performance checks waited for the release");

    const after = await dataPicture(e.pg, e.db.name);
    assert.equal(after.revision, "001_uuid_schema_migration");
    assertIdTypes(after, "uuid");
    assert.deepEqual(content(after), content(before), "a row or relationship changed");

    // The restarted app serves uuid ids; an integer id is refused.
    assert.notEqual(appPid(e), pidBefore, "the app was restarted");
    const [{ id, email }] = await e.pg.query(e.db.name, "SELECT id::text AS id, email FROM users ORDER BY email LIMIT 1");
    const user = await getJson(e, `/api/v1/users/${id}`);
    assert.equal(user.status, 200);
    assert.deepEqual([user.body.id, user.body.email], [id, email]);
    assert.equal((await getJson(e, "/api/v1/users/1")).status, 422);
    assert.equal(await maintenanceOn(e), false, "maintenance mode left on");
    const status = await getJson(e, "/api/v1/status");
    assert.deepEqual([status.body.schema_revision, status.body.id_type, status.body.maintenance], ["001_uuid_schema_migration", "uuid", false]);

    // The outputs are complete and true.
    const o = run.summary.outputs!;
    assert.deepEqual(Object.keys(o).sort(), [
      "appUrl", "backupBytes", "backupFolder", "backupManifestUri", "backupObjectUri", "backupRetakenInWindow", "backupSha256", "idType", "migrationFilesSha256",
      "schemaRevisionAfter", "schemaRevisionBefore", "targetRevision", "validated", "validationSummary",
    ]);
    assert.equal(o.backupRetakenInWindow, false, "nothing wrote between the backup and the window");
    const dump = fileOf(String(o.backupObjectUri));
    assert.ok(fs.existsSync(dump), `backup ${dump} missing`);
    assert.equal(o.backupSha256, sha256(dump));
    assert.equal(o.backupBytes, fs.statSync(dump).size);
    assert.ok(fs.existsSync(fileOf(String(o.backupManifestUri))));
    assert.equal(path.resolve(REPO_ROOT, String(o.backupFolder)), e.backupDir);
    assert.ok(dump.startsWith(e.backupDir + path.sep));
    assert.equal(o.schemaRevisionBefore, "0000_initial");
    assert.equal(o.schemaRevisionAfter, "001_uuid_schema_migration");
    assert.equal(o.targetRevision, "001_uuid_schema_migration");
    assert.equal(o.idType, "uuid");
    assert.equal(o.migrationFilesSha256, migrationFilesSha256(path.join(APP_DIR, "migrations", "versions")));
    assert.equal(o.appUrl, e.appUrl);
    // Validated once: the stage reports the proof migrate recorded for this backup.
    assert.match(String(o.validationSummary), /^schema\+data: (\d+)\/\1 checks passed \(by migrate at \d{4}-\d\d-\d\dT[\d:.]+Z\)$/);
    assert.equal(o.validated, true);
    assert.equal(run.summary.notes.length, 0);
  });

  it("migration fails half way: database exactly as before, app not restarted, maintenance on and reported, clear failure", async () => {
    e = await setUp();
    const before = { data: await dataPicture(e.pg, e.db.name), schema: await schemaPicture(e.pg, e.db.name) };
    const pid = appPid(e);

    const run = await rehearse(e, { appDir: faultyAppDir(e, "fail_halfway") });
    assert.equal(run.code, 1, run.output);
    assertNoSecrets(run, e);
    assert.equal(run.summary.failedStage, "migration");
    assert.match(run.summary.error!, /stage SchemaMigration "migration" failed: migration-migrate: command exited with code 1: error: .+/);
    const st = stageStatus(run);
    for (const s of ["app-release", "post-deploy-checks", "maintenance-off", "validation"]) assert.equal(st[s], "not-run", s);

    assert.deepEqual({ data: await dataPicture(e.pg, e.db.name), schema: await schemaPicture(e.pg, e.db.name) }, before);
    assert.equal(appPid(e), pid, "the app was restarted");
    assert.equal(await maintenanceOn(e), true);
    assert.ok(run.summary.notes.some((n) => /maintenance mode is still ON/.test(n)), run.summary.notes.join("\n"));
    assert.match(run.output, /NOTE: maintenance mode is still ON/);
  });

  for (const fault of ["drop_rows", "reparent"] as const) {
    it(`migration "succeeds" but ${fault === "drop_rows" ? "drops rows" : "re-parents journals"}: caught, rolled back automatically, all data there, run fails`, async () => {
      e = await setUp();
      const before = await dataPicture(e.pg, e.db.name);
      const pid = appPid(e);

      const run = await rehearse(e, { appDir: faultyAppDir(e, fault) });
      assert.equal(run.code, 1, run.output);
      assertNoSecrets(run, e);
      assert.ok(["migration", "validation"].includes(run.summary.failedStage!), `failed at ${run.summary.failedStage}`);
      assert.match(run.summary.error!, /fingerprint|rows|relationship|mismatch|differ/i);

      const after = await dataPicture(e.pg, e.db.name);
      assert.equal(after.revision, "0000_initial", "not rolled back");
      assertIdTypes(after, "integer");
      assert.deepEqual(content(after), content(before));
      assert.equal(appPid(e), pid, "the app was restarted");
      assert.equal(stageStatus(run)["app-release"], "not-run");
    });
  }

  it("backup cannot be written: the migration never runs", async () => {
    e = await setUp();
    const before = await dataPicture(e.pg, e.db.name);
    // Root ignores permissions: a path under a regular file cannot be created by anyone.
    const blocker = path.join(e.dir, "not-a-folder");
    fs.writeFileSync(blocker, "");

    const run = await rehearse(e, { backupDir: path.join(blocker, "backups") });
    assert.equal(run.code, 1, run.output);
    assertNoSecrets(run, e);
    assert.ok(["backup-vault", "backup"].includes(run.summary.failedStage!), `failed at ${run.summary.failedStage}`);
    const st = stageStatus(run);
    assert.equal(st.migration, "not-run");
    const migrate = run.summary.stages.find((s) => s.name === "migration")!.resources;
    assert.ok(migrate.every((r) => r.status === "not-run"));
    assert.deepEqual(await dataPicture(e.pg, e.db.name), before, "the database changed");
  });

  it("rollback after a good deployment returns integer ids with every row; destroying the migration stage leaves the database alone", async () => {
    e = await setUp();
    const original = await dataPicture(e.pg, e.db.name);
    const up = await rehearse(e);
    assert.equal(up.code, 0, up.output);

    // Under mocks there is no state: the update is the program run again with the new target;
    // the migrate step reads the database's revision and goes down.
    const down = await rehearse(e, { targetRevision: "0000_initial" });
    assert.equal(down.code, 0, down.output);
    assertNoSecrets(down, e);
    assert.equal(down.summary.outputs!.schemaRevisionBefore, "001_uuid_schema_migration");
    assert.equal(down.summary.outputs!.schemaRevisionAfter, "0000_initial");
    assert.equal(down.summary.outputs!.idType, "integer");
    const rolledBack = await dataPicture(e.pg, e.db.name);
    assert.equal(rolledBack.revision, "0000_initial");
    assertIdTypes(rolledBack, "integer");
    assert.deepEqual(content(rolledBack), content(original));

    // `pulumi destroy` runs each Command's delete: the migration's must not touch the database.
    const migrate = down.summary.stages.find((s) => s.name === "migration")!.resources.find((r) => r.type === "command:local:Command")!;
    assert.ok(migrate.delete, "the migration Command has a delete");
    const schemaBefore = await schemaPicture(e.pg, e.db.name);
    execFileSync("/bin/sh", ["-c", migrate.delete!], { cwd: REPO_ROOT, env: { ...e.runnerEnv, ...e.db.env }, stdio: "ignore" });
    assert.deepEqual(await dataPicture(e.pg, e.db.name), rolledBack);
    assert.deepEqual(await schemaPicture(e.pg, e.db.name), schemaBefore);
  });

  it("restore: the backup restores into a fresh database with equal fingerprints", async () => {
    e = await setUp();
    const original = await dataPicture(e.pg, e.db.name);
    const run = await rehearse(e);
    assert.equal(run.code, 0, run.output);
    const uri = String(run.summary.outputs!.backupObjectUri);
    const hookEnv = { ...e.db.env, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: e.backupDir };

    const verify = await runHooks("verify-restore", ["--uri", uri], hookEnv);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.json.matches, true);
    assert.equal(verify.json.sha256, run.summary.outputs!.backupSha256);

    const fresh = await e.pg.createDatabase();
    try {
      const restore = await runHooks("restore", ["--uri", uri], { ...hookEnv, ...fresh.env, VIBES_BACKUP_DIR: e.backupDir });
      assert.equal(restore.code, 0, restore.stderr);
      const restored = await dataPicture(e.pg, fresh.name);
      assert.equal(restored.revision, "0000_initial");
      assertIdTypes(restored, "integer");
      assert.deepEqual(content(restored), content(original));
    } finally {
      await e.pg.dropDatabase(fresh.name);
    }
  });

  it("the app process killed during the release: the health gate fails the run within its timeout, and the database goes back", async () => {
    e = await setUp();
    const before = await dataPicture(e.pg, e.db.name);
    const timeout = 6;
    const run = await rehearse(e, {
      restartCommand: 'app/scripts/stop.sh && app/scripts/start.sh && kill -9 "$(cat "$VIBES_RUN_DIR/vibes.pid")"',
      healthGateTimeoutSeconds: String(timeout),
      healthGateIntervalSeconds: "1",
    });
    assert.equal(run.code, 1, run.output);
    assertNoSecrets(run, e);
    assert.equal(run.summary.failedStage, "app-release");
    const release = run.summary.stages.find((s) => s.name === "app-release")!.resources;
    // The restart step waits for /health itself: it fails once the gate's timeout has passed, then
    // swaps the copy back in and restarts the app on it, which the same command kills again.
    const restart = release.find((r) => r.name === "app-release-restart")!;
    assert.equal(restart.status, "failed");
    assert.ok(restart.durationMs! >= 2 * timeout * 1000 - 500 && restart.durationMs! < (2 * timeout + 15) * 1000, `restart with its health gate and the rollback took ${restart.durationMs} ms`);
    assert.match(run.output, /the verified copy of \S+ was swapped in .*, but the app did not come back on it/);
    const after = await dataPicture(e.pg, e.db.name);
    assert.equal(after.revision, "0000_initial");
    assertIdTypes(after, "integer");
    assert.deepEqual(content(after), content(before));
    assert.match(run.output, /\[health-gate \+[\d.]+s\] attempt \d+: not healthy yet/);
    const st = stageStatus(run);
    // The performance checks ran beside the release (they need only the database); the smoke tests did not.
    assert.equal(st["post-deploy-checks"], "incomplete");
    const checks = run.summary.stages.find((s) => s.name === "post-deploy-checks")!.resources;
    assert.deepEqual(checks.map((r) => [r.name, r.status]).sort(), [["post-deploy-checks-performance", "ok"], ["post-deploy-checks-smoke", "not-run"]]);
    assert.equal(st["maintenance-off"], "not-run");
    assert.ok(run.summary.notes.some((n) => /maintenance mode is still ON/.test(n)));
  });

  it("smoke tests fail after the release: the copy is swapped back, the app serves the database it ran on before, the failed one is kept", async () => {
    e = await setUp();
    const before = await dataPicture(e.pg, e.db.name);
    // Released with a token the deployment does not know: /health is fine, the smoke writes are refused.
    const run = await rehearse(e, { restartCommand: "app/scripts/stop.sh && VIBES_ADMIN_TOKEN=not-the-deployments app/scripts/start.sh" });
    assert.equal(run.code, 1, run.output);
    assertNoSecrets(run, e);
    assert.equal(run.summary.failedStage, "post-deploy-checks");
    assert.match(run.output, /The smoke step failed after the migration, so the deployment was rolled back: the verified copy of \S+ was swapped in \(\d+ ms\), its schema, data and ids proven equal to the backup's \(\d+ checks\); the database it replaced is kept as (\w+_failed_\d{8}_\d{6}); the app was restarted on it and is healthy/);
    const failedDb = /kept as (\w+_failed_\d{8}_\d{6})/.exec(run.output)![1];
    const after = await dataPicture(e.pg, e.db.name);
    assert.equal(after.revision, "0000_initial");
    assertIdTypes(after, "integer");
    assert.deepEqual(content(after), content(before));
    // The app serves the database it ran on before: integer ids again.
    const [{ id }] = await e.pg.query(e.db.name, "SELECT id FROM users ORDER BY id LIMIT 1");
    assert.equal((await getJson(e, `/api/v1/users/${id}`)).status, 200);
    assert.equal((await getJson(e, "/api/v1/status")).body.id_type, "integer");
    // The migrated database is kept for inspection, and the copy is gone (it is the database now).
    assertIdTypes(await dataPicture(e.pg, failedDb), "uuid");
    assert.deepEqual(await e.pg.query("postgres", "SELECT datname FROM pg_database WHERE datname = $1", [`${e.db.name}_vibes_copy`]), []);
    assert.equal(stageStatus(run)["maintenance-off"], "not-run");
    await e.pg.dropDatabase(failedDb);
  });
});
