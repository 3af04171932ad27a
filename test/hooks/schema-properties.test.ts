// What the schema snapshot compares besides definitions: comments, column grants, UNLOGGED,
// replica identity and the enabled state of triggers (a foreign key's internal ones by the
// constraint's name). Caught after a migration and rolled back; carried by pg_dump except the
// internal triggers' state; the id change allows none of them to change.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, cpSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadManifest, type Manifest } from "../../hooks/lib/proof/manifest";
import { plannedMigrationFilesSha256 } from "../../common/migrationFiles";
import { prove } from "../../hooks/lib/proof/proof";
import { writeRecord } from "../../hooks/lib/database/revision";
import { readSchemaSnapshot, type SchemaSnapshot } from "../../hooks/lib/proof/schemaSnapshot";
import { tableOids } from "../../hooks/lib/database/tables";
import { PROPERTY_FAULTS, type PropertyFault } from "../support/faults";
import { assertFailed, assertSecretAbsent, runHooks, type HooksResult } from "../support/hooks";
import { APP_DIR, getCluster, PG_BIN, type PgCluster, type TestDatabase } from "../support/pgCluster";
import * as helpers from "./migrateHelpers";
import { BEFORE, SCHEMA_EXTRAS, TARGET } from "./migrateHelpers";

const SQL_DIR = join(APP_DIR, "migrations", "sql");
/** A covered table outside the id change (UNLOGGED tables may not be in foreign keys with logged ones). */
const SESSIONS = `CREATE UNLOGGED TABLE sessions (token text PRIMARY KEY, email varchar(255) NOT NULL);
  ALTER TABLE sessions OWNER TO vibes; ALTER TABLE sessions REPLICA IDENTITY USING INDEX sessions_pkey;
  INSERT INTO sessions SELECT md5(email), email FROM users`;
const TABLES = "users,journals,tags,journal_tags,sessions";
const SESSIONS_FAULT: PropertyFault = { what: "an UNLOGGED table made logged", sql: "ALTER TABLE sessions SET LOGGED", check: "schema.persistence.sessions.table", detail: /logged now, was UNLOGGED/ };
const SUPERUSER = "vibes_superuser";

const failedOf = (checks: { name: string; ok: boolean }[]) => checks.filter((c) => !c.ok).map((c) => c.name).sort();

