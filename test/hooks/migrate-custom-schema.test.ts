// migrate --mode sql on a schema of a user's own, not the sample app's: schema-qualified tables,
// a lookup key that is no id (char(2) country codes), a self-referencing key with ON DELETE SET
// NULL, a composite primary key, a table without keys into the others, and uuids made by the
// application (no server default: idDefault none).
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { plannedMigrationFilesSha256 } from "../../common/migrationFiles";
import { getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";
import { assertFailed, assertSecretAbsent, runHooks } from "../support/hooks";
import * as helpers from "./migrateHelpers";

const SCHEMA = `
  CREATE SCHEMA crm;
  CREATE TABLE crm.countries (code char(2) PRIMARY KEY, name text NOT NULL);
  CREATE TABLE crm.users (id serial PRIMARY KEY, email text NOT NULL UNIQUE, country_code char(2) NOT NULL REFERENCES crm.countries (code));
  CREATE TABLE crm.employees (
    id serial PRIMARY KEY,
    user_id int NOT NULL REFERENCES crm.users (id) ON DELETE CASCADE,
    manager_id int REFERENCES crm.employees (id) ON DELETE SET NULL,
    title text NOT NULL);
  CREATE TABLE crm.memberships (user_id int REFERENCES crm.users (id), team text, since date NOT NULL, PRIMARY KEY (user_id, team));
  CREATE TABLE crm.settings (key text PRIMARY KEY, value text);
  CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
  INSERT INTO alembic_version VALUES ('0000_crm');
  INSERT INTO crm.countries VALUES ('DE', 'Germany'), ('FR', 'France');
  INSERT INTO crm.users (email, country_code) SELECT 'u' || g || '@example.com', (ARRAY['DE', 'FR'])[1 + g % 2] FROM generate_series(1, 30) g;
  -- Every employee the same title: only the hierarchy tells them apart. In reverse order, so that
  -- an employee's id is not its user's.
  INSERT INTO crm.employees (user_id, title) SELECT id, 'engineer' FROM crm.users ORDER BY id DESC;
  UPDATE crm.employees SET manager_id = CASE WHEN id > 3 THEN 1 + id % 3 END;
  INSERT INTO crm.memberships SELECT id, team, date '2026-01-01' + id FROM crm.users, (VALUES ('red'), ('blue')) t(team) WHERE id % 3 <> 0;
  INSERT INTO crm.settings VALUES ('theme', 'dark'), ('lang', 'de');`;

const TABLES = "crm.countries,crm.users,crm.employees,crm.memberships,crm.settings";

/** The change as the team wrote it: uuids filled in once, then made by the app (no default). No
 * down file: going back is the backup. `managerKey` is where the classic mistake goes. */
const upSql = (managerKey: string) => `
  ALTER TABLE crm.users ADD COLUMN new_id uuid NOT NULL DEFAULT gen_random_uuid();
  ALTER TABLE crm.employees ADD COLUMN new_id uuid NOT NULL DEFAULT gen_random_uuid(), ADD COLUMN new_user_id uuid, ADD COLUMN new_manager_id uuid;
  UPDATE crm.employees e SET new_user_id = u.new_id FROM crm.users u WHERE u.id = e.user_id;
  UPDATE crm.employees e SET new_manager_id = m.new_id FROM crm.employees m WHERE m.${managerKey} = e.manager_id;
  ALTER TABLE crm.memberships ADD COLUMN new_user_id uuid;
  UPDATE crm.memberships m SET new_user_id = u.new_id FROM crm.users u WHERE u.id = m.user_id;
  ALTER TABLE crm.memberships DROP CONSTRAINT memberships_pkey, DROP CONSTRAINT memberships_user_id_fkey;
  ALTER TABLE crm.employees DROP CONSTRAINT employees_user_id_fkey, DROP CONSTRAINT employees_manager_id_fkey, DROP CONSTRAINT employees_pkey;
  ALTER TABLE crm.users DROP CONSTRAINT users_pkey;
  ALTER TABLE crm.users DROP COLUMN id;
  ALTER TABLE crm.users RENAME COLUMN new_id TO id;
  ALTER TABLE crm.users ALTER COLUMN id DROP DEFAULT;
  ALTER TABLE crm.employees DROP COLUMN id, DROP COLUMN user_id, DROP COLUMN manager_id;
  ALTER TABLE crm.employees RENAME COLUMN new_id TO id;
  ALTER TABLE crm.employees RENAME COLUMN new_user_id TO user_id;
  ALTER TABLE crm.employees RENAME COLUMN new_manager_id TO manager_id;
  ALTER TABLE crm.employees ALTER COLUMN id DROP DEFAULT, ALTER COLUMN user_id SET NOT NULL;
  ALTER TABLE crm.memberships DROP COLUMN user_id;
  ALTER TABLE crm.memberships RENAME COLUMN new_user_id TO user_id;
  ALTER TABLE crm.users ADD CONSTRAINT users_pkey PRIMARY KEY (id);
  ALTER TABLE crm.employees ADD CONSTRAINT employees_pkey PRIMARY KEY (id),
    ADD CONSTRAINT employees_user_id_fkey FOREIGN KEY (user_id) REFERENCES crm.users (id) ON DELETE CASCADE,
    ADD CONSTRAINT employees_manager_id_fkey FOREIGN KEY (manager_id) REFERENCES crm.employees (id) ON DELETE SET NULL;
  ALTER TABLE crm.memberships ADD CONSTRAINT memberships_pkey PRIMARY KEY (user_id, team),
    ADD CONSTRAINT memberships_user_id_fkey FOREIGN KEY (user_id) REFERENCES crm.users (id);`;

describe("migrate --mode sql: a schema of the user's own", function () {
  this.timeout(300_000);
  let pg: PgCluster;
  const scratch = helpers.scratchDirs();

  before(async () => {
    pg = await getCluster();
  });
  after(scratch.remove);

  async function prepared(managerKey: string): Promise<{ db: TestDatabase; env: NodeJS.ProcessEnv; sqlDir: string; manifestUri: string }> {
    const sqlDir = scratch.make("vibes-crm-sql-");
    writeFileSync(join(sqlDir, "0000_crm.up.sql"), SCHEMA);
    writeFileSync(join(sqlDir, "001_crm_uuid.up.sql"), upSql(managerKey));
    const db = await pg.createDatabase();
    await pg.query(db.name, `SET ROLE vibes; ${SCHEMA}`);
    const env: NodeJS.ProcessEnv = { ...db.env, VIBES_TABLES: TABLES, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: scratch.make("vibes-backups-") };
    delete env.VIBES_APP_DIR;
    const backup = await runHooks("backup", ["--label", "for-001_crm_uuid"], env);
    assert.equal(backup.code, 0, backup.stderr);
    return { db, env, sqlDir, manifestUri: backup.json.manifestUri };
  }

  const migrate = (p: { env: NodeJS.ProcessEnv; sqlDir: string; manifestUri: string }) =>
    runHooks("migrate", ["--to", "001_crm_uuid", "--manifest", p.manifestUri, "--mode", "sql", "--sql-dir", p.sqlDir,
      "--files-sha256", plannedMigrationFilesSha256({ mode: "sql", sqlDir: p.sqlDir }), "--id-default", "none"], p.env);

  it("migrates the id columns and the keys that reference them, nothing else, and proves it", async () => {
    const p = await prepared("id");
    const manifest = JSON.parse(readFileSync(new URL(p.manifestUri), "utf8"));
    // Derived from the catalog: the ids and the keys into them, not the lookup code or the settings' key.
    assert.deepEqual(manifest.tables["crm.users"].keyColumns, ["id"]);
    assert.deepEqual(manifest.tables["crm.employees"].keyColumns.sort(), ["id", "manager_id", "user_id"]);
    assert.deepEqual(manifest.tables["crm.memberships"].keyColumns, ["user_id"]);
    assert.deepEqual([manifest.tables["crm.countries"].idColumn, manifest.tables["crm.countries"].keyColumns], [null, []]);
    assert.ok(manifest.tables["crm.users"].contentColumns.includes("country_code"));

    const res = await migrate(p);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.json.revisionAfter, "001_crm_uuid");
    const types = await pg.query(p.db.name, `SELECT table_name || '.' || column_name AS c, data_type FROM information_schema.columns
      WHERE table_schema = 'crm' AND (column_name LIKE '%id' OR column_name = 'country_code' OR column_name = 'code') ORDER BY 1`);
    assert.deepEqual(Object.fromEntries(types.map((r) => [r.c, r.data_type])), {
      "countries.code": "character", "employees.id": "uuid", "employees.manager_id": "uuid", "employees.user_id": "uuid",
      "memberships.user_id": "uuid", "users.country_code": "character", "users.id": "uuid",
    });
    // What migrate proved (the validation stage reports it), naming what the id change allowed.
    const recorded = await runHooks("validate", ["schema", "data", "--use-recorded", "--manifest", p.manifestUri, "--revision", "001_crm_uuid"], p.env);
    assert.equal(recorded.code, 0, recorded.stderr);
    const byName = Object.fromEntries(recorded.json.checks.map((c: { name: string; detail: string }) => [c.name, c.detail]));
    assert.match(byName["schema.crm.employees"], /except the id change \(.*id integer -> uuid, default none.*manager_id integer -> uuid/);
    assert.match(byName["schema.crm.countries"], /^as in the snapshot: 2 columns/);
    assert.match(byName["data.relationships.crm.employees"], /parents through employees_manager_id_fkey, employees_user_id_fkey, transitively/);
    // Run again, the checks compare with the schema migrate recorded for 001_crm_uuid, exactly.
    const again = await runHooks("validate", ["schema", "data", "--manifest", p.manifestUri, "--revision", "001_crm_uuid"], p.env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.json.checks.find((c: { name: string }) => c.name === "schema.basis").detail, /recorded when 001_crm_uuid was last proven/);
    // Without that record (a database migrated by other means), an app that expects a server
    // default is told it has none.
    await pg.query(p.db.name, "COMMENT ON TABLE alembic_version IS NULL");
    const withDefault = await runHooks("validate", ["schema", "--manifest", p.manifestUri], p.env);
    assertFailed(withDefault, "validate", /schema\.column\.crm\.users\.id/);
    assert.match(withDefault.json.checks.find((c: { name: string }) => c.name === "schema.column.crm.users.id").detail, /default none, expected gen_random_uuid\(\)/);
    assertSecretAbsent(res, pg.password);
    await pg.dropDatabase(p.db.name);
  });

  it("catches managers mapped through the wrong key (every count and title equal, every key valid), names the rows, and restores the backup", async () => {
    const p = await prepared("user_id");
    const res = await migrate(p);
    assertFailed(res, "migrate", /validation failed after the migration: data\.relationships\.crm\.employees: relationship fingerprint differs/);
    assert.match(res.json.error, /back at 0000_crm, its schema, data and ids proven equal to the backup.s \(restored from the backup/);
    assert.match(res.stderr, /has no 001_crm_uuid\.down\.sql/);
    const located = res.json.differingRows.find((d: { table: string }) => d.table === "crm.employees");
    assert.equal(located.by, "relationships");
    assert.ok(located.onlyInBackup.length > 0 && located.onlyNow.length > 0, JSON.stringify(located));
    // Named by what the schema offers: the title, the user's unique email, the manager's title.
    const row = JSON.parse(located.onlyNow[0]);
    assert.equal(row.title, "engineer");
    assert.match(row["crm.users"].email, /^u\d+@example\.com$/);
    assert.equal(await helpers.revisionOf(pg, p.db.name), "0000_crm");
    await pg.dropDatabase(p.db.name);
  });
});
