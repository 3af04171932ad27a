// The rollback that cannot fail (issue 18): the verified copy swapped in, the restore that objects
// created after the backup never stop, and the version record where migrate read it. Real
// PostgreSQL, SQL-mode migrations written the way teams write them, with their mistakes.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { APP_DIR, getCluster, PG_BIN, type PgCluster } from "../support/pgCluster";
import { assertFailed, assertSecretAbsent, runHooks } from "../support/hooks";
import * as helpers from "./migrateHelpers";
import { BEFORE, TARGET } from "./migrateHelpers";

const SQL_DIR = join(APP_DIR, "migrations", "sql");

/** The sample up file with a table of its own that references users (it survives the id change)
 * and, last, a CHECK that no row passes: validation fails after everything else ran. */
const NEW_TABLE_AND_BROKEN_CHECK = `
CREATE TABLE user_badges (user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE, badge text NOT NULL);
INSERT INTO user_badges SELECT id, 'early' FROM users;
ALTER TABLE journals DROP CONSTRAINT journals_title_not_blank;
ALTER TABLE journals ADD CONSTRAINT journals_title_not_blank CHECK (title <> '' OR title IS NULL) NOT VALID;
`;

describe("rollback by swap and a restore that cannot be blocked", function () {
  this.timeout(300_000);
  let pg: PgCluster;
  const scratch = helpers.scratchDirs();

  before(async () => {
    pg = await getCluster();
  });
  after(scratch.remove);

  function sqlCopy(upTail: string, upHead = ""): string {
    const dir = scratch.make("vibes-sql-");
    cpSync(SQL_DIR, dir, { recursive: true });
    const up = join(dir, `${TARGET}.up.sql`);
    writeFileSync(up, `${upHead}${readFileSync(up, "utf8")}\n${upTail}`);
    return dir;
  }

  /** A database at 0000_initial with the schema extras, its verified backup, and the copy kept when `keep`. */
  async function prepared(sqlDir: string, opts: { keep: boolean; env?: NodeJS.ProcessEnv; setupSql?: string }) {
    const p = await helpers.prepareDatabase(pg, scratch.make("vibes-backups-"), { mode: "sql", sqlDir }, `${helpers.SCHEMA_EXTRAS}; ${opts.setupSql ?? ""}`);
    Object.assign(p.env, opts.env ?? {});
    const dumpUri: string = JSON.parse(readFileSync(fileURLToPath(p.manifestUri), "utf8")).dump.uri;
    const verify = await runHooks("verify-restore", ["--uri", dumpUri, ...(opts.keep ? ["--keep-copy"] : [])], p.env);
    assert.equal(verify.code, 0, verify.stderr);
    return { ...p, verify };
  }

  const databases = async (prefix: string) =>
    (await pg.query("postgres", "SELECT datname, datallowconn FROM pg_database WHERE datname LIKE $1 ORDER BY 1", [`${prefix}%`]));

  it("verify-restore --keep-copy keeps the proven copy, marked and closed to connections", async () => {
    const { db, verify } = await prepared(SQL_DIR, { keep: true });
    assert.equal(verify.json.keptCopy, `${db.name}_vibes_copy`);
    assert.deepEqual(verify.json.swapObstacles, []);
    const [copy] = await databases(`${db.name}_vibes_copy`);
    assert.equal(copy.datallowconn, false);
    const comment = (await pg.query("postgres", "SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = $1", [copy.datname]))[0].c;
    assert.match(comment, new RegExp(`^vibes-hooks copy \\{"copyOf":"${db.name}","sha256":"${verify.json.sha256}"`));
    const status = await runHooks("copy", ["status"], { ...db.env });
    assert.equal(status.json.copy, copy.datname);
    const drop = await runHooks("copy", ["drop"], { ...db.env });
    assert.equal(drop.json.dropped, copy.datname);
    assert.deepEqual(await databases(`${db.name}_vibes_copy`), []);
    await pg.dropDatabase(db.name);
  });

  it("where a swap cannot be exact, preflight and verify-restore say why and keep no copy", async () => {
    const { db, env, manifestUri } = await prepared(SQL_DIR, { keep: false });
    const dumpUri: string = JSON.parse(readFileSync(fileURLToPath(manifestUri), "utf8")).dump.uri;
    const keep = () => runHooks("verify-restore", ["--uri", dumpUri, "--keep-copy"], env);
    let res = await keep();
    assert.equal(res.json.keptCopy, `${db.name}_vibes_copy`, "nothing in the way yet");
    // Subscribers follow a publication's database, whatever its name.
    await pg.query(db.name, "CREATE PUBLICATION vibes_cdc FOR TABLE users");
    res = await keep();
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.json.keptCopy, null);
    assert.match(res.json.swapObstacles.join(" "), /1 publication\(s\) in \w+: subscribers follow/);
    assert.deepEqual(await databases(`${db.name}_vibes_copy`), [], "the earlier copy is not left behind either");
    const preflight = await runHooks("preflight", [], { ...env, VIBES_APP_URL: "http://127.0.0.1:9" });
    assert.equal(preflight.json.rollback.strategy, "restore");
    assert.match(preflight.stderr, /rollback: by restoring the backup, as a swap cannot be exact here: 1 publication/);
    await pg.query(db.name, "DROP PUBLICATION vibes_cdc");
    // Objects of a role the deployer cannot act as could not get their owner back in a copy.
    await pg.query("postgres", "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'auditor') THEN CREATE ROLE auditor; END IF; END $$");
    await pg.query(db.name, "CREATE TABLE audit_log (at timestamptz); ALTER TABLE audit_log OWNER TO auditor");
    res = await keep();
    assert.equal(res.json.keptCopy, null);
    assert.match(res.json.swapObstacles.join(" "), /objects are owned by auditor/);
    const withStrategy = await runHooks("verify-restore", ["--uri", dumpUri, "--keep-copy"], { ...env, VIBES_ROLLBACK: "restore" });
    assert.match(withStrategy.json.swapObstacles.join(" "), /VIBES_ROLLBACK=restore/);
    await pg.dropDatabase(db.name);
  });

  it("a failed migration that created a table referencing a covered table is swapped back, exactly, and the failed database kept", async () => {
    const sqlDir = sqlCopy(NEW_TABLE_AND_BROKEN_CHECK);
    const { db, env, manifestUri, migrate } = await prepared(sqlDir, { keep: true });
    // What a rename leaves behind with the old database: it must come over to the copy.
    await pg.query("postgres", `COMMENT ON DATABASE ${db.name} IS 'the vibes database'`);
    await pg.query("postgres", `ALTER DATABASE ${db.name} SET work_mem = '8MB'`);
    await pg.query("postgres", `ALTER DATABASE ${db.name} SET search_path = "$user", public`);
    await pg.query("postgres", `ALTER DATABASE ${db.name} CONNECTION LIMIT 40`);
    await pg.query("postgres", `REVOKE TEMPORARY ON DATABASE ${db.name} FROM PUBLIC`);
    const propsOf = async (name: string) => (await pg.query("postgres",
      `SELECT r.rolname AS owner, d.datconnlimit, shobj_description(d.oid, 'pg_database') AS comment,
              (SELECT array_agg(a.privilege_type || ':' || a.grantee::regrole::text ORDER BY 1, 2) FROM aclexplode(d.datacl) a WHERE a.grantee <> 0) AS grants,
              (SELECT array_agg(a.privilege_type ORDER BY 1) FROM aclexplode(d.datacl) a WHERE a.grantee = 0) AS public_grants,
              (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0) AS settings
         FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1`, [name]))[0];
    const before = await propsOf(db.name);
    assert.deepEqual(before.public_grants, ["CONNECT"]);

    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /validation failed .*schema\.constraint\.journals\.journals_title_not_blank.*back at 0000_initial: the verified copy of the backup was swapped in .* schema, data and ids proven equal to the backup.s .* the failed database is kept as \w+_failed_\d{8}_\d{6}/);
    assert.equal(res.json.swappedIn, true);
    assert.equal(res.json.changed, false);
    const failedDb: string = res.json.failedDatabase;
    assert.match(failedDb, new RegExp(`^${db.name}_failed_`));
    // The database is the backup again, proven here independently: schema (no user_badges), data, ids.
    assert.equal(await helpers.revisionOf(pg, db.name), BEFORE);
    assert.deepEqual(await helpers.dataDifferences(pg, db.name, manifestUri, env, { ids: true }), []);
    assert.deepEqual(await pg.query(db.name, "SELECT to_regclass('user_badges') AS t"), [{ t: null }]);
    assert.equal(await helpers.idType(pg, db.name), "integer");
    assert.deepEqual(await propsOf(db.name), before, "owner, grants, settings, comment and connection limit carried over");
    // The failed database is kept as it was left, the new table in it; the copy is gone (it is the database now).
    assert.equal(await helpers.idType(pg, failedDb), "uuid");
    assert.equal((await pg.query(failedDb, "SELECT count(*)::int AS n FROM user_badges"))[0].n, 12);
    assert.deepEqual(await databases(`${db.name}_vibes_copy`), []);
    assertSecretAbsent(res, pg.password);
    await pg.dropDatabase(failedDb);
    await pg.dropDatabase(db.name);
  });

  it("after a swap the differing rows are named from the failed database against the copy, without a scratch restore", async () => {
    const sqlDir = sqlCopy("UPDATE journals SET title = 'renamed by the migration' WHERE title = (SELECT min(title) FROM journals);");
    const { db, migrate } = await prepared(sqlDir, { keep: true });
    const [{ title }] = await pg.query(db.name, "SELECT min(title) AS title FROM journals");
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /data\.content\.journals.*the verified copy of the backup was swapped in/);
    assert.match(res.stderr, new RegExp(`locating the differing rows of journals, journal_tags \\(against ${db.name}, proven equal to the backup\\)`));
    assert.doesNotMatch(res.stderr, /restoring into vibes_locate_/);
    const journals = res.json.differingRows.find((d: { table: string }) => d.table === "journals");
    assert.equal(journals.onlyInBackup.length, 1);
    assert.ok(journals.onlyInBackup[0].includes(title), journals.onlyInBackup[0]);
    assert.ok(journals.onlyNow[0].includes("renamed by the migration"), journals.onlyNow[0]);
    await pg.dropDatabase(res.json.failedDatabase);
    await pg.dropDatabase(db.name);
  });

  it("without a kept copy the restore goes into a fresh database swapped in: objects the migration created never block it", async () => {
    const sqlDir = sqlCopy(NEW_TABLE_AND_BROKEN_CHECK);
    writeFileSync(join(sqlDir, `${TARGET}.down.sql`), "SELECT 1 / 0;\n"); // the down command fails: the backup it is
    const { db, env, manifestUri, migrate } = await prepared(sqlDir, { keep: false });
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /the database is back at 0000_initial, its schema, data and ids proven equal to the backup.s \(restored from the backup/);
    assert.match(res.stderr, /no swap \(no verified copy was kept/);
    assert.match(res.stderr, /restoring into a fresh database that replaces/);
    assert.equal(res.json.restoredFromBackup, true);
    assert.deepEqual(await helpers.dataDifferences(pg, db.name, manifestUri, env, { ids: true }), []);
    assert.deepEqual(await pg.query(db.name, "SELECT to_regclass('user_badges') AS t"), [{ t: null }]);
    const kept = await databases(`${db.name}_failed_`);
    assert.equal(kept.length, 1, "the database the restore replaced is kept");
    for (const k of kept) await pg.dropDatabase(k.datname);
    await pg.dropDatabase(db.name);
  });

  it("where no swap is possible, what is in the backup's way is named, saved to the backup store and removed, then the backup restored in place", async () => {
    const sqlDir = sqlCopy(NEW_TABLE_AND_BROKEN_CHECK);
    writeFileSync(join(sqlDir, `${TARGET}.down.sql`), "SELECT 1 / 0;\n");
    const { db, env, manifestUri, migrate } = await prepared(sqlDir, { keep: false, env: { VIBES_ROLLBACK: "restore" } });
    const res = await migrate(TARGET);
    assertFailed(res, "migrate", /back at 0000_initial, its schema, data and ids proven equal to the backup.s \(restored from the backup/);
    assert.match(res.stderr, /not in the backup, in its way: public\.user_badges/);
    const saved = /saved in (file:\S+\.dump)/.exec(res.stderr)?.[1];
    assert.ok(saved && existsSync(fileURLToPath(saved)), `the removed objects are saved: ${res.stderr}`);
    assert.deepEqual(await helpers.dataDifferences(pg, db.name, manifestUri, env, { ids: true }), []);
    assert.deepEqual(await pg.query(db.name, "SELECT to_regclass('user_badges') AS t"), [{ t: null }]);
    assert.deepEqual(await databases(`${db.name}_failed_`), [], "in place: no database is set aside");
    // What was removed can be brought back from the saved dump.
    const list = execFileSync(join(PG_BIN, "pg_restore"), ["--list", fileURLToPath(saved!)], { encoding: "utf8" });
    assert.match(list, /TABLE DATA public user_badges/);
    await pg.dropDatabase(db.name);
  });

  it("an up file that sets search_path records the revision in the version table migrate read, and a failure there restores", async () => {
    const setupSql = "CREATE SCHEMA crm AUTHORIZATION vibes; CREATE TABLE crm.accounts (id serial PRIMARY KEY, name text); ALTER TABLE crm.accounts OWNER TO vibes; INSERT INTO crm.accounts (name) VALUES ('a'), ('b')";
    const ok = sqlCopy("", "SET LOCAL search_path = crm, public;\n");
    const good = await prepared(ok, { keep: false, setupSql });
    const up = await good.migrate(TARGET);
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(await pg.query(good.db.name, "SELECT version_num FROM public.alembic_version"), [{ version_num: TARGET }]);
    assert.deepEqual(await pg.query(good.db.name, "SELECT to_regclass('crm.alembic_version') AS t"), [{ t: null }]);
    await pg.dropDatabase(good.db.name);

    // The same up file, with a table of its own (in crm: the search_path puts it there) and a broken
    // CHECK: validation fails, the down file fails, and the in-place restore must not stop at
    // DROP SCHEMA crm (the backup creates that schema, which now holds crm.notes).
    const bad = sqlCopy(`CREATE TABLE notes (body text);\n${NEW_TABLE_AND_BROKEN_CHECK}`, "SET LOCAL search_path = crm, public;\n");
    writeFileSync(join(bad, `${TARGET}.down.sql`), "SELECT 1 / 0;\n");
    const failing = await prepared(bad, { keep: false, setupSql, env: { VIBES_ROLLBACK: "restore" } });
    const res = await failing.migrate(TARGET);
    assertFailed(res, "migrate", /validation failed .*back at 0000_initial, its schema, data and ids proven equal to the backup.s \(restored from the backup/);
    assert.match(res.stderr, /not in the backup, in its way: .*crm\.notes/);
    assert.equal(await helpers.revisionOf(pg, failing.db.name), BEFORE);
    assert.deepEqual(await pg.query(failing.db.name, "SELECT to_regclass('crm.notes') AS t, to_regclass('crm.alembic_version') AS v"), [{ t: null, v: null }]);
    assert.deepEqual(await pg.query(failing.db.name, "SELECT count(*)::int AS n FROM crm.accounts"), [{ n: 2 }]);
    await pg.dropDatabase(failing.db.name);
  });
});