describe("schema snapshot: comments, column grants, UNLOGGED, replica identity, trigger states", function () {
  this.timeout(300_000);
  let pg: PgCluster;
  const scratch = helpers.scratchDirs();
  const made: string[] = [];

  before(async () => {
    pg = await getCluster();
    await pg.query("postgres", `CREATE ROLE ${SUPERUSER} LOGIN SUPERUSER PASSWORD '${pg.password.replace(/'/g, "''")}'`);
  });
  after(async () => {
    // With what a rollback leaves beside them (the database it replaced, kept as <name>_failed_...).
    const left = await pg.query("postgres", "SELECT datname FROM pg_database WHERE datname LIKE ANY ($1::text[])", [made.map((n) => `${n}%`)]);
    for (const { datname } of left) await pg.dropDatabase(datname);
    await pg.query("postgres", `DROP ROLE IF EXISTS ${SUPERUSER}`);
    scratch.remove();
  });

  /** A copy of the app's SQL files whose 001 up file ends with `faults`. */
  function upWith(faults: PropertyFault[]): string {
    const dir = scratch.make("vibes-sql-");
    cpSync(SQL_DIR, dir, { recursive: true });
    appendFileSync(join(dir, `${TARGET}.up.sql`), faults.map((f) => `\n${f.sql};\n`).join(""));
    return dir;
  }

  const backupEnv = (db: TestDatabase) => ({ ...db.env, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: scratch.make("vibes-backups-") });
  const as = (env: NodeJS.ProcessEnv, user: string) => ({ ...env, DATABASE_URL: env.DATABASE_URL!.replace("//vibes@", `//${user}@`) });

  async function database(setupSql: string): Promise<TestDatabase> {
    const db = await pg.createVibesDatabase({ users: 12, journalsPerUser: 3, tags: 4 });
    made.push(db.name);
    await pg.query(db.name, setupSql);
    return db;
  }

  async function backup(env: NodeJS.ProcessEnv, label: string): Promise<{ uri: string; manifestUri: string }> {
    const res = await runHooks("backup", ["--label", label], env);
    assert.equal(res.code, 0, res.stderr);
    return res.json;
  }

  /** The migration failed on exactly `faults`' checks, and the database was brought back and proven as backed up. */
  async function assertCaughtAndRolledBack(res: HooksResult, faults: PropertyFault[], env: NodeJS.ProcessEnv, manifestUri: string) {
    assertFailed(res, "migrate", /validation failed after the migration: /);
    assert.deepEqual(failedOf(res.json.failedChecks), faults.map((f) => f.check).sort());
    for (const f of faults) assert.match(res.json.failedChecks.find((c: { name: string }) => c.name === f.check).detail, f.detail, f.what);
    assert.match(res.json.error, /back at 0000_initial, its schema, data and ids proven equal to the backup.s/);
    assert.equal(res.json.revisionAfter, BEFORE);
    const exact = await runHooks("validate", ["schema", "data", "--manifest", manifestUri], env);
    assert.equal(exact.code, 0, exact.stderr);
  }

  it("a migration that changes any of them fails by name, and the rollback gives them back", async () => {
    const faults = [...PROPERTY_FAULTS.filter((f) => !f.superuser), SESSIONS_FAULT];
    const sqlDir = upWith(faults);
    const { db, env, manifestUri, migrate } = await helpers.prepareDatabase(pg, scratch.make("vibes-backups-"), { mode: "sql", sqlDir },
      `${SCHEMA_EXTRAS}; ${SESSIONS}`, { VIBES_TABLES: TABLES });
    made.push(db.name);
    const res = await migrate(TARGET);
    await assertCaughtAndRolledBack(res, faults, env, manifestUri);
    // The down file keeps all but the index's comment (it rebuilds that index): the proof after it,
    // for equality with the backup, fails on them too.
    const afterDown = /after the down command: revision 0000_initial; (.*)/.exec(res.stderr)![1];
    const checks = faults.map((f) => f.check);
    assert.deepEqual(checks.filter((c) => afterDown.includes(`${c}:`)), checks.filter((c) => c !== "schema.index.journals.ix_journals_user_id"));
    const [state] = await pg.query(db.name, `SELECT obj_description('users'::regclass, 'pg_class') AS comment,
      (SELECT relpersistence FROM pg_class WHERE oid = 'sessions'::regclass) AS persistence, (SELECT relreplident FROM pg_class WHERE oid = 'tags'::regclass) AS replident`);
    assert.deepEqual(state, { comment: "people who sign in", persistence: "u", replident: "f" });
    assertSecretAbsent(res, pg.password);
  });

  it("a superuser's migration that disables a foreign key's triggers fails by the constraint's name and is rolled back", async () => {
    const faults = PROPERTY_FAULTS.filter((f) => f.superuser);
    const sqlDir = upWith(faults);
    const { db, env, manifestUri } = await helpers.prepareDatabase(pg, scratch.make("vibes-backups-"), { mode: "sql", sqlDir }, SCHEMA_EXTRAS);
    made.push(db.name);
    const res = await runHooks("migrate", ["--to", TARGET, "--manifest", manifestUri, "--mode", "sql", "--sql-dir", sqlDir,
      "--files-sha256", plannedMigrationFilesSha256({ mode: "sql", sqlDir })], as(env, SUPERUSER));
    await assertCaughtAndRolledBack(res, faults, env, manifestUri);
    assert.deepEqual(await pg.query(db.name, "SELECT DISTINCT tgenabled FROM pg_trigger WHERE tgrelid = 'tags'::regclass"), [{ tgenabled: "O" }]);
  });

  it("the id change keeps them: a comment on a rebuilt id column and a disabled foreign key must be set again", async () => {
    // An id column's comment describes what the id is, whatever its type; a foreign key's disabled
    // triggers are a choice the migration must not undo by rebuilding the key.
    const keep = "COMMENT ON COLUMN users.id IS 'account number'; ALTER TABLE users DISABLE TRIGGER ALL";
    const base = await database(keep);
    const { manifestUri } = await backup(backupEnv(base), `for-${TARGET}`);
    const migrated = async (after: string) => {
      const copy = await pg.createDatabase(undefined, base.name);
      made.push(copy.name);
      await pg.runApp(copy.env, ["-m", "alembic", "upgrade", TARGET], "migrate");
      if (after) await pg.query(copy.name, after);
      return runHooks("validate", ["schema", "--manifest", manifestUri], copy.env);
    };
    const lost = await migrated("");
    assert.deepEqual(failedOf(lost.json.checks), ["schema.column.users.id", "schema.trigger.journals.journals_user_id_fkey"]);
    const detail = (name: string) => lost.json.checks.find((c: { name: string }) => c.name === name).detail;
    assert.match(detail("schema.column.users.id"), /column id: comment none, was "account number" \(set it again on the rebuilt column\)/);
    assert.match(detail("schema.trigger.journals.journals_user_id_fkey"), /journals_user_id_fkey's internal triggers: action on delete O, was D; action on update O, was D/);
    const kept = await migrated(keep);
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.json.checks.find((c: { name: string }) => c.name === "schema.users").detail, /except the id change \(id integer -> uuid/);
  });

  it("pg_dump carries all of them but the state of a constraint's triggers: verify-restore passes, a restore is proven without that state", async () => {
    const db = await database(`${SCHEMA_EXTRAS}; ${SESSIONS}; ALTER TABLE journals DISABLE TRIGGER journals_keep_created_at`);
    const hooksEnv = { ...backupEnv(db), VIBES_TABLES: TABLES };
    const carried = await backup(hooksEnv, "carried");
    const { tables } = (await loadManifest(carried.manifestUri, hooksEnv)).schema;
    assert.deepEqual([tables.users.comment, tables.users.columns.email.acl, tables.tags.replicaIdentity, tables.sessions.replicaIdentity, tables.sessions.unlogged,
      tables.journals.triggers.journals_keep_created_at.enabled, tables.users.constraints.users_email_key.indexComment],
    ["people who sign in", ["=r/vibes"], "FULL", "USING INDEX sessions_pkey", true, "D", "sign-in lookup"]);
    // Without owners and grants: the column grant is a privilege like the table's.
    const verified = await runHooks("verify-restore", ["--uri", carried.uri], hooksEnv);
    assert.equal(verified.code, 0, verified.stderr);
    assert.ok(verified.json.checks.some((c: { name: string; ok: boolean }) => c.name === "schema.sessions" && c.ok));

    // ALTER TABLE ... DISABLE TRIGGER ALL turns off the key's triggers on users: pg_dump leaves them out.
    await pg.query(db.name, "ALTER TABLE users DISABLE TRIGGER ALL");
    const manifest = await loadManifest((await backup(hooksEnv, "disabled-key")).manifestUri, hooksEnv);
    assert.equal(manifest.schema.tables.journals.constraints.journals_user_id_fkey.triggers["action on delete"], "D");
    const restored = await pg.createDatabase();
    made.push(restored.name);
    execFileSync(join(PG_BIN, "pg_restore"), ["--no-owner", "--no-privileges", "-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres", "-d", restored.name,
      fileURLToPath(manifest.dump.uri)]);
    const proofOf = async (m: Manifest, opts: { restored: boolean }) => {
      const client = await pg.adminClient(restored.name);
      try {
        return (await prove(client, m, { idType: "uuid", idDefault: null, uuidVersion: null, privileges: false, ...opts })).checks;
      } finally {
        await client.end();
      }
    };
    const compared = await proofOf(manifest, { restored: false });
    assert.deepEqual(failedOf(compared), ["schema.trigger.journals.journals_user_id_fkey"], "everything else came back");
    const noted = await proofOf(manifest, { restored: true });
    assert.deepEqual(failedOf(noted), []);
    assert.match(noted.find((c) => c.name === "schema.trigger.journals.journals_user_id_fkey")!.detail,
      /action on delete O, was D; .*not compared: pg_dump does not carry their enabled state/);
  });

  it("a schema recorded by an earlier vibes-hooks is not compared with: the id change's rule applies", async () => {
    const base = await database(SCHEMA_EXTRAS);
    const hooksEnv = backupEnv(base);
    const { manifestUri } = await backup(hooksEnv, `for-${TARGET}`);
    await pg.runApp(base.env, ["-m", "alembic", "upgrade", TARGET], "migrate");
    const client = await pg.adminClient(base.name);
    try {
      // What format 5's snapshot was: none of the properties compared since.
      const earlier = JSON.parse(JSON.stringify(await readSchemaSnapshot(client, await tableOids(client, ["users", "journals", "tags", "journal_tags"])))) as SchemaSnapshot;
      const strip = (o: object, ...keys: string[]) => keys.forEach((k) => delete (o as Record<string, unknown>)[k]);
      for (const t of Object.values(earlier.tables)) {
        strip(t, "comment", "unlogged", "replicaIdentity");
        Object.values(t.columns).forEach((c) => strip(c, "comment", "acl"));
        Object.values(t.constraints).forEach((c) => strip(c, "comment", "indexComment", "triggers"));
        Object.values(t.indexes).forEach((i) => strip(i, "comment"));
      }
      assert.ok(await writeRecord(client, { revision: TARGET, filesSha256: "0".repeat(64), schemas: { [TARGET]: earlier }, validation: null }, assert.fail));
      // The record is alembic_version's comment: never part of a snapshot, even were the table covered.
      assert.equal((await readSchemaSnapshot(client, await tableOids(client, ["alembic_version"]))).tables.alembic_version.comment, null);
    } finally {
      await client.end();
    }
    const res = await runHooks("validate", ["schema", "--manifest", manifestUri], hooksEnv);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.json.checks.find((c: { name: string }) => c.name === "schema.basis").detail,
      /the id change to uuid \(the schema recorded for 001_uuid_schema_migration is of an earlier vibes-hooks\)/);
  });
});
