import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";
import { assertFailed, assertSecretAbsent, runHooks } from "../support/hooks";
import { MIGRATE_LOCK_KEY } from "../../hooks/lib/database/migrationLock";

describe("vibes-hooks verify-restore and restore", function () {
  let pg: PgCluster;
  let db: TestDatabase;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let backup: { uri: string; manifestUri: string; sha256: string };

  const verifyDatabases = async () =>
    (await pg.query("postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'vibes_verify_%'")).map((r) => r.datname);

  before(async () => {
    pg = await getCluster();
    db = await pg.createVibesDatabase({ users: 25, journalsPerUser: 2 });
    dir = mkdtempSync(join(tmpdir(), "vibes-backups-"));
    env = { ...db.env, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: dir };
    const res = await runHooks("backup", ["--label", "0000_initial"], env);
    assert.equal(res.code, 0, res.stderr);
    backup = res.json;
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await pg.dropDatabase(db.name);
  });

  /** A copy of the backup (dump + manifest) that a test may damage. */
  function copyBackup(edit: { dump?: (b: Buffer) => Buffer; manifest?: (m: { format: number; tables: Record<string, { rows: number; contentFingerprint: string }>; schema: unknown }) => void }): string {
    const copyDir = mkdtempSync(join(dir, "copy-"));
    const path = join(copyDir, "vibes_backup_copy.dump");
    const dump = readFileSync(fileURLToPath(backup.uri));
    const manifest = JSON.parse(readFileSync(fileURLToPath(backup.manifestUri), "utf8"));
    writeFileSync(path, edit.dump ? edit.dump(dump) : dump);
    edit.manifest?.(manifest);
    writeFileSync(`${path}.manifest.json`, JSON.stringify(manifest));
    return `file://${path}`;
  }

  it("restores into a scratch database, matches the manifest, and drops the scratch database", async () => {
    const res = await runHooks("verify-restore", ["--uri", backup.uri], env);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.json.matches, true);
    assert.equal(res.json.sha256, backup.sha256);
    assert.match(res.json.scratchDatabase, /^vibes_verify_[0-9a-f]{12}$/);
    assert.deepEqual(res.json.tables.users, { rows: 25 });
    // At the backup's own revision every column of every row, ids included, is compared.
    assert.ok(res.json.checks.some((c: { name: string; ok: boolean; detail: string }) => c.name === "data.ids.journals" && c.ok && /its links and orphans too/.test(c.detail)));
    assert.ok(res.json.checks.some((c: { name: string; ok: boolean }) => c.name === "schema.journals" && c.ok));
    assert.deepEqual(await verifyDatabases(), []);
    assertSecretAbsent(res, pg.password);
  });

  it("a corrupted dump fails the checksum before any restore", async () => {
    const uri = copyBackup({ dump: (b) => { b[b.length >> 1] ^= 0xff; return b; } });
    const res = await runHooks("verify-restore", ["--uri", uri], env);
    assertFailed(res, "verify-restore", /checksum mismatch/);
    assert.doesNotMatch(res.stderr, /restoring into/, "checksum is checked first");
    assert.deepEqual(await verifyDatabases(), []);
  });

  it("a restore that differs from the manifest fails, names the checks, and still drops the scratch database", async () => {
    const uri = copyBackup({ manifest: (m) => { m.tables.users.rows = 26; m.tables.journals.contentFingerprint = "0".repeat(32); } });
    const res = await runHooks("verify-restore", ["--uri", uri], env);
    assertFailed(res, "verify-restore", /differs from its manifest: data\.rows\.users, data\.content\.journals$/);
    assert.equal(res.json.checks.filter((c: { ok: boolean }) => !c.ok).length, 2);
    assert.deepEqual(await verifyDatabases(), []);
  });

  it("uses a configured scratch database and refuses the target itself", async () => {
    const scratch = await pg.createDatabase(`scratch_${Date.now()}`);
    try {
      const res = await runHooks("verify-restore", ["--uri", backup.uri, "--scratch-database", scratch.name], env);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.json.scratchDatabase, scratch.name);
      assert.ok(await pg.databaseExists(scratch.name), "a configured scratch database is left in place");
      const again = await runHooks("verify-restore", ["--uri", backup.uri, "--scratch-database", scratch.name], env);
      assert.equal(again.code, 0, again.stderr);
    } finally {
      await pg.dropDatabase(scratch.name);
    }
    const self = await runHooks("verify-restore", ["--uri", backup.uri, "--scratch-database", db.name], env);
    assert.equal(self.code, 2);
    assert.match(self.json.error, /is the target database/);
  });

  it("still verifies and restores a backup of an earlier manifest format, without its fingerprints; validate refuses it", async () => {
    // As written by an earlier vibes-hooks: format 2, fingerprints of another algorithm, the
    // schema as the names of constraints and indexes.
    const legacy = (m: Parameters<NonNullable<Parameters<typeof copyBackup>[0]["manifest"]>>[0], rowsOff = 0) => {
      m.format = 2;
      m.tables = Object.fromEntries(Object.entries(m.tables).map(([t, s]) => [t, { rows: s.rows + (t === "journals" ? rowsOff : 0), contentFingerprint: "0".repeat(32) }]));
      m.schema = {
        constraints: [{ table: "journals", name: "journals_pkey" }, { table: "journals", name: "journals_user_id_fkey" }],
        indexes: [{ table: "journals", name: "ix_journals_user_id" }],
      };
    };
    const uri = copyBackup({ manifest: (m) => legacy(m) });
    const verify = await runHooks("verify-restore", ["--uri", uri], env);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.json.fingerprintsCompared, false);
    assert.match(verify.stderr, /manifest is format 2: row counts, constraint and index names and the revision are compared, its fingerprints and schema \(format 6 here\) are not/);
    const names = verify.json.checks.map((c: { name: string }) => c.name);
    assert.ok(names.includes("data.rows.journals") && names.includes("revision") && names.includes("schema.object.ix_journals_user_id"));
    assert.ok(!names.some((n: string) => n.startsWith("data.content.")), names.join());

    const empty = await pg.createDatabase();
    try {
      const restored = await runHooks("restore", ["--uri", uri], empty.env);
      assert.equal(restored.code, 0, restored.stderr);
      assert.equal(restored.json.fingerprintsCompared, false);
      const [count] = await pg.query(empty.name, "SELECT count(*)::int AS n FROM journals");
      assert.equal(count.n, 50);
      const lostRow = copyBackup({ manifest: (m) => legacy(m, 1) });
      const mismatch = await runHooks("verify-restore", ["--uri", lostRow], env);
      assertFailed(mismatch, "verify-restore", /differs from its manifest: data\.rows\.journals/);
    } finally {
      await pg.dropDatabase(empty.name);
    }

    const validate = await runHooks("validate", ["data", "--manifest", `${uri}.manifest.json`, "--id-type", "integer"], db.env);
    assertFailed(validate, "validate", /is a format 2 manifest; this vibes-hooks computes format 6 fingerprints/);
  });

  it("verifies a backup of format 5 (its schema snapshot before comments, replica identity and the rest) by counts and names", async () => {
    const format5 = (m: Parameters<NonNullable<Parameters<typeof copyBackup>[0]["manifest"]>>[0], broken: boolean) => {
      m.format = 5;
      if (!broken) return;
      m.tables.journals.rows += 1;
      (m.schema as { tables: Record<string, { indexes: Record<string, unknown> }> }).tables.journals.indexes.ix_gone = { definition: "CREATE INDEX ON public.journals USING btree (title)" };
    };
    const verify = await runHooks("verify-restore", ["--uri", copyBackup({ manifest: (m) => format5(m, false) })], env);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.json.fingerprintsCompared, false);
    assert.match(verify.stderr, /manifest is format 5: row counts, constraint and index names and the revision are compared/);
    const names = verify.json.checks.map((c: { name: string }) => c.name);
    assert.ok(["data.rows.journals", "schema.object.journals_user_id_fkey", "schema.object.users_pkey", "schema.object.ix_journals_user_id"].every((n) => names.includes(n)), names.join());
    const broken = await runHooks("verify-restore", ["--uri", copyBackup({ manifest: (m) => format5(m, true) })], env);
    assertFailed(broken, "verify-restore", /differs from its manifest: data\.rows\.journals, schema\.object\.ix_gone$/);
  });

  describe("restore", () => {
    it("refuses a non-empty database without --force; with --force brings back the pre-migration state", async () => {
      const target = await pg.createVibesDatabase({ users: 25, journalsPerUser: 2 });
      try {
        const targetEnv = { ...target.env, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: dir };
        await pg.runApp(target.env, ["-m", "alembic", "upgrade", "001_uuid_schema_migration"], "migrate");
        await pg.query(target.name, "DELETE FROM journals WHERE title IN (SELECT title FROM journals LIMIT 3)");

        const refused = await runHooks("restore", ["--uri", backup.uri], targetEnv);
        assertFailed(refused, "restore", /is not empty: it has public\.alembic_version, public\.journal_tags, public\.journals, public\.tags, public\.users/);
        assert.match(refused.json.next, /--force/);
        const [still] = await pg.query(target.name, "SELECT data_type FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'id'");
        assert.equal(still.data_type, "uuid", "nothing touched");

        const res = await runHooks("restore", ["--uri", backup.uri, "--force"], targetEnv);
        assert.equal(res.code, 0, res.stderr);
        assert.equal(res.json.database, target.name);
        const [after] = await pg.query(target.name, `SELECT (SELECT version_num FROM alembic_version) AS rev,
          (SELECT data_type FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'id') AS id_type,
          (SELECT count(*)::int FROM journals) AS journals`);
        assert.deepEqual(after, { rev: "0000_initial", id_type: "integer", journals: 50 });
        assertSecretAbsent(res, pg.password);
      } finally {
        await pg.dropDatabase(target.name);
      }
    });

    it("counts anything in the database as not empty, not only the backup's tables", async () => {
      const other = await pg.createDatabase();
      try {
        await pg.query(other.name, "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int)");
        const refused = await runHooks("restore", ["--uri", backup.uri], other.env);
        assertFailed(refused, "restore", /is not empty: it has billing\.invoices/);
        assert.deepEqual(await pg.query(other.name, "SELECT to_regclass('public.users') AS t"), [{ t: null }], "nothing restored");
      } finally {
        await pg.dropDatabase(other.name);
      }
      // An extension's own objects (pg_stat_statements' views) are not content.
      const withExtension = await pg.createDatabase();
      try {
        await pg.query(withExtension.name, "CREATE EXTENSION pg_stat_statements");
        const res = await runHooks("restore", ["--uri", backup.uri], withExtension.env);
        assert.equal(res.code, 0, res.stderr);
      } finally {
        await pg.dropDatabase(withExtension.name);
      }
    });

    it("waits for the migration lock, so it never runs during a migrate; names the holder when it cannot get it", async () => {
      const empty = await pg.createDatabase();
      const holder = await pg.adminClient(empty.name);
      try {
        await holder.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATE_LOCK_KEY.toString()]);
        const res = await runHooks("restore", ["--uri", backup.uri, "--lock-wait-seconds", "1"], empty.env);
        assertFailed(res, "restore", /the migration lock is held by backend pid \d+/);
        assert.deepEqual(await pg.query(empty.name, "SELECT to_regclass('public.users') AS t"), [{ t: null }], "nothing restored");
        await holder.query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATE_LOCK_KEY.toString()]);
        const after = await runHooks("restore", ["--uri", backup.uri], empty.env);
        assert.equal(after.code, 0, after.stderr);
      } finally {
        await holder.end();
        await pg.dropDatabase(empty.name);
      }
    });

    it("restores into an empty database and refuses a corrupted dump", async () => {
      const empty = await pg.createDatabase();
      try {
        const emptyEnv = { ...empty.env };
        // A restore that runs past VIBES_RESTORE_TIMEOUT is stopped, not waited for.
        const slow = await runHooks("restore", ["--uri", backup.uri], { ...emptyEnv, VIBES_RESTORE_TIMEOUT: "1ms" });
        assertFailed(slow, "restore", /pg_restore into .* timed out after 1ms \(VIBES_RESTORE_TIMEOUT\) and was stopped/);
        assert.match(slow.json.next, /raise VIBES_RESTORE_TIMEOUT/);
        const lockOff = await runHooks("restore", ["--uri", backup.uri], { ...emptyEnv, VIBES_LOCK_TIMEOUT: "0" });
        assertFailed(lockOff, "restore", /VIBES_LOCK_TIMEOUT "0" is not a positive PostgreSQL duration/);
        const badLimit = await runHooks("restore", ["--uri", backup.uri], { ...emptyEnv, VIBES_RESTORE_TIMEOUT: "soon" });
        assertFailed(badLimit, "restore", /VIBES_RESTORE_TIMEOUT "soon" is not a positive PostgreSQL duration/);
        await pg.dropDatabase(empty.name);
        Object.assign(empty, await pg.createDatabase(empty.name));
        const bad = await runHooks("restore", ["--uri", copyBackup({ dump: (b) => b.subarray(0, b.length - 100) })], emptyEnv);
        assertFailed(bad, "restore", /checksum mismatch/);
        const res = await runHooks("restore", ["--uri", backup.uri], emptyEnv);
        assert.equal(res.code, 0, res.stderr);
        assert.ok(res.json.checks.every((c: { ok: boolean }) => c.ok));
      } finally {
        await pg.dropDatabase(empty.name);
      }
    });
  });
});
