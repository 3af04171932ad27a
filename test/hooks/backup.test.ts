import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTempDirSync } from "../../hooks/lib/processes/tempDirs";
import { getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";
import { assertFailed, assertSecretAbsent, runHooks } from "../support/hooks";
import { oldPgDump, oldPgRestore, spyPgDump, truncatingPgDump } from "../support/fakeTools";
import { startFaultyProxy, startS3, type TestS3 } from "../support/s3";
import { freePort } from "../support/net";

describe("vibes-hooks backup", function () {
  let pg: PgCluster;
  let db: TestDatabase;
  let dir: string;

  before(async () => {
    pg = await getCluster();
    db = await pg.createVibesDatabase({ users: 30, journalsPerUser: 3 });
  });
  after(async () => {
    await pg.dropDatabase(db.name);
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "vibes-backups-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const localEnv = (extra: NodeJS.ProcessEnv = {}) => ({ ...db.env, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: dir, ...extra });

  it("dumps, verifies and writes a manifest that matches the database; the password reaches pg_dump only through a 0600 passfile", async () => {
    const spy = join(makeTempDirSync("vibes-spy-"), "pg_dump");
    const res = await runHooks("backup", ["--label", "for-001_uuid_schema_migration"], localEnv({ VIBES_PG_DUMP: spyPgDump(spy) }));
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.json.ok, true);
    assert.match(res.json.uri, /^file:\/\/.*\/vibes_backup_\d{8}_\d{6}_at-0000_initial_for-001_uuid_schema_migration\.dump$/);
    assert.equal(res.json.manifestUri, `${res.json.uri}.manifest.json`);
    assert.equal(res.json.revision, "0000_initial");
    assert.deepEqual(res.json.tables, { users: { rows: 30 }, journals: { rows: 90 }, tags: { rows: 5 }, journal_tags: res.json.tables.journal_tags });
    const [jt] = await pg.query(db.name, "SELECT count(*)::int AS n FROM journal_tags");
    assert.equal(res.json.tables.journal_tags.rows, jt.n);

    const dump = readFileSync(fileURLToPath(res.json.uri));
    assert.equal(dump.length, res.json.bytes);
    assert.equal(createHash("sha256").update(dump).digest("hex"), res.json.sha256);
    assert.equal(dump.subarray(0, 5).toString(), "PGDMP", "custom-format archive");
    // Where the time went, in the order the phases must end.
    const t = res.json.timings;
    assert.ok(t.stepStarted > 0 && t.stepStarted <= t.dumpStarted, JSON.stringify(t));
    for (const phase of ["fingerprintsDone", "dumpDone", "verifyDone", "dumpStored"]) {
      assert.ok(t[phase] >= t.dumpStarted && t[phase] <= t.manifestStored, `${phase}: ${JSON.stringify(t)}`);
    }
    assert.ok(t.dumpDone <= t.dumpStored, `the store completes only after pg_dump exits: ${JSON.stringify(t)}`);
    const manifest = JSON.parse(readFileSync(fileURLToPath(res.json.manifestUri), "utf8"));
    assert.equal(manifest.format, 6);
    assert.deepEqual(manifest.dump, { uri: res.json.uri, sha256: res.json.sha256, bytes: res.json.bytes });
    assert.equal(manifest.tables.journals.idColumn, "id");
    assert.deepEqual(manifest.tables.journals.keyColumns, ["id", "user_id"]);
    assert.deepEqual(manifest.tables.journals.contentColumns, ["content", "created_at", "title"]);
    assert.deepEqual(manifest.tables.journal_tags.parents.map((e: { constraint: string }) => e.constraint), ["journal_tags_journal_id_fkey", "journal_tags_tag_id_fkey"]);
    assert.match(manifest.tables.journals.idFingerprint, /^[0-9a-f]{32}$/);
    // The schema snapshot: full definitions, each default's own sequence by role, not by name.
    const journals = manifest.schema.tables.journals;
    assert.equal(journals.constraints.journals_user_id_fkey.definition, "FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE");
    assert.equal(journals.indexes.ix_journals_user_id.definition, "CREATE INDEX ON public.journals USING btree (user_id)");
    assert.deepEqual(journals.columns.user_id, { type: "integer", notNull: true, default: null, identity: null, generated: null, collation: null, sequence: null, comment: null, acl: [] });
    assert.equal(journals.columns.id.default, "nextval(<sequence>)");
    assert.equal(journals.columns.id.sequence.owned, true);

    // pg_dump's command line and environment never held the password; its passfile was 0600 and is gone.
    const args = readFileSync(`${spy}.args`, "utf8");
    const env = readFileSync(`${spy}.env`, "utf8");
    assert.ok(args.includes("-Fc") && args.includes("--snapshot=") && args.includes("--lock-wait-timeout=60s"), args);
    assert.ok(!args.includes(pg.password) && !env.includes(pg.password), "password in pg_dump's argv or env");
    assert.doesNotMatch(env, /^(PGPASSWORD|VIBES_DB_PASSWORD)=/m);
    assert.equal(readFileSync(`${spy}.mode`, "utf8").trim(), "600");
    assert.ok(!existsSync(readFileSync(`${spy}.passfile`, "utf8").trim()), "passfile removed after the run");
    assertSecretAbsent(res, pg.password);
  });

  it("fails on an unreachable database, naming it and what to check", async () => {
    const port = await freePort();
    const res = await runHooks("backup", [], localEnv({ DATABASE_URL: `postgresql://vibes@127.0.0.1:${port}/${db.name}` }));
    assertFailed(res, "backup", new RegExp(`cannot reach PostgreSQL at 127.0.0.1:${port}`));
    assert.match(res.json.next, /DATABASE_URL/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it("fails on a wrong password without printing it", async () => {
    const wrong = "Wr0ng-pass-7781";
    const res = await runHooks("backup", [], localEnv({ VIBES_DB_PASSWORD: wrong }));
    assertFailed(res, "backup", /password authentication failed/);
    assert.match(res.json.next, /VIBES_DB_PASSWORD/);
    assertSecretAbsent(res, wrong);
    // Also when the password comes inside DATABASE_URL.
    const inUrl = await runHooks("backup", [], localEnv({ VIBES_DB_PASSWORD: "", DATABASE_URL: `postgresql://vibes:${wrong}@127.0.0.1:${pg.port}/${db.name}` }));
    assertFailed(inUrl, "backup", /password authentication failed/);
    assertSecretAbsent(inUrl, wrong);
  });

  it("fails before writing anything when a covered table is missing", async () => {
    const res = await runHooks("backup", [], localEnv({ VIBES_TABLES: "users,journals,comments" }));
    assertFailed(res, "backup", /table not found: comments/);
    assert.match(res.json.next, /VIBES_TABLES/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it("refuses a pg_dump older than the server", async () => {
    const res = await runHooks("backup", [], localEnv({ VIBES_PG_DUMP: oldPgDump(12) }));
    assertFailed(res, "backup", /pg_dump.* is version 12 but the server is PostgreSQL 15/);
    assert.match(res.json.next, /VIBES_PG_BIN/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it("a failed backup does not wait for its fingerprint pass: that session is ended", async () => {
    // The fingerprints would wait on this lock for as long as it is held.
    const locker = await pg.adminClient(db.name);
    try {
      await locker.query("BEGIN; LOCK TABLE tags IN ACCESS EXCLUSIVE MODE");
      const res = await runHooks("backup", [], localEnv({ VIBES_PG_DUMP: oldPgDump(12) }));
      assertFailed(res, "backup", /pg_dump.* is version 12 but the server is PostgreSQL 15/);
      const left = await pg.query(db.name, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'vibes-hooks backup'");
      assert.equal(left[0].n, 0, "the backup's session is still there");
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      await locker.query("ROLLBACK");
      await locker.end();
    }
  });

  it("a verifying pg_restore older than pg_dump is named as the cause; nothing is left", async () => {
    const res = await runHooks("backup", [], localEnv({ VIBES_PG_RESTORE: oldPgRestore() }));
    assertFailed(res, "backup", /pg_restore is older than .*pg_dump: it cannot read the archive \(pg_restore: error: unsupported version \(1\.16\) in file header\)/);
    assert.match(res.json.next, /same PostgreSQL version/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it("a dump truncated without an error is caught by reading it in full; nothing is left", async () => {
    const res = await runHooks("backup", [], localEnv({ VIBES_PG_DUMP: truncatingPgDump(4000, 0) }));
    assertFailed(res, "backup", /failed verification: pg_restore could not read it in full/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it("a pg_dump failing part way leaves nothing behind", async () => {
    const res = await runHooks("backup", [], localEnv({ VIBES_PG_DUMP: truncatingPgDump(4000, 1) }));
    assertFailed(res, "backup", /pg_dump failed: pg_dump: error: simulated failure/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it("rejects bad settings early with exit 2 or a named setting", async () => {
    const badLabel = await runHooks("backup", ["--label", "../x"], localEnv());
    assert.equal(badLabel.code, 2);
    const noDir = await runHooks("backup", [], localEnv({ VIBES_BACKUP_DIR: "" }));
    assertFailed(noDir, "backup", /VIBES_BACKUP_DIR is not set/);
    const noTarget = await runHooks("backup", [], localEnv({ VIBES_BACKUP_TARGET: "" }));
    assertFailed(noTarget, "backup", /VIBES_BACKUP_TARGET is not set/);
  });

  describe("to S3 (s3rver)", function () {
    let s3: TestS3;
    let big: TestDatabase;

    before(async () => {
      s3 = await startS3();
      // Incompressible filler so the dump spans several 5 MiB parts.
      big = await pg.createVibesDatabase({ users: 30, journalsPerUser: 3 });
      await pg.query(big.name, `CREATE TABLE filler AS SELECT g AS id, decode(md5(g::text || random()::text) || md5(random()::text), 'hex') AS b
                                  FROM generate_series(1, 400000) g; ALTER TABLE filler OWNER TO vibes`);
    });
    after(async () => {
      await s3.stop();
      await pg.dropDatabase(big.name);
    });

    it("uploads in parts, retries a failed part, and the backup verifies from S3", async () => {
      const proxy = await startFaultyProxy(s3.endpoint, (n) => n === 2);
      try {
        const env = { ...big.env, ...s3.env(proxy.endpoint), VIBES_S3_PART_SIZE_MIB: "5" };
        const res = await runHooks("backup", ["--label", "for-001_uuid_schema_migration"], env);
        assert.equal(res.code, 0, res.stderr);
        assert.ok(res.json.bytes > 10 * 1024 * 1024, `dump of ${res.json.bytes} bytes spans 3+ parts`);
        assert.ok(proxy.partRequests >= 4, `part 2 was retried (${proxy.partRequests} part requests)`);
        const key = res.json.uri.replace(`s3://${s3.bucket}/`, "");
        assert.match(key, /^pre-uuid-migration\/vibes_backup_\d{8}_\d{6}_at-0000_initial_for-001_uuid_schema_migration\.dump$/);
        assert.deepEqual(await s3.keys(), [key, `${key}.manifest.json`]);
        const verify = await runHooks("verify-restore", ["--uri", res.json.uri], { ...big.env, ...s3.env() });
        assert.equal(verify.code, 0, verify.stderr);
        assert.equal(verify.json.matches, true);
      } finally {
        await proxy.close();
        await s3.empty();
      }
    });

    it("an upload failing part way fails the backup and leaves no object and no manifest", async () => {
      const proxy = await startFaultyProxy(s3.endpoint, (n) => n >= 2);
      try {
        const env = { ...big.env, ...s3.env(proxy.endpoint), VIBES_S3_PART_SIZE_MIB: "5" };
        const res = await runHooks("backup", [], env);
        assertFailed(res, "backup", /upload to s3:\/\/vibes-backups\/pre-uuid-migration\/vibes_backup_.*failed/);
        assert.equal(res.json.uri, undefined);
        assert.deepEqual(await s3.keys(), []);
        assertSecretAbsent(res, pg.password);
      } finally {
        await proxy.close();
      }
    });

    it("a pg_dump refusing the server at once fails the backup cleanly, with no object", async () => {
      const res = await runHooks("backup", [], { ...db.env, ...s3.env(), VIBES_PG_DUMP: oldPgDump(12) });
      assertFailed(res, "backup", /pg_dump.* is version 12 but the server is PostgreSQL 15/);
      assert.deepEqual(await s3.keys(), []);
    });

    it("an unreachable S3 endpoint fails the backup", async () => {
      const port = await freePort();
      const res = await runHooks("backup", [], { ...db.env, ...s3.env(`http://127.0.0.1:${port}`) });
      assertFailed(res, "backup", /upload to s3:.*failed/);
      assert.deepEqual(await s3.keys(), []);
    });

    it("verify-restore leaves no downloaded dump behind when the database cannot be reached", async () => {
      const tmp = mkdtempSync(join(tmpdir(), "vibes-tmp-"));
      try {
        const backup = await runHooks("backup", ["--label", "0000_initial"], { ...db.env, ...s3.env() });
        assert.equal(backup.code, 0, backup.stderr);
        const port = await freePort();
        const res = await runHooks("verify-restore", ["--uri", backup.json.uri],
          { ...db.env, ...s3.env(), DATABASE_URL: `postgresql://vibes@127.0.0.1:${port}/${db.name}`, TMPDIR: tmp });
        assertFailed(res, "verify-restore", /cannot reach PostgreSQL/);
        assert.match(res.stderr, /downloading s3:/, "the dump was downloaded first");
        assert.deepEqual(readdirSync(tmp), [], "the downloaded dump (the database's data) is removed");
      } finally {
        rmSync(tmp, { recursive: true, force: true });
        await s3.empty();
      }
    });
  });
});
