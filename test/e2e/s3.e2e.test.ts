// End to end with backups in S3 (issue 4, scenario 4's S3 half): the dev stack switched to
// backupTarget=s3 by --config overrides, the bucket resources mocked by the rehearsal, and the
// hooks uploading to and reading from a real s3rver.
import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { S3_CREDENTIALS, TestS3, startFaultyProxy, startS3 } from "../support/s3";
import { RehearsalRun } from "../rehearsal/cli";
import {
  DEV_STAGE_ORDER, E2eEnv, assertIdTypes, assertNoSecrets, content, dataPicture, maintenanceOn, rehearse, schemaPicture, setUp,
  stageStatus, tearDown,
} from "./harness";

const KEY = /^pre-uuid-migration\/vibes_backup_\d{8}_\d{6}_at-0000_initial_for-001_uuid_schema_migration\.dump$/;

/**
 * The whole program with its backups in `bucket` behind `endpoint`. Target, bucket, region and
 * endpoint come only from config, so the program must hand them to the hooks itself; the runner's
 * environment adds just the credentials, as an operator's shell would.
 */
function rehearseS3(e: E2eEnv, bucket: string, endpoint: string, env: NodeJS.ProcessEnv = {}): Promise<RehearsalRun> {
  const runnerEnv = {
    ...e.runnerEnv,
    AWS_ACCESS_KEY_ID: S3_CREDENTIALS.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.AWS_SECRET_ACCESS_KEY,
    ...env,
  };
  return rehearse({ ...e, runnerEnv }, { backupTarget: "s3", backupBucketName: bucket, "aws:region": "eu-west-1", backupS3Endpoint: endpoint });
}

async function getObject(s3: TestS3, key: string): Promise<Buffer> {
  const client = s3.client();
  try {
    const res = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from(await res.Body!.transformToByteArray());
  } finally {
    client.destroy();
  }
}

/** The run stopped at the backup: nothing from the migration on ran, the database is as before. */
async function assertStoppedAtBackup(run: RehearsalRun, e: E2eEnv, before: unknown): Promise<void> {
  assert.equal(run.code, 1, run.output);
  assertNoSecrets(run, e);
  assert.equal(run.summary.failedStage, "backup", run.output);
  const backup = run.summary.stages.find((s) => s.name === "backup")!.resources;
  assert.equal(backup.find((r) => r.name === "backup-dump")!.status, "failed");
  assert.equal(backup.find((r) => r.name === "backup-verify-restore")!.status, "not-run");
  const st = stageStatus(run);
  for (const s of ["maintenance-on", "migration", "validation", "app-release", "post-deploy-checks", "maintenance-off"]) assert.equal(st[s], "not-run", s);
  assert.ok(run.summary.stages.find((s) => s.name === "migration")!.resources.every((r) => r.status === "not-run"));
  assert.deepEqual({ data: await dataPicture(e.pg, e.db.name), schema: await schemaPicture(e.pg, e.db.name) }, before, "the database changed");
  // The backup runs before the window: the app never stopped serving, and no note says otherwise.
  assert.equal(await maintenanceOn(e), false);
  assert.ok(!run.summary.notes.some((n) => /maintenance mode is still ON/.test(n)), run.summary.notes.join("\n"));
  assert.equal(run.summary.outputs, undefined);
  assert.ok(!fs.existsSync(e.backupDir), "the dump went to the local folder");
}

