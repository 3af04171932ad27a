import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrationFilesSha256, plannedMigrationFilesSha256 } from "../../common/migrationFiles";
import { MIGRATE_LOCK_KEY } from "../../hooks/lib/database/migrationLock";
import { APP_DIR, APP_PYTHON, getCluster, PG_BIN, type PgCluster } from "../support/pgCluster";
import { assertFailed, assertSecretAbsent, runHooks } from "../support/hooks";
import { appWithFault, type Fault } from "../support/faults";
import * as helpers from "./migrateHelpers";
import { BEFORE, resultOf as result, TARGET } from "./migrateHelpers";

describe("migrate", function () {
  this.timeout(300_000);
  let pg: PgCluster;
  const scratch = helpers.scratchDirs();
  const tempDir = scratch.make;

  before(async () => {
    pg = await getCluster();
  });
  after(scratch.remove);

  /** A copy of the app, to change its revisions without touching app/. */
  function appCopy(): string {
    const dir = tempDir("vibes-app-");
    cpSync(APP_DIR, dir, { recursive: true, filter: (src) => !src.includes("__pycache__") && !src.endsWith(".run") });
    return dir;
  }

  /** A copy of the app whose 001 revision is app/testing/faulty_revisions/<fault>.py. */
  const faultyApp = (fault: Fault) => appWithFault(join(tempDir("vibes-app-"), "app"), fault);

  /** A fresh Vibes database at 0000_initial with a verified backup; env set up for migrate. */
  const prepared = (appDir = APP_DIR, setupSql = "") => helpers.prepareDatabase(pg, tempDir("vibes-backups-"), { mode: "alembic", appDir }, setupSql);

  const migrateLockHeld = async (db: string) =>
    (await pg.query(db, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = $1::bigint::oid",
      [(MIGRATE_LOCK_KEY & 0xffffffffn).toString()])).length > 0;
  const revisionOf = (db: string) => helpers.revisionOf(pg, db);
  const idType = (db: string) => helpers.idType(pg, db);
  const dataDifferences = (db: string, manifestUri: string, env: NodeJS.ProcessEnv) => helpers.dataDifferences(pg, db, manifestUri, env);

  it("migrates up with validation, does nothing the second time, and migrates back down", async () => {
    const { db, env, manifestUri, migrate, backupNow } = await prepared();
    const up = await migrate(TARGET);
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(result(up), { revisionBefore: BEFORE, revisionAfter: TARGET, changed: true, rolledBack: false, restoredFromBackup: false });
    assert.equal(await revisionOf(db.name), TARGET);
    assert.equal(await idType(db.name), "uuid");

    const again = await migrate(TARGET);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(result(again), { revisionBefore: TARGET, revisionAfter: TARGET, changed: false, rolledBack: false, restoredFromBackup: false });
    assert.match(again.stderr, /nothing to do/);

    await backupNow(`for-${BEFORE}`);
    const down = await migrate(BEFORE);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(result(down), { revisionBefore: TARGET, revisionAfter: BEFORE, changed: true, rolledBack: false, restoredFromBackup: false });
    assert.equal(await idType(db.name), "integer");
    assert.deepEqual(await dataDifferences(db.name, manifestUri, env), []);
    for (const r of [up, again, down]) assertSecretAbsent(r, pg.password);
    await pg.dropDatabase(db.name);
  });

  it("records the files that migrated the database; a later run with edited files still reports those", async () => {
    const { db, env, manifestUri, migrate } = await prepared();
    const planned = migrationFilesSha256(join(APP_DIR, "migrations", "versions"));
    const up = await migrate(TARGET);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(up.json.filesSha256, planned);
    const comment = await pg.query(db.name, "SELECT obj_description('alembic_version'::regclass, 'pg_class') AS c");
    // The record: the files, the schema of each revision proven (for an exact rollback check) and
    // the checks against this backup (for the validation stage).
    assert.match(comment[0].c, /^vibes-hooks record \{/);
    const record = JSON.parse(comment[0].c.slice("vibes-hooks record ".length));
    assert.equal(record.revision, TARGET);
    assert.equal(record.filesSha256, planned);
    assert.deepEqual(Object.keys(record.schemas).sort(), [BEFORE, TARGET]);
    assert.equal(record.schemas[BEFORE].tables.users.columns.id.default, "nextval(<sequence>)");
    assert.equal(record.schemas[TARGET].tables.users.columns.id.type, "uuid");
    assert.equal(record.validation.backupSha256, up.json.backup.sha256);
    assert.ok(record.validation.checks.length > 10 && record.validation.checks.every((c: { ok: boolean }) => c.ok));

    // An applied revision edited afterwards: nothing runs, and the result names the files that ran,
    // so prod's promotion gate cannot take the edit for something test validated.
    const edited = appCopy();
    const file = join(edited, "migrations", "versions", `${TARGET}.py`);
    writeFileSync(file, `${readFileSync(file, "utf8")}\n# edited after it was applied\n`);
    const editedSha = migrationFilesSha256(join(edited, "migrations", "versions"));
    const again = await runHooks("migrate", ["--to", TARGET, "--manifest", manifestUri, "--files-sha256", editedSha],
      { ...env, VIBES_APP_DIR: edited });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.json.changed, false);
    assert.equal(again.json.filesSha256, planned);
    assert.match(again.stderr, /reached 001_uuid_schema_migration with migration files [0-9a-f]{64}, not these/);
    await pg.dropDatabase(db.name);
  });

  it("reports no files checksum when it cannot be recorded, so the promotion gate never trusts an unrecorded one", async () => {
    const { db, migrate } = await prepared();
    // Another role owns alembic_version: alembic may update it, only its owner may comment on it.
    await pg.query(db.name, "ALTER TABLE alembic_version OWNER TO postgres; GRANT ALL ON alembic_version TO vibes");
    const up = await migrate(TARGET);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(up.json.changed, true);
    assert.equal(up.json.filesSha256, null);
    assert.match(up.stderr, /warning: cannot record the migration files' checksum and schema on alembic_version/);
    // The app writes; a re-run with the same backup must not take the unrecorded change for an
    // interrupted one and roll it back (that would lose the write).
    await pg.query(db.name, "INSERT INTO tags (id, name) VALUES (gen_random_uuid(), 'written after the deployment')");
    const again = await migrate(TARGET);
    assertFailed(again, "migrate", /without a record of a proven change, and this role cannot write that record/);
    assert.match(again.json.next, /ALTER TABLE alembic_version OWNER TO vibes/);
    assert.equal(await revisionOf(db.name), TARGET);
    assert.equal((await pg.query(db.name, "SELECT count(*)::int AS n FROM tags WHERE name = 'written after the deployment'"))[0].n, 1);
    await pg.dropDatabase(db.name);
  });

  it("validates a migration an interrupted run left unvalidated, and rolls it back when data was lost", async () => {
    // Good: the change committed, then the deployer died before validating.
    const good = await prepared();
    await pg.runApp(good.env, ["-m", "alembic", "upgrade", TARGET], "alembic upgrade");
    const resumed = await good.migrate(TARGET);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(resumed.json.resumedAfterInterruption, true);
    assert.match(resumed.stderr, /an interrupted run migrated it; proving it now/);
    await pg.dropDatabase(good.db.name);

    // Bad: the interrupted run's revision lost rows; the next run must not call it a success.
    const appDir = faultyApp("drop_rows");
    const bad = await prepared(appDir);
    await pg.runApp(bad.env, ["-m", "alembic", "upgrade", TARGET], "alembic upgrade", appDir);
    const res = await bad.migrate(TARGET);
    assertFailed(res, "migrate", /validation failed after the interrupted migration: .*the database is back at 0000_initial/);
    assert.equal(await revisionOf(bad.db.name), BEFORE);
    assert.deepEqual(await dataDifferences(bad.db.name, bad.manifestUri, bad.env), []);
    await pg.dropDatabase(bad.db.name);
  });

  it("records a rollback an interrupted run left unrecorded, instead of undoing it", async () => {
    const { db, env, migrate } = await prepared();
    assert.equal((await migrate(TARGET)).code, 0);
    const atTarget = await runHooks("backup", ["--label", TARGET], env);
    assert.equal(atTarget.code, 0, atTarget.stderr);
    // The rollback deployment's down command committed; its deployer died before recording it.
    await pg.runApp(env, ["-m", "alembic", "downgrade", BEFORE], "alembic downgrade");
    const res = await runHooks("migrate", ["--to", BEFORE, "--manifest", atTarget.json.manifestUri,
      "--files-sha256", plannedMigrationFilesSha256({ mode: "alembic", appDir: APP_DIR })], env);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.json.resumedAfterInterruption, true);
    assert.deepEqual(result(res), { revisionBefore: TARGET, revisionAfter: BEFORE, changed: false, rolledBack: false, restoredFromBackup: false });
    assert.match(res.stderr, /an interrupted run went down; proving it now/);
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.equal(await idType(db.name), "integer");
    const again = await runHooks("migrate", ["--to", BEFORE, "--manifest", atTarget.json.manifestUri,
      "--files-sha256", plannedMigrationFilesSha256({ mode: "alembic", appDir: APP_DIR })], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /nothing to do/);
    await pg.dropDatabase(db.name);
  });

  it("validates the id type it is told the target has: uuid ids where integer ones are expected fail and roll back", async () => {
    const { db, env, manifestUri, migrate } = await prepared();
    const res = await migrate(TARGET, ["--id-type", "integer"]);
    assertFailed(res, "migrate", /validation failed after the migration: .*schema\.column\.users\.id: users: column id: type uuid, expected integer.*back at 0000_initial, its schema, data and ids proven equal.*restored from the backup/);
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.deepEqual(await dataDifferences(db.name, manifestUri, env), []);
    await pg.dropDatabase(db.name);
  });

  it("refuses changed migration files before touching anything", async () => {
    const { db, env, manifestUri } = await prepared();
    const res = await runHooks("migrate", ["--to", TARGET, "--manifest", manifestUri, "--files-sha256", "0".repeat(64)], env);
    assertFailed(res, "migrate", /migration files .* have SHA-256 [0-9a-f]{64}, not the planned 0{64}/);
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.equal(await idType(db.name), "integer");
    await pg.dropDatabase(db.name);
  });

  it("refuses when alembic reports more than one head", async () => {
    const appDir = appCopy();
    writeFileSync(join(appDir, "migrations", "versions", "002_branch.py"), [
      'revision = "002_branch"', 'down_revision = "0000_initial"', "branch_labels = None", "depends_on = None", "",
      "def upgrade():\n    pass", "", "def downgrade():\n    pass", "",
    ].join("\n"));
    const { db, migrate } = await prepared(appDir);
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /alembic reports 2 heads \((001_uuid_schema_migration, 002_branch|002_branch, 001_uuid_schema_migration)\)/);
    assert.equal(await revisionOf(db.name), BEFORE);
    await pg.dropDatabase(db.name);
  });

  it("leaves the database unchanged when the migration fails half way", async () => {
    const { db, env, manifestUri, migrate } = await prepared(faultyApp("fail_halfway"));
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /the up command failed \(exit \d+\).*back at 0000_initial, its schema, data and ids proven equal to the backup.s/);
    assert.deepEqual(result(res), { revisionBefore: BEFORE, revisionAfter: BEFORE, changed: false, rolledBack: false, restoredFromBackup: false });
    assert.equal(await migrateLockHeld(db.name), false, "the lock is released after a failure");
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.equal(await idType(db.name), "integer");
    assert.deepEqual(await dataDifferences(db.name, manifestUri, env), []);
    assertSecretAbsent(res, pg.password);
    await pg.dropDatabase(db.name);
  });

  it("ends the database session a failed up command left running, then finds the database as it was", async () => {
    const { db, env, manifestUri, migrate } = await prepared();
    // The command exits, but its psql lives on: its session, holding a lock on journals, would
    // stall every check after it and outlive the migration lock.
    const orphan = `${PG_BIN}/psql -X -q -d "$DATABASE_URL" -c "BEGIN; LOCK TABLE journals IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600)" ` +
      ">/dev/null 2>&1 & sleep 1; exit 3 # {rev}";
    const res = await migrate(TARGET, ["--up", orphan]);
    assertFailed(res, "migrate", /the up command failed \(exit 3\).*back at 0000_initial, its schema, data and ids proven equal to the backup.s/);
    assert.match(res.stderr, /ending 1 database session\(s\) the command left running/);
    assert.deepEqual(await pg.query(db.name, "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'vibes-hooks migrate command%'"), []);
    assert.equal(await migrateLockHeld(db.name), false);
    assert.deepEqual(await dataDifferences(db.name, manifestUri, env), []);
    await pg.dropDatabase(db.name);
  });

  for (const [fault, caught] of [["drop_rows", /data\.rows\.journals/], ["reparent", /data\.relationships\.journals/]] as const) {
    it(`catches the ${fault} revision, rolls back and restores the backup so all data is there`, async () => {
      const { db, env, manifestUri, migrate } = await prepared(faultyApp(fault));
      const res = await migrate(TARGET);
      assertFailed(res, "migrate", /validation failed after the migration/);
      assert.match(res.json.error, caught);
      assert.match(res.json.error, /back at 0000_initial, its schema, data and ids proven equal to the backup.s .*restored from the backup/);
      assert.deepEqual(result(res), { revisionBefore: BEFORE, revisionAfter: BEFORE, changed: false, rolledBack: true, restoredFromBackup: true });
      assert.equal(await migrateLockHeld(db.name), false, "the lock is released after a rollback");
      assert.equal(await revisionOf(db.name), BEFORE);
      assert.deepEqual(await helpers.dataDifferences(pg, db.name, manifestUri, env, { ids: true }), []);
      located(res, fault === "drop_rows" ? { table: "journals", by: "content", onlyInBackup: true, onlyNow: false }
        : { table: "journals", by: "relationships", onlyInBackup: true, onlyNow: true });
      assertSecretAbsent(res, pg.password);
      await pg.dropDatabase(db.name);
    });
  }


  /** The rows migrate named where the data differed. */
  function located(res: { json: { differingRows?: { table: string; by: string; onlyInBackup: string[]; onlyNow: string[] }[] } },
    expected: { table: string; by: string; onlyInBackup: boolean; onlyNow: boolean }): void {
    const d = res.json.differingRows?.find((x) => x.table === expected.table);
    assert.ok(d, `differing rows of ${expected.table}: ${JSON.stringify(res.json.differingRows)}`);
    assert.equal(d.by, expected.by);
    assert.equal(d.onlyInBackup.length > 0, expected.onlyInBackup, JSON.stringify(d));
    assert.equal(d.onlyNow.length > 0, expected.onlyNow, JSON.stringify(d));
    // Named by content and by the parent's natural key (users.email), never by an id.
    for (const label of [...d.onlyInBackup, ...d.onlyNow]) {
      const row = JSON.parse(label);
      assert.ok("title" in row && !("id" in row) && /@/.test(row.users.email), label);
      assert.ok(!("password_hash" in row.users), "a unique key names the user");
    }
  }

  /** The database proven as the backup left it: validate, exactly (schema, data, ids). */
  async function assertAsBackedUp(env: NodeJS.ProcessEnv, manifestUri: string): Promise<void> {
    const res = await runHooks("validate", ["schema", "data", "--manifest", manifestUri], env);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.json.checks.find((c: { name: string }) => c.name === "schema.basis").detail, /at its revision/);
  }

  // An upgrade's schema mistake that keeps every row: caught by name, rolled back; the sample's
  // down command renumbers the integer ids, so the backup is restored and proven.
  for (const [fault, caught] of [
    ["drop_not_null", /schema\.column\.journals\.user_id: journals: column user_id: NOT NULL was dropped/],
    ["drop_check", /schema\.constraint\.journals\.journals_title_not_blank: journals: constraint journals_title_not_blank is missing \(was CHECK/],
    ["on_delete_rule", /schema\.constraint\.journal_tags\.journal_tags_tag_id_fkey: .*is now FOREIGN KEY \(tag_id\) REFERENCES tags\(id\); was .*ON DELETE CASCADE/],
    ["drop_view", /schema\.view\.journal_titles: view journal_titles is missing/],
    ["drop_trigger", /schema\.trigger\.journals\.journals_keep_created_at: journals: trigger journals_keep_created_at is missing/],
  ] as const) {
    it(`catches the ${fault} revision by name and ends proven as the backup`, async () => {
      const { db, env, manifestUri, migrate } = await prepared(faultyApp(fault), helpers.SCHEMA_EXTRAS);
      const res = await migrate(TARGET);
      assertFailed(res, "migrate", /validation failed after the migration: /);
      assert.match(res.json.error, caught);
      assert.match(res.json.error, /back at 0000_initial, its schema, data and ids proven equal to the backup.s \(restored from the backup/);
      assert.match(res.stderr, /after the down command: revision 0000_initial; .*data\.ids\.users: id fingerprint differs/);
      assert.deepEqual(result(res), { revisionBefore: BEFORE, revisionAfter: BEFORE, changed: false, rolledBack: true, restoredFromBackup: true });
      assert.equal(res.json.differingRows, undefined, "no data differed: nothing to locate");
      await assertAsBackedUp(env, manifestUri);
      await pg.dropDatabase(db.name);
    });
  }

  it("with --accept-renumbered-ids keeps the down command's result and says the ids were renumbered", async () => {
    const { db, env, manifestUri, migrate } = await prepared(faultyApp("drop_not_null"));
    const res = await migrate(TARGET, ["--accept-renumbered-ids"]);
    assertFailed(res, "migrate", /back at 0000_initial with its schema and data proven equal to the backup.s \(rolled back by the down command\), but its ids were RENUMBERED \(data\.ids\.users/);
    assert.deepEqual(result(res), { revisionBefore: BEFORE, revisionAfter: BEFORE, changed: false, rolledBack: true, restoredFromBackup: false });
    assert.equal(res.json.idsRenumbered, true);
    assert.deepEqual(await dataDifferences(db.name, manifestUri, env), [], "every row and link, under new ids");
    assert.ok((await helpers.dataDifferences(pg, db.name, manifestUri, env, { ids: true })).some((d) => d.startsWith("data.ids.users")));
    await pg.dropDatabase(db.name);
  });

  it("with --accept-renumbered-ids still restores the backup when the new ids broke links (every row there, owners swapped)", async () => {
    const { db, env, manifestUri, migrate } = await prepared(faultyApp("drop_not_null"));
    // A down command that numbers the users afresh in another order than the journals' lookup.
    const down = `${APP_PYTHON} -m alembic downgrade {rev} && psql -X -q -v ON_ERROR_STOP=1 -c "ALTER TABLE journals DROP CONSTRAINT journals_user_id_fkey; ` +
      "UPDATE journals SET user_id = (SELECT max(id) + min(id) FROM users) - user_id; " +
      'ALTER TABLE journals ADD CONSTRAINT journals_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE"';
    const res = await migrate(TARGET, ["--accept-renumbered-ids", "--down", down]);
    assertFailed(res, "migrate", /back at 0000_initial, its schema, data and ids proven equal to the backup.s \(restored from the backup/);
    assert.match(res.stderr, /after the down command: revision 0000_initial; .*data\.relationships\.journals: relationship fingerprint differs/);
    assert.deepEqual(await helpers.dataDifferences(pg, db.name, manifestUri, env, { ids: true }), []);
    await pg.dropDatabase(db.name);
  });

  it("a real-world pair (nullable FK up; down without nextval defaults) is caught both ways and the backup restored: the app can insert again", async () => {
    const { db, env, manifestUri, migrate } = await prepared(faultyApp("real_world"));
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /validation failed after the migration: schema\.column\.journals\.user_id: journals: column user_id: NOT NULL was dropped/);
    // The down command's own mistakes are seen before anything is called "back".
    assert.match(res.stderr, /after the down command: revision 0000_initial; .*schema\.column\.users\.id: users: column id: default none, was nextval\(<sequence>\); no longer draws from its sequence/);
    assert.match(res.stderr, /schema\.column\.journals\.user_id: journals: column user_id: NOT NULL was dropped; .*restoring the backup/);
    assert.match(res.json.error, /back at 0000_initial, its schema, data and ids proven equal to the backup.s \(restored from the backup/);
    await assertAsBackedUp(env, manifestUri);
    const [row] = await pg.query(db.name, "INSERT INTO users (email, password_hash) VALUES ('new@example.com', 'x') RETURNING id");
    assert.equal(typeof row.id, "number", "the id default is back");
    await pg.dropDatabase(db.name);
  });

  for (const [fault, caught] of [
    ["downgrade_no_default", /schema\.column\.users\.id: users: column id: default none, was nextval\(<sequence>\)/],
    ["downgrade_nullable", /schema\.column\.journals\.user_id: journals: column user_id: NOT NULL was dropped/],
  ] as const) {
    it(`a reviewed rollback through the ${fault} down command fails against 0000_initial's recorded schema and restores the backup taken for it`, async () => {
      const { db, env, migrate, backupNow } = await prepared(faultyApp(fault));
      assert.equal((await migrate(TARGET)).code, 0);
      const atTarget = await backupNow(`for-${BEFORE}`);
      const res = await migrate(BEFORE, ["--id-type", "integer"]);
      assertFailed(res, "migrate", /validation failed after the rollback: /);
      assert.match(res.json.error, caught);
      assert.match(res.stderr, /compared with the schema recorded when 0000_initial was last proven|FAILED: validation failed after the rollback/);
      assert.match(res.json.error, /back at 001_uuid_schema_migration, its schema, data and ids proven equal to the backup.s \(restored from the backup/);
      assert.equal(await revisionOf(db.name), TARGET);
      await assertAsBackedUp(env, atTarget);
      await pg.dropDatabase(db.name);
    });
  }

  it("takes the backup again inside the window when the data changed since it, says so, and validation reports that proof once", async () => {
    const { db, env, manifestUri, migrate } = await prepared();
    // A write between the backup (taken while the app served) and maintenance mode.
    await pg.query(db.name, "INSERT INTO tags (name) VALUES ('written late')");
    const res = await migrate(TARGET);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /the database changed since the backup \(data\.rows\.tags: expected 4 rows, found 5.*\); taking the backup again inside the maintenance window/);
    assert.equal(res.json.backup.retaken, true);
    assert.match(res.json.backup.uri, /_at-0000_initial_for-001_uuid_schema_migration-retaken\.dump$/);
    assert.notEqual(res.json.backup.manifestUri, manifestUri);
    assert.deepEqual(await dataDifferences(db.name, res.json.backup.manifestUri, env), [], "the row written late is in the new backup and in the database");

    // The validation stage: migrate's proof for this backup, not the checks again.
    const recorded = await runHooks("validate", ["schema", "data", "--use-recorded", "--manifest", res.json.backup.manifestUri, "--revision", TARGET], env);
    assert.equal(recorded.code, 0, recorded.stderr);
    assert.match(recorded.json.summary, /^schema\+data: (\d+)\/\1 checks passed \(by migrate at .*\)$/);
    assert.ok(recorded.json.checks.some((c: { name: string }) => c.name === "data.relationships.journal_tags"));
    // Against another backup there is no recorded proof: the checks run, and see the row written late.
    const other = await runHooks("validate", ["schema", "data", "--use-recorded", "--manifest", manifestUri], env);
    assertFailed(other, "validate", /validation failed: .*data\.rows\.tags/);
    assert.equal(other.json.recordedAt, undefined);
    await pg.dropDatabase(db.name);
  });

  it("migrates nothing when the backup cannot be taken again (alembic, started beside the check, ends unrun)", async () => {
    const { db, env, manifestUri } = await prepared();
    await pg.query(db.name, "INSERT INTO tags (name) VALUES ('written late')");
    const res = await runHooks("migrate", ["--to", TARGET, "--manifest", manifestUri], { ...env, VIBES_BACKUP_DIR: "/dev/null/backups" });
    assertFailed(res, "migrate", /\/dev\/null\/backups/);
    assert.match(res.stderr, /taking the backup again inside the maintenance window/);
    assert.doesNotMatch(res.stderr, / up: /, "the up command never ran");
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.equal(await idType(db.name), "integer");
    await pg.dropDatabase(db.name);
  });

  it("a database migrated by other means has no recorded proof: validate --use-recorded runs the checks", async () => {
    const { db, env, manifestUri } = await prepared();
    await pg.runApp(env, ["-m", "alembic", "upgrade", TARGET], "alembic upgrade");
    const res = await runHooks("validate", ["schema", "data", "--use-recorded", "--manifest", manifestUri, "--revision", TARGET], env);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.json.recordedAt, undefined);
    assert.match(res.json.summary, /^schema\+data: (\d+)\/\1 checks passed$/);
    assert.match(res.stderr, /schema and data \(one snapshot\)/);
    await pg.dropDatabase(db.name);
  });

  it("refuses to migrate while a table outside the covered set references a covered one, before anything changes", async () => {
    const { db, migrate } = await prepared(APP_DIR, `SET ROLE vibes;
      CREATE TABLE comments (id serial PRIMARY KEY, journal_id int NOT NULL REFERENCES journals (id), body text NOT NULL);
      INSERT INTO comments (journal_id, body) SELECT id, 'first' FROM journals`);
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /^a table outside the covered set references it through foreign keys, unprotected by any check: comments \(comments_journal_id_fkey -> journals\)/);
    assert.match(res.json.next, /add comments to the tables setting/);
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.equal(await idType(db.name), "integer");
    await pg.dropDatabase(db.name);
  });

  it("restores the backup when the migration dropped a covered table and its down command fails too", async () => {
    const { db, env, manifestUri, migrate } = await prepared(faultyApp("drop_table"));
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /the up step failed: table not found: journal_tags/);
    assert.match(res.json.error, /back at 0000_initial, its schema, data and ids proven equal to the backup.s .*restored from the backup/);
    assert.deepEqual(result(res), { revisionBefore: BEFORE, revisionAfter: BEFORE, changed: false, rolledBack: false, restoredFromBackup: true });
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.deepEqual(await dataDifferences(db.name, manifestUri, env), []);
    await pg.dropDatabase(db.name);
  });

  it("lets only one of two concurrent migrates run; the other names the lock holder", async () => {
    const { db, migrate } = await prepared();
    // The first migrate keeps the lock for a while: its up command sleeps before migrating.
    const slowUp = `sleep 3; ${APP_PYTHON} -m alembic upgrade {rev}`;
    const first = migrate(TARGET, ["--up", slowUp]);
    const lockHeld = () => migrateLockHeld(db.name);
    await until("the first migrate takes the lock", lockHeld);
    const second = await migrate(TARGET, ["--lock-wait-seconds", "1"]);
    assertFailed(second, "migrate", /migration lock is held by backend pid \d+ \(application "vibes-hooks migrate [^"]+", user vibes/);
    assert.match(second.json.next, /pg_terminate_backend\(\d+\)/);
    const done = await first;
    assert.equal(done.code, 0, done.stderr);
    assert.equal(done.json.changed, true);
    assert.equal(await revisionOf(db.name), TARGET);
    assert.equal(await lockHeld(), false, "the lock is released");
    await pg.dropDatabase(db.name);
  });

  /** How many processes run with exactly this command line (arguments NUL-terminated, as in /proc), or one it accepts. */
  function processesRunning(cmdline: string | ((actual: string) => boolean)): number {
    return readdirSync("/proc").filter((p) => {
      try {
        if (!/^\d+$/.test(p)) return false;
        const actual = readFileSync(`/proc/${p}/cmdline`, "utf8");
        return typeof cmdline === "string" ? actual === cmdline : cmdline(actual);
      } catch {
        return false; // exited meanwhile
      }
    }).length;
  }

  /** Polls `check` every 100 ms until it holds (at most 60 s). */
  async function until(what: string, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (!(await check())) {
      assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it("on SIGTERM stops the running command (it runs out of the signal's reach), fails the usual way and leaves nothing behind", async () => {
    const { db, env, manifestUri, migrate } = await prepared();
    env.TMPDIR = tempDir("vibes-tmp-");
    let hook = 0;
    const running = migrate(TARGET, ["--up", `sleep 31.5; ${APP_PYTHON} -m alembic upgrade {rev}`], { onSpawn: (pid) => (hook = pid) });
    const sleeping = async () => processesRunning("sleep\x0031.5\x00") > 0;
    await until("the up command runs", sleeping);
    process.kill(hook, "SIGTERM");
    const res = await running;
    assertFailed(res, "migrate", /the up command failed \(exit 143\).*back at 0000_initial, its schema, data and ids proven equal to the backup.s/);
    assert.match(res.stderr, /SIGTERM: stopping 1 child process\(es\)/);
    assert.equal(await sleeping(), false, "the command was stopped");
    assert.deepEqual(readdirSync(env.TMPDIR), [], "the passfile is removed");
    assert.equal(await migrateLockHeld(db.name), false);
    assert.deepEqual(await dataDifferences(db.name, manifestUri, env), []);
    await pg.dropDatabase(db.name);
  });

  it("stops a migration that runs longer than VIBES_MIGRATION_TIMEOUT, ends alembic's session, and rolls back", async () => {
    // The revision hangs inside its transaction, holding its locks, until the timeout stops alembic.
    const { db, env, manifestUri, migrate } = await prepared(faultyApp("hang"));
    env.VIBES_MIGRATION_TIMEOUT = "3s";
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /the up command failed \(timed out after 3s: VIBES_MIGRATION_TIMEOUT\).*back at 0000_initial, its schema, data and ids proven equal to the backup.s/);
    // alembic names its session after PGAPPNAME (app/migrations/env.py), so it is found and ended.
    assert.match(res.stderr, /ending 1 database session\(s\) the command left running/);
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.deepEqual(await dataDifferences(db.name, manifestUri, env), []);
    await pg.dropDatabase(db.name);
  });

  it("on a second signal kills the running command and exits at once, removing its passfile", async () => {
    const { db, env, migrate } = await prepared();
    env.TMPDIR = tempDir("vibes-tmp-");
    let hook = 0;
    // The command ignores SIGTERM: only the second signal's SIGKILL stops it.
    const running = migrate(TARGET, ["--up", `trap '' TERM; sleep 32.5; ${APP_PYTHON} -m alembic upgrade {rev}`], { onSpawn: (pid) => (hook = pid) });
    await until("the up command runs", async () => processesRunning("sleep\x0032.5\x00") > 0);
    process.kill(hook, "SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    process.kill(hook, "SIGTERM");
    const res = await running;
    assert.equal(res.code, 143, res.stderr);
    assert.match(res.stderr, /SIGTERM again: exiting now/);
    await until("the command is gone", async () => processesRunning("sleep\x0032.5\x00") === 0);
    assert.deepEqual(readdirSync(env.TMPDIR), [], "the passfile is removed");
    assert.equal(await revisionOf(db.name), BEFORE);
    await pg.dropDatabase(db.name);
  });

  it("on Ctrl-C with no command running (waiting for the lock) exits at once, removing its passfile", async () => {
    const { db, env, migrate } = await prepared();
    env.TMPDIR = tempDir("vibes-tmp-");
    const holder = await pg.adminClient(db.name);
    try {
      await holder.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATE_LOCK_KEY.toString()]);
      let hook = 0;
      const running = migrate(TARGET, ["--lock-wait-seconds", "60"], { onSpawn: (pid) => (hook = pid) });
      await until("migrate waits for the lock", async () =>
        (await pg.query("postgres", "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'vibes-hooks migrate %' AND datname = $1", [db.name])).length > 0);
      process.kill(hook, "SIGINT");
      const res = await running;
      assert.equal(res.code, 130, res.stderr);
      assert.match(res.stderr, /SIGINT: exiting/);
      assert.deepEqual(readdirSync(env.TMPDIR), [], "the passfile is removed");
      assert.equal(await revisionOf(db.name), BEFORE);
    } finally {
      await holder.end();
    }
    await pg.dropDatabase(db.name);
  });

  it("on Ctrl-C during the unchanged check exits at once: alembic, loaded ahead and not yet told to go, ends with it unrun", async () => {
    const { db, env, migrate } = await prepared();
    env.TMPDIR = tempDir("vibes-tmp-");
    const aheadAlembic = (cmdline: string) => cmdline.includes("from alembic.config import main") && cmdline.endsWith("\x00upgrade\x00001_uuid_schema_migration\x00");
    const holder = await pg.adminClient(db.name);
    try {
      // The check's pass over journals waits for this lock.
      await holder.query("BEGIN; LOCK TABLE journals IN ACCESS EXCLUSIVE MODE");
      let hook = 0;
      const running = migrate(TARGET, [], { onSpawn: (pid) => (hook = pid) });
      await until("the unchanged check waits and alembic is loaded ahead", async () => processesRunning(aheadAlembic) > 0 &&
        (await pg.query("postgres", "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'vibes-hooks migrate %' AND wait_event_type = 'Lock' AND datname = $1", [db.name])).length > 0);
      process.kill(hook, "SIGINT");
      const res = await running;
      assert.equal(res.code, 130, res.stderr);
      assert.match(res.stderr, /SIGINT: exiting/);
      assert.doesNotMatch(res.stderr, /stopping \d+ child process/);
      await until("the alembic loaded ahead is gone", async () => processesRunning(aheadAlembic) === 0);
      assert.deepEqual(readdirSync(env.TMPDIR), [], "the passfile is removed");
    } finally {
      await holder.end();
    }
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.equal(await idType(db.name), "integer");
    await pg.dropDatabase(db.name);
  });

  it("gives the migration command the password only through a passfile, and the timeouts through PGOPTIONS", async () => {
    const { db, migrate } = await prepared();
    const out = tempDir("vibes-child-");
    // Records the command's environment and every process's arguments while it runs.
    const spy = `env > ${out}/env; for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done > ${out}/cmdlines 2>/dev/null; ` +
      `${APP_PYTHON} -m alembic upgrade {rev}`;
    const res = await migrate(TARGET, ["--up", spy]);
    assert.equal(res.code, 0, res.stderr);
    const childEnv = readFileSync(join(out, "env"), "utf8");
    const cmdlines = readFileSync(join(out, "cmdlines"), "utf8");
    assert.match(cmdlines, /alembic upgrade 001_uuid_schema_migration/, "the spy saw the processes");
    for (const text of [childEnv, cmdlines]) {
      assert.ok(!text.includes(pg.password) && !text.includes(encodeURIComponent(pg.password)), "password visible to the child");
    }
    assert.match(childEnv, /^PGPASSFILE=.+$/m);
    assert.doesNotMatch(childEnv, /^(PGPASSWORD|VIBES_DB_PASSWORD)=/m);
    assert.match(childEnv, /^PGOPTIONS=-c lock_timeout=5s -c statement_timeout=30min -c client_connection_check_interval=2s$/m);
    assert.match(childEnv, /^PGAPPNAME=vibes-hooks migrate command \d+$/m);
    assert.match(childEnv, new RegExp(`^DATABASE_URL=postgresql://vibes@127\\.0\\.0\\.1:${pg.port}/${db.name}$`, "m"));
    assertSecretAbsent(res, pg.password);
    await pg.dropDatabase(db.name);
  });

  it("rejects bad settings before connecting, naming the setting", async () => {
    const { db, env, manifestUri } = await prepared();
    const bad = await runHooks("migrate", ["--to", TARGET, "--manifest", manifestUri], { ...env, VIBES_LOCK_TIMEOUT: "five seconds" });
    assertFailed(bad, "migrate", /VIBES_LOCK_TIMEOUT "five seconds" is not a positive PostgreSQL duration/);
    // 0 would turn the lock timeout off: an ALTER waiting for its lock would block every reader.
    const off = await runHooks("migrate", ["--to", TARGET, "--manifest", manifestUri], { ...env, VIBES_LOCK_TIMEOUT: "0" });
    assertFailed(off, "migrate", /VIBES_LOCK_TIMEOUT "0" is not a positive PostgreSQL duration/);
    const injection = await runHooks("migrate", ["--to", "001; rm -rf /", "--manifest", manifestUri], env);
    assert.equal(injection.code, 2);
    assert.match(injection.json.error, /is not an alembic revision id/);
    const noTo = await runHooks("migrate", ["--manifest", manifestUri], env);
    assert.equal(noTo.code, 2);
    const idType = await runHooks("migrate", ["--to", TARGET, "--manifest", manifestUri, "--id-type", "uuidd"], env);
    assert.equal(idType.code, 2);
    assert.match(idType.json.error, /--id-type "uuidd" is not uuid or integer/);
    assert.equal(await revisionOf(db.name), BEFORE);
    await pg.dropDatabase(db.name);
  });
});

describe("migrationFilesSha256", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "vibes-versions-"));
    writeFileSync(join(dir, "a.py"), "revision = 'a'\n");
    writeFileSync(join(dir, "b.py"), "revision = 'b'\n");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("changes with any byte or name of a revision file, and only with those", () => {
    const base = migrationFilesSha256(dir);
    assert.match(base, /^[0-9a-f]{64}$/);
    writeFileSync(join(dir, "notes.txt"), "not a revision");
    mkdirSync(join(dir, "__pycache__"));
    writeFileSync(join(dir, "__pycache__", "a.cpython-310.pyc"), "bytecode");
    assert.equal(migrationFilesSha256(dir), base, "other files do not count");
    writeFileSync(join(dir, "b.py"), "revision = 'B'\n");
    const edited = migrationFilesSha256(dir);
    assert.notEqual(edited, base);
    renameSync(join(dir, "b.py"), join(dir, "c.py"));
    assert.notEqual(migrationFilesSha256(dir), edited, "a rename counts");
  });
});
