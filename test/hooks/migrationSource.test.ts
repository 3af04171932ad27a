import assert from "node:assert/strict";
import { join } from "node:path";
import { withPassfile } from "../../hooks/lib/database/childEnv";
import { connectionFromEnv } from "../../hooks/lib/database/connection";
import { StepError } from "../../hooks/lib/errors";
import { alembicSource, sqlSource, transactionControlIn, type RunContext } from "../../hooks/lib/migrationSource";
import { runChild } from "../../hooks/lib/processes/run";
import { APP_DIR, APP_PYTHON, getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";

// Revisions reach the sources from the database (alembic_version) and from manifests, not only
// from --to: a source refuses what it cannot run, before anything runs.
describe("migration sources: what they refuse before running anything", () => {
  const ctx: RunContext = { env: { PATH: "/nonexistent" }, timeoutMs: 1_000, log: () => undefined };
  const refused = (run: () => unknown, message: RegExp) =>
    assert.throws(run, (err: unknown) => err instanceof StepError && message.test(err.message));

  it("the SQL files go only along their line, in the direction asked", () => {
    const source = sqlSource(join(APP_DIR, "migrations", "sql"));
    refused(() => source.run("down", "0000_initial", "001_uuid_schema_migration", ctx), /cannot go down from 0000_initial to 001_uuid_schema_migration/);
    refused(() => source.run("up", "001_uuid_schema_migration", "0000_initial", ctx), /cannot go up from 001_uuid_schema_migration to 0000_initial/);
    refused(() => source.run("up", "0000_initial", "0042_unknown", ctx), /cannot go up from 0000_initial to 0042_unknown/);
    refused(() => source.run("down", "0042_unknown", "base", ctx), /cannot go down from 0042_unknown to base/);
  });

  it("alembic commands get only revision ids: anything else never reaches the shell", () => {
    const source = alembicSource({ python: "/nonexistent/python3", appDir: APP_DIR, versionsDir: join(APP_DIR, "migrations", "versions") });
    refused(() => source.run("down", "001_uuid_schema_migration", "0000_initial; touch /tmp/owned", ctx), /is not a revision id/);
    refused(() => source.run("up", null, "$(id)", ctx), /is not a revision id/);
    refused(() => source.prepare("up", null, "$(id)", ctx), /is not a revision id/);
  });

  it("finds any statement that would end the migration's transaction, and only those", () => {
    for (const sql of [
      "ALTER TABLE t ADD c int;\nCOMMIT;", "UPDATE t SET c = 1; COMMIT; -- done", "END;", "ABORT;", "commit and chain;",
      "BEGIN;\nALTER TABLE t ADD c int;", "START TRANSACTION ISOLATION LEVEL SERIALIZABLE;", "ROLLBACK;", "ROLLBACK WORK;",
      "PREPARE TRANSACTION 'x';", "ALTER TABLE t ADD c int; /* now */ COMMIT",
      "UPDATE t SET note = E'it\\'s'; COMMIT;", "/* it's /* nested */ still a comment */ COMMIT;", "SELECT 1 AS a$b$c; COMMIT;",
    ]) {
      assert.ok(transactionControlIn(sql), `not found in: ${sql}`);
    }
    for (const sql of [
      "ALTER TABLE t ADD c int;",
      "SAVEPOINT s; UPDATE t SET c = 1; ROLLBACK TO SAVEPOINT s; RELEASE SAVEPOINT s;",
      "ROLLBACK TO s;",
      "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  COMMIT;\nEND;\n$$;",
      "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END; $body$;",
      "CREATE FUNCTION h() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\nALTER TABLE t ADD c int;",
      "COMMENT ON TABLE t IS 'run COMMIT; later';",
      "-- COMMIT;\nALTER TABLE t ADD c int; /* END; */",
      'ALTER TABLE "commit" ADD c int;',
      "CREATE FUNCTION s(x int) RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 'pos' ELSE 'neg' END; END;\nALTER TABLE t ADD c int;",
      "UPDATE t SET note = E'a\\'; END;'; ALTER TABLE t ADD c int;",
      "/* outer /* inner */ COMMIT; */ ALTER TABLE t ADD c int;",
    ]) {
      assert.equal(transactionControlIn(sql), undefined, sql);
    }
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// migrate starts alembic beside its unchanged check: Python loads, but nothing reaches the
// database before go, and cancel ends it unrun.
describe("alembic started ahead", function () {
  this.timeout(60_000);
  const TARGET = "001_uuid_schema_migration";
  const APPLICATION = "vibes test alembic ahead";
  let pg: PgCluster;
  let db: TestDatabase;
  const source = alembicSource({ python: APP_PYTHON, appDir: APP_DIR, versionsDir: join(APP_DIR, "migrations", "versions") });

  beforeEach(async () => {
    pg = await getCluster();
    db = await pg.createVibesDatabase({ users: 3, journalsPerUser: 2 });
  });
  afterEach(async () => pg.dropDatabase(db.name));

  /** `fn` with a run context as migrate's: the password in a passfile, sessions named APPLICATION. */
  const withContext = (timeoutMs: number, fn: (ctx: RunContext) => Promise<void>) =>
    withPassfile(connectionFromEnv(db.env), (env) => fn({ env: { ...env, PGAPPNAME: APPLICATION }, timeoutMs, log: () => undefined }), db.env);
  const revision = async () => (await pg.query(db.name, "SELECT version_num FROM alembic_version"))[0].version_num;
  const sessions = async () => Number((await pg.query(db.name, `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = '${APPLICATION}'`))[0].n);

  it("does not connect before go, and then migrates as `alembic upgrade` does", () => withContext(30_000, async (ctx) => {
    // An alembic that ran early would wait for this lock in a session of its own, not finish unseen.
    const holder = await pg.adminClient(db.name);
    await holder.query("BEGIN; LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE");
    const prepared = source.prepare("up", "0000_initial", TARGET, ctx);
    try {
      await sleep(1_500); // Python and alembic have loaded by now
      assert.equal(await sessions(), 0, "no session before go");
    } finally {
      await holder.end();
    }
    assert.equal(await revision(), "0000_initial");
    const res = await prepared.go();
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /Running upgrade 0000_initial -> 001_uuid_schema_migration/);
    assert.equal(await revision(), TARGET);
  }));

  it("ends unrun on cancel, leaving the database as it was", () => withContext(30_000, async (ctx) => {
    const prepared = source.prepare("up", "0000_initial", TARGET, ctx);
    await sleep(500);
    await prepared.cancel(); // resolves once the process has closed
    assert.equal(await sessions(), 0);
    assert.equal(await revision(), "0000_initial");
  }));

  it("counts the migration's timeout from go, not from the start", () => withContext(4_000, async (ctx) => {
    const prepared = source.prepare("up", "0000_initial", TARGET, ctx);
    await sleep(5_000);
    const res = await prepared.go();
    assert.equal(res.timedOut, false);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(await revision(), TARGET);
  }));
});

describe("runChild with a child started ahead", function () {
  this.timeout(10_000);
  it("starts the timeout when it goes, and still stops a child that runs longer", async () => {
    let start: () => void = () => undefined;
    const later = runChild("sleep", ["1"], { env: { PATH: process.env.PATH }, timeoutMs: 300, goes: new Promise<void>((resolve) => (start = resolve)) });
    await sleep(1_200);
    start();
    assert.deepEqual(await later, { code: 0, stdout: "", stderr: "", timedOut: false });
    const stopped = await runChild("sleep", ["5"], { env: { PATH: process.env.PATH }, timeoutMs: 300, goes: Promise.resolve() });
    assert.equal(stopped.timedOut, true);
  });
});
