// migrate --mode sql: the app's SQL files (app/migrations/sql) on a real database, without alembic
// or the app's folder in the hook's environment.
import assert from "node:assert/strict";
import { appendFileSync, cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { migrationFilesSha256, plannedMigrationFilesSha256 } from "../../common/migrationFiles";
import { APP_DIR, getCluster, type PgCluster } from "../support/pgCluster";
import { assertFailed, assertSecretAbsent, runHooks } from "../support/hooks";
import * as helpers from "./migrateHelpers";
import { BEFORE, resultOf as result, TARGET } from "./migrateHelpers";

const SQL_DIR = join(APP_DIR, "migrations", "sql");

describe("migrate --mode sql", function () {
  this.timeout(300_000);
  let pg: PgCluster;
  const scratch = helpers.scratchDirs();

  before(async () => {
    pg = await getCluster();
  });
  after(scratch.remove);

  /** A copy of app/migrations/sql, to break without touching the app. */
  function sqlCopy(): string {
    const dir = scratch.make("vibes-sql-");
    cpSync(SQL_DIR, dir, { recursive: true });
    return dir;
  }

  const prepared = (sqlDir = SQL_DIR) => helpers.prepareDatabase(pg, scratch.make("vibes-backups-"), { mode: "sql", sqlDir });
  const revisionOf = (db: string) => helpers.revisionOf(pg, db);
  const idType = (db: string) => helpers.idType(pg, db);
  /** Columns, constraints and indexes of the public schema. */
  const schemaOf = async (db: string) => ({
    columns: await pg.query(db, `SELECT table_name, column_name, data_type, is_nullable, column_default
      FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2`),
    constraints: await pg.query(db, `SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def, convalidated
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2`),
    indexes: await pg.query(db, "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2"),
  });

  it("migrates up with validation, does nothing the second time, and migrates back down keeping every relationship", async () => {
    const { db, env, manifestUri, migrate, backupNow } = await prepared();
    const up = await migrate(TARGET);
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(result(up), { revisionBefore: BEFORE, revisionAfter: TARGET, changed: true, rolledBack: false, restoredFromBackup: false });
    assert.ok(up.json.checks > 0, "validation ran");
    assert.match(up.stderr, /up: \S*psql .*--single-transaction -f 001_uuid_schema_migration\.up\.sql/);
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
    assert.match(down.stderr, /-f 001_uuid_schema_migration\.down\.sql/);
    assert.equal(await idType(db.name), "integer");
    assert.deepEqual(await pg.query(db.name, "SELECT version_num FROM alembic_version"), [{ version_num: BEFORE }]);
    assert.deepEqual(await helpers.dataDifferences(pg, db.name, manifestUri, env), []);
    for (const r of [up, again, down]) assertSecretAbsent(r, pg.password);
    await pg.dropDatabase(db.name);
  });

  it("a failing SQL file leaves the database exactly as it was and exits non-zero", async () => {
    const sqlDir = sqlCopy();
    // Fails after every other statement of the file has run.
    appendFileSync(join(sqlDir, `${TARGET}.up.sql`), "\nSELECT 1 / 0;\n");
    const { db, env, manifestUri, migrate } = await prepared(sqlDir);
    const schemaBefore = await schemaOf(db.name);
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /the up command failed \(exit 3\): .*001_uuid_schema_migration\.up\.sql:\d+: ERROR: +division by zero.*back at 0000_initial, its schema, data and ids proven equal to the backup.s/);
    assert.deepEqual(result(res), { revisionBefore: BEFORE, revisionAfter: BEFORE, changed: false, rolledBack: false, restoredFromBackup: false });
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.deepEqual(await schemaOf(db.name), schemaBefore);
    assert.deepEqual(await helpers.dataDifferences(pg, db.name, manifestUri, env), []);
    assertSecretAbsent(res, pg.password);
    await pg.dropDatabase(db.name);
  });

  it("records the revision in the file's transaction: when it cannot be recorded, the file's changes are undone too", async () => {
    const sqlDir = sqlCopy();
    // The file itself succeeds, but its own constraint makes recording 001 fail at the very end.
    appendFileSync(join(sqlDir, `${TARGET}.up.sql`), `\nALTER TABLE alembic_version ADD CONSTRAINT stays CHECK (version_num = '${BEFORE}');\n`);
    const { db, migrate } = await prepared(sqlDir);
    const schemaBefore = await schemaOf(db.name);
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /the up command failed \(exit 3\): .*violates check constraint "stays"/);
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.deepEqual(await schemaOf(db.name), schemaBefore);
    await pg.dropDatabase(db.name);
  });

  it("catches a file that loses rows, rolls back through the down file and restores the backup", async () => {
    const sqlDir = sqlCopy();
    appendFileSync(join(sqlDir, `${TARGET}.up.sql`), "\nDELETE FROM journals WHERE title IN (SELECT title FROM journals ORDER BY title LIMIT 2);\n");
    const { db, env, manifestUri, migrate } = await prepared(sqlDir);
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /validation failed after the migration: .*data\.rows\.journals.*back at 0000_initial, its schema, data and ids proven equal to the backup.s .*restored from the backup/);
    assert.deepEqual(result(res), { revisionBefore: BEFORE, revisionAfter: BEFORE, changed: false, rolledBack: true, restoredFromBackup: true });
    assert.match(res.stderr, /roll back: \S*psql .* -f 001_uuid_schema_migration\.down\.sql/);
    assert.equal(await idType(db.name), "integer");
    assert.deepEqual(await helpers.dataDifferences(pg, db.name, manifestUri, env), []);
    await pg.dropDatabase(db.name);
  });

  it("refuses a SQL file changed since the deployment was planned, before touching anything", async () => {
    const sqlDir = sqlCopy();
    const { db, migrate } = await prepared(sqlDir);
    const file = join(sqlDir, `${TARGET}.up.sql`);
    writeFileSync(file, readFileSync(file, "utf8").replace("ALTER TABLE tags DROP COLUMN id;", "-- reviewed? no\nALTER TABLE tags DROP COLUMN id;"));
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", new RegExp(`the migration files in ${sqlDir} have SHA-256 [0-9a-f]{64}, not the planned [0-9a-f]{64}`));
    assert.equal(await revisionOf(db.name), BEFORE);
    assert.equal(await idType(db.name), "integer");
    await pg.dropDatabase(db.name);
  });

  it("runs the files under the configured statement timeout (PGOPTIONS reaches psql)", async () => {
    const sqlDir = sqlCopy();
    appendFileSync(join(sqlDir, `${TARGET}.up.sql`), "\nSELECT pg_sleep(5);\n");
    const { db, env, manifestUri } = await prepared(sqlDir);
    const res = await runHooks("migrate", ["--to", TARGET, "--manifest", manifestUri, "--mode", "sql", "--sql-dir", sqlDir],
      { ...env, VIBES_STATEMENT_TIMEOUT: "1s" });
    assertFailed(res, "migrate", /canceling statement due to statement timeout.*back at 0000_initial/);
    assert.equal(await idType(db.name), "integer");
    await pg.dropDatabase(db.name);
  });

  it("rejects a bad SQL folder or flags before connecting, naming the fix", async () => {
    const sqlDir = sqlCopy();
    writeFileSync(join(sqlDir, "002_more.sql"), "SELECT 1;\n");
    const { db, env, manifestUri } = await prepared(SQL_DIR);
    const run = (args: string[], to = TARGET) => runHooks("migrate", ["--to", to, "--manifest", manifestUri, ...args], env);

    const misnamed = await run(["--mode", "sql", "--sql-dir", sqlDir]);
    assertFailed(misnamed, "migrate", /002_more\.sql is not named <revision>\.up\.sql or <revision>\.down\.sql/);
    const orphan = sqlCopy();
    writeFileSync(join(orphan, "002_more.down.sql"), "SELECT 1;\n");
    assertFailed(await run(["--mode", "sql", "--sql-dir", orphan]), "migrate", /002_more\.down\.sql has no 002_more\.up\.sql/);
    assertFailed(await run(["--mode", "sql", "--sql-dir", join(sqlDir, "missing")]), "migrate", /cannot read the SQL migrations folder/);
    const committing = sqlCopy();
    appendFileSync(join(committing, `${TARGET}.up.sql`), "\nCOMMIT;\n");
    assertFailed(await run(["--mode", "sql", "--sql-dir", committing]), "migrate", /001_uuid_schema_migration\.up\.sql controls the transaction/);
    const unknown = await run(["--mode", "sql", "--sql-dir", SQL_DIR], "002_unknown");
    assertFailed(unknown, "migrate", /revision 002_unknown is not in .*migrations\/sql/);

    for (const [args, expected] of [
      [["--mode", "sql"], /--sql-dir is required/],
      [["--mode", "sql", "--sql-dir", SQL_DIR, "--up", "true {rev}"], /--up\/--down apply to --mode alembic only/],
      [["--sql-dir", SQL_DIR], /--sql-dir needs --mode sql/],
      [["--mode", "flyway"], /--mode "flyway" is not alembic or sql/],
    ] as const) {
      const res = await run([...args]);
      assert.equal(res.code, 2, res.stdout);
      assert.match(res.json.error, expected);
    }
    assert.equal(await revisionOf(db.name), BEFORE);
    await pg.dropDatabase(db.name);
  });
});

describe("plannedMigrationFilesSha256", () => {
  const scratch = helpers.scratchDirs();
  after(scratch.remove);

  it("covers the *.sql files in sql mode and keeps alembic mode's value", () => {
    const dir = scratch.make("vibes-sql-");
    cpSync(SQL_DIR, dir, { recursive: true });
    const base = plannedMigrationFilesSha256({ mode: "sql", sqlDir: dir });
    writeFileSync(join(dir, "generate.py"), "# not a migration\n");
    assert.equal(plannedMigrationFilesSha256({ mode: "sql", sqlDir: dir }), base, "only *.sql files count");
    appendFileSync(join(dir, `${BEFORE}.down.sql`), "\n");
    assert.notEqual(plannedMigrationFilesSha256({ mode: "sql", sqlDir: dir }), base, "a down file counts");
    assert.equal(plannedMigrationFilesSha256({ mode: "alembic", appDir: APP_DIR }), migrationFilesSha256(join(APP_DIR, "migrations", "versions")));
  });
});
