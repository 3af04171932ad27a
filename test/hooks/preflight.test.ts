import assert from "node:assert/strict";
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeApp } from "../support/fakeApp";
import { assertFailed, assertSecretAbsent, runHooks } from "../support/hooks";
import { freePort } from "../support/net";
import { APP_DIR, APP_PYTHON, getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";

describe("preflight", function () {
  this.timeout(180_000);
  let pg: PgCluster;
  let db: TestDatabase;
  let app: FakeApp;
  let env: NodeJS.ProcessEnv;
  let tools: string;

  before(async () => {
    pg = await getCluster();
    db = await pg.createVibesDatabase({ users: 12, journalsPerUser: 3, tags: 4 });
    tools = mkdtempSync(join(tmpdir(), "vibes-fake-pg-dump-"));
  });
  after(async () => {
    await pg.dropDatabase(db.name);
    rmSync(tools, { recursive: true, force: true });
  });
  beforeEach(async () => {
    app = await FakeApp.start();
    app.schemaRevision = "0000_initial";
    app.idType = "integer";
    env = { ...db.env, VIBES_APP_URL: app.url, VIBES_PG_DUMP: "/usr/lib/postgresql/15/bin/pg_dump" };
  });
  afterEach(() => app.close());

  function fakePgDump(version: string): string {
    const file = join(tools, `pg_dump_${version}`);
    writeFileSync(file, `#!/bin/sh\necho "pg_dump (PostgreSQL) ${version}"\n`);
    chmodSync(file, 0o755);
    return file;
  }

  it("reports the server, revision, tables, sizes and the app when every expectation holds", async () => {
    const res = await runHooks("preflight", ["--expect-revision", "0000_initial", "--expect-revision", "001_uuid_schema_migration"], env);
    assert.equal(res.code, 0, res.stderr);
    const json = res.json;
    assert.match(json.serverVersion, /^15\./);
    assert.equal(json.serverMajor, 15);
    assert.equal(json.pgDumpMajor, 15);
    assert.equal(json.revision, "0000_initial");
    assert.deepEqual(Object.keys(json.tables).sort(), ["journal_tags", "journals", "tags", "users"]);
    assert.equal(json.tables.users.rows, 12);
    assert.equal(json.tables.journals.rows, 36);
    assert.ok(json.tables.users.bytes > 0);
    assert.ok(json.databaseBytes > json.tables.journals.bytes);
    // The vibes role may not read data_directory: unknown, not guessed.
    assert.equal(json.freeBytes, null);
    assert.deepEqual(json.app.health, { status: "ok", database: "ok" });
    assert.equal(json.app.status.schema_revision, "0000_initial");
    assertSecretAbsent(res, pg.password);
  });

  it("measures free space on a local server when the role may read data_directory", async () => {
    await pg.query("postgres", "GRANT pg_read_all_settings TO vibes");
    try {
      const res = await runHooks("preflight", [], env);
      assert.equal(res.code, 0, res.stderr);
      assert.ok(res.json.freeBytes > 0, `freeBytes ${res.json.freeBytes}`);
      const tight = await runHooks("preflight", ["--min-free-ratio", String(Math.ceil(res.json.freeBytes / res.json.databaseBytes) + 1)], env);
      assertFailed(tight, "preflight", /free space .* is less than \d+ x the database/);
    } finally {
      await pg.query("postgres", "REVOKE pg_read_all_settings FROM vibes");
    }
  });

  it("uses the free space the operator passes where the step cannot see the disk", async () => {
    const res = await runHooks("preflight", ["--data-dir-free-bytes", "1000"], env);
    assertFailed(res, "preflight", /^1 unmet expectation: free space 1000 B is less than 1.5 x the database/);
    assert.equal(res.json.freeBytes, 1000);
    assert.match(res.json.next, /grow the storage/);
  });

  it("estimates free space from the allocated storage (RDS): storage minus every database", async () => {
    const small = await runHooks("preflight", ["--storage-bytes", String(20 * 1024 * 1024)], env);
    assertFailed(small, "preflight", /free space .* is less than 1.5 x the database/);
    const big = await runHooks("preflight", ["--storage-bytes", String(100 * 1024 ** 3)], env);
    assert.equal(big.code, 0, big.stderr);
    // Every database of the cluster counts as used, not just this one.
    assert.ok(big.json.freeBytes < 100 * 1024 ** 3 - big.json.databaseBytes, String(big.json.freeBytes));
    assert.match(big.stderr, /estimated from the allocated storage/);
  });

  it("lists every unmet expectation with its fix", async () => {
    app.healthy = false;
    const res = await runHooks("preflight", ["--expect-revision", "001_uuid_schema_migration"],
      { ...env, VIBES_TABLES: "users,journals,nope", VIBES_PG_DUMP: fakePgDump("14.9") });
    assertFailed(res, "preflight", /^5 unmet expectations: /);
    const problems: string[] = res.json.problems.map((p: { problem: string }) => p.problem);
    assert.deepEqual(problems, [
      "database revision is 0000_initial, expected 001_uuid_schema_migration",
      "table missing: nope",
      "a table outside the covered set references it through foreign keys, unprotected by any check: journal_tags (journal_tags_journal_id_fkey -> journals)",
      "pg_dump is version 14 but the server is PostgreSQL 15",
      "app /health answered HTTP 503",
    ]);
    for (const p of res.json.problems) assert.ok(p.fix.length > 10, `no fix for ${p.problem}`);
    assert.match(res.json.next, /VIBES_PG_DUMP/);
    assert.equal(res.json.tables.users.rows, 12, "what could be measured is still reported");
  });

  it("refuses a table outside the covered set whose foreign keys reach it, naming it, the path and the fix; covering it passes", async () => {
    const withComments = await pg.createDatabase(undefined, db.name);
    try {
      await pg.query(withComments.name, `SET ROLE vibes;
        CREATE TABLE comments (id serial PRIMARY KEY, journal_id int NOT NULL REFERENCES journals (id), body text NOT NULL);
        CREATE TABLE comment_likes (comment_id int REFERENCES comments (id), who text)`);
      const res = await runHooks("preflight", [], { ...env, ...withComments.env, VIBES_APP_URL: app.url });
      assertFailed(res, "preflight", /tables outside the covered set reference it through foreign keys, unprotected by any check: comment_likes \(comment_likes_comment_id_fkey -> comments\), comments \(comments_journal_id_fkey -> journals\)/);
      const problem = res.json.problems.find((p: { problem: string }) => /outside the covered set/.test(p.problem));
      assert.match(problem.fix, /add comment_likes, comments to the tables setting/);
      const covered = await runHooks("preflight", [], { ...env, ...withComments.env, VIBES_APP_URL: app.url, VIBES_TABLES: "users,journals,tags,journal_tags,comments,comment_likes" });
      assert.equal(covered.code, 0, covered.stderr);
    } finally {
      await pg.dropDatabase(withComments.name);
    }
  });

  it("reads the migration files' history before the window: one head, the target in it; cached by content for migrate", async () => {
    const appDir = join(tools, `app-${Date.now()}`);
    cpSync(APP_DIR, appDir, { recursive: true, filter: (src) => !/(^|\/)(\.run|__pycache__)$/.test(src) });
    // A Python that notes each start: whether the history was read again or taken from the cache.
    const starts = join(tools, `python-starts-${Date.now()}`);
    const python = join(tools, `python-${Date.now()}`);
    writeFileSync(python, `#!/bin/sh\necho x >> ${starts}\nexec ${APP_PYTHON} "$@"\n`);
    chmodSync(python, 0o755);
    const withApp = { ...env, VIBES_APP_DIR: appDir, VIBES_PYTHON: python };
    const countStarts = () => (existsSync(starts) ? readFileSync(starts, "utf8").split("\n").filter(Boolean).length : 0);

    const ok = await runHooks("preflight", ["--target", "001_uuid_schema_migration"], withApp);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(ok.json.migrationHeads, ["001_uuid_schema_migration"]);
    assert.equal(countStarts(), 1);
    const again = await runHooks("preflight", ["--target", "001_uuid_schema_migration"], withApp);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(countStarts(), 1, "the same files: the history comes from the cache");

    const unknown = await runHooks("preflight", ["--target", "002_nowhere"], withApp);
    assertFailed(unknown, "preflight", /revision 002_nowhere is not in .*migrations\/versions/);
    writeFileSync(join(appDir, "migrations", "versions", "002_branch.py"), [
      'revision = "002_branch"', 'down_revision = "0000_initial"', "branch_labels = None", "depends_on = None", "",
      "def upgrade():\n    pass", "", "def downgrade():\n    pass", "",
    ].join("\n"));
    const branched = await runHooks("preflight", ["--target", "001_uuid_schema_migration"], withApp);
    assertFailed(branched, "preflight", /alembic reports 2 heads/);
    assert.equal(countStarts(), 2, "a new file: the history is read again");
    const badMode = await runHooks("preflight", ["--target", "001_uuid_schema_migration", "--mode", "flyway"], withApp);
    assert.equal(badMode.code, 2);
  });

  it("catches an app that serves another database", async () => {
    app.schemaRevision = "001_uuid_schema_migration";
    const res = await runHooks("preflight", [], env);
    assertFailed(res, "preflight", /app reports schema revision 001_uuid_schema_migration but DATABASE_URL has 0000_initial/);
  });

  it("reports a wrong password without printing it, and still checks the app", async () => {
    const wrong = "Wr0ng-pass-" + Date.now();
    app.healthy = false;
    const res = await runHooks("preflight", [], { ...env, VIBES_DB_PASSWORD: wrong });
    assertFailed(res, "preflight", /password authentication failed for 127\.0\.0\.1:\d+\/t_\w+ as vibes.*app \/health answered HTTP 503/);
    assertSecretAbsent(res, wrong);
    assert.ok(!res.stdout.includes("***") && !res.stderr.includes("***"), "the step tried to print the password");
  });

  it("reports an unreachable database", async () => {
    const port = await freePort();
    const res = await runHooks("preflight", [], { ...env, DATABASE_URL: `postgresql://vibes@127.0.0.1:${port}/${db.name}` });
    assertFailed(res, "preflight", /cannot reach PostgreSQL at 127\.0\.0\.1:\d+.*ECONNREFUSED/);
  });

  it("rejects bad flags and settings before checking anything", async () => {
    const flag = await runHooks("preflight", ["--min-free-ratio", "lots"], env);
    assert.equal(flag.code, 2);
    assert.match(flag.json.error, /--min-free-ratio must be a non-negative number/);
    const url = await runHooks("preflight", [], { ...env, VIBES_APP_URL: "ftp://example" });
    assertFailed(url, "preflight", /VIBES_APP_URL must be http or https/);
    assert.equal(app.requests.length, 0);
  });
});