describe("e2e: backups in S3 (s3rver) under the rehearsal", function () {
  this.timeout(300_000);
  let e: E2eEnv | undefined;
  let s3: TestS3 | undefined;
  afterEach(async () => {
    try {
      await tearDown(e);
    } finally {
      await s3?.stop();
      e = undefined;
      s3 = undefined;
    }
  });

  it("happy path: dump and manifest land in the bucket, the output URI and SHA-256 are the object's, verify-restore reads it from S3", async () => {
    s3 = await startS3();
    e = await setUp();
    const before = await dataPicture(e.pg, e.db.name);

    const run = await rehearseS3(e, s3.bucket, s3.endpoint);
    assert.equal(run.code, 0, run.output);
    assertNoSecrets(run, e);
    assert.deepEqual(stageStatus(run), Object.fromEntries(DEV_STAGE_ORDER.map((n) => [n, "ok"])));

    // One timestamped dump and its manifest under the prefix; nothing written locally.
    const keys = await s3.keys();
    assert.equal(keys.length, 2, keys.join(", "));
    const [key, manifestKey] = keys;
    assert.match(key, KEY);
    assert.equal(manifestKey, `${key}.manifest.json`);
    assert.ok(!fs.existsSync(e.backupDir), "the dump went to the local folder");

    const o = run.summary.outputs!;
    assert.equal(o.backupBucketName, s3.bucket);
    assert.equal(o.backupObjectUri, `s3://${s3.bucket}/${key}`);
    assert.equal(o.backupManifestUri, `s3://${s3.bucket}/${manifestKey}`);
    const dump = await getObject(s3, key);
    assert.equal(o.backupSha256, crypto.createHash("sha256").update(dump).digest("hex"));
    assert.equal(o.backupBytes, dump.length);
    const manifest = JSON.parse((await getObject(s3, manifestKey)).toString("utf8"));
    assert.deepEqual([manifest.dump.uri, manifest.dump.sha256, manifest.revision], [o.backupObjectUri, o.backupSha256, "0000_initial"]);

    // The verification downloaded that object (a local dump does not say "downloading").
    const verify = run.summary.stages.find((s) => s.name === "backup")!.resources.find((r) => r.name === "backup-verify-restore")!;
    assert.equal(verify.status, "ok");
    assert.ok(run.output.includes(`downloading ${o.backupObjectUri}`), run.output);

    const after = await dataPicture(e.pg, e.db.name);
    assert.equal(after.revision, "001_uuid_schema_migration");
    assertIdTypes(after, "uuid");
    assert.deepEqual(content(after), content(before));
    assert.equal(o.validated, true);
    assert.equal(await maintenanceOn(e), false);
  });

  it("S3 server down: the backup stage fails before the window, the migration never runs, the database is unchanged, the app still serves", async () => {
    // The endpoint a stopped s3rver listened on: connections are refused.
    const gone = await startS3();
    const endpoint = gone.endpoint;
    await gone.stop();
    e = await setUp();
    const before = { data: await dataPicture(e.pg, e.db.name), schema: await schemaPicture(e.pg, e.db.name) };

    const run = await rehearseS3(e, gone.bucket, endpoint);
    await assertStoppedAtBackup(run, e, before);
    assert.match(run.summary.error!, /backup-dump: command exited with code 1: error: upload to s3:\/\/vibes-backups\/pre-uuid-migration\/vibes_backup_\S+ failed/);
  });

  it("an upload failing part way: the backup stage fails, no object or manifest is left, the migration never runs", async () => {
    s3 = await startS3();
    e = await setUp();
    // Incompressible filler so the dump spans several 5 MiB parts (as in test/hooks/backup.test.ts).
    await e.pg.query(e.db.name, `CREATE TABLE filler AS SELECT g AS id, decode(md5(g::text || random()::text) || md5(random()::text), 'hex') AS b
                                     FROM generate_series(1, 400000) g; ALTER TABLE filler OWNER TO vibes`);
    const before = { data: await dataPicture(e.pg, e.db.name), schema: await schemaPicture(e.pg, e.db.name) };
    // Part 1 goes through; every later part (and each retry) has its connection cut.
    const proxy = await startFaultyProxy(s3.endpoint, (n) => n >= 2);
    try {
      const run = await rehearseS3(e, s3.bucket, proxy.endpoint, { VIBES_S3_PART_SIZE_MIB: "5" });
      await assertStoppedAtBackup(run, e, before);
      assert.match(run.summary.error!, /backup-dump: command exited with code 1: error: upload to s3:\/\/vibes-backups\/pre-uuid-migration\/vibes_backup_\S+ failed/);
      assert.ok(proxy.partRequests >= 2, `the upload reached its second part (${proxy.partRequests} part requests)`);
    } finally {
      await proxy.close();
    }
    assert.deepEqual(await s3.keys(), []);
  });
});
