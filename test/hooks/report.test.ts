import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { Client } from "pg";
import { assertFailed, assertSecretAbsent, runHooks } from "../support/hooks";
import { getCluster, PG_BIN, PgCluster, type TestDatabase } from "../support/pgCluster";

describe("report", function () {
  this.timeout(180_000);
  let pg: PgCluster;
  let db: TestDatabase;

  before(async () => {
    pg = await getCluster();
    db = await pg.createVibesDatabase({ users: 12, journalsPerUser: 3, tags: 4 });
  });
  after(() => pg.dropDatabase(db.name));

  it("lists indexes never scanned, as JSON rows and an aligned table", async () => {
    const first = await runHooks("report", ["unused-indexes"], db.env);
    assert.equal(first.code, 0, first.stderr);
    const names = (json: { rows: { index: string }[] }) => json.rows.map((r) => r.index);
    assert.ok(names(first.json).includes("users_pkey"), first.stdout);
    assert.ok(names(first.json).includes("ix_journals_user_id"));
    const pkey = first.json.rows.find((r: { index: string }) => r.index === "users_pkey");
    assert.deepEqual({ ...pkey, bytes: 0 }, { schema: "public", table: "users", index: "users_pkey", scans: 0, bytes: 0, unique: true, primary: true });
    const lines = first.stderr.split("\n");
    const header = lines.findIndex((l) => /^schema\s+table\s+index\s+scans\s+bytes\s+unique\s+primary$/.test(l));
    assert.ok(header >= 0, first.stderr);
    assert.match(lines[header + 1], /^-+( +-+){6}$/);
    // Columns line up: "users_pkey" starts where the "index" header does.
    const row = lines.find((l) => l.includes(" users_pkey "))!;
    assert.equal(row.indexOf("users_pkey"), lines[header].indexOf("index"));

    const client = await pg.adminClient(db.name);
    try {
      await client.query("SET enable_seqscan = off");
      await client.query("SELECT email FROM users WHERE id = 1");
      await client.query("SELECT pg_stat_force_next_flush()");
    } finally {
      await client.end();
    }
    const second = await runHooks("report", ["unused-indexes"], db.env);
    assert.equal(second.code, 0, second.stderr);
    assert.ok(!names(second.json).includes("users_pkey"), "a scanned index is not reported");
    assert.ok(names(second.json).includes("ix_journals_user_id"));
    assertSecretAbsent(second, pg.password);
  });

  it("counts key values that are not UUIDs: all of them with integer ids, none after the migration", async () => {
    const before = await runHooks("report", ["invalid-ids"], db.env);
    assert.equal(before.code, 0, before.stderr);
    const byColumn = (json: { rows: { table: string; column: string; type: string; invalid: number }[] }) =>
      Object.fromEntries(json.rows.map((r) => [`${r.table}.${r.column}`, [r.type, r.invalid]]));
    const counts = byColumn(before.json);
    assert.deepEqual(counts["users.id"], ["integer", 12]);
    assert.deepEqual(counts["journals.user_id"], ["integer", 36]);
    assert.deepEqual(Object.keys(counts).sort(),
      ["journal_tags.journal_id", "journal_tags.tag_id", "journals.id", "journals.user_id", "tags.id", "users.id"]);
    const samples: string[] = before.json.rows.find((r: { table: string }) => r.table === "users").samples;
    assert.equal(samples.length, 5);
    assert.ok(samples.every((s) => /^\d+$/.test(s)), samples.join(","));

    await pg.runApp(db.env, ["-m", "alembic", "upgrade", "001_uuid_schema_migration"], "alembic upgrade");
    const after = await runHooks("report", ["invalid-ids"], db.env);
    assert.equal(after.code, 0, after.stderr);
    for (const [column, [type, invalid]] of Object.entries(byColumn(after.json))) {
      assert.deepEqual([type, invalid], ["uuid", 0], column);
    }
  });

  it("says how to enable pg_stat_statements when it is missing or not preloaded", async () => {
    const missing = await runHooks("report", ["slow-queries"], db.env);
    assertFailed(missing, "report", /pg_stat_statements is not installed in this database/);
    assert.match(missing.json.next, /shared_preload_libraries.*CREATE EXTENSION pg_stat_statements/);
    await pg.query(db.name, "CREATE EXTENSION pg_stat_statements");
    const notLoaded = await runHooks("report", ["slow-queries"], db.env);
    assertFailed(notLoaded, "report", /pg_stat_statements is not loaded/);
    await pg.query(db.name, "DROP EXTENSION pg_stat_statements");
  });

  it("lists slow queries from pg_stat_statements (PostgreSQL 13+ column names)", async () => {
    // Its own cluster: pg_stat_statements must be preloaded, which needs a restart.
    const own = await PgCluster.start();
    try {
      await own.query("postgres", "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'");
      const asPostgres = process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--"]] as const : null;
      const ctl = [join(PG_BIN, "pg_ctl"), "-D", own.dataDir, "-l", join(own.dir, "server.log"), "-w", "restart"];
      if (asPostgres) execFileSync(asPostgres[0], [...asPostgres[1], ...ctl]);
      else execFileSync(ctl[0], ctl.slice(1));
      const target = await own.createDatabase();
      await own.query(target.name, "CREATE EXTENSION pg_stat_statements");
      // One slow query by the hook's own role (its text is visible to it), one by another role.
      const asVibes = new Client({ host: own.host, port: own.port, user: "vibes", password: own.password, database: target.name });
      await asVibes.connect();
      await asVibes.query("SELECT pg_sleep(0.25)");
      await asVibes.end();
      await own.query(target.name, "SELECT pg_sleep(0.15), 'other role'");
      await own.query(target.name, "SELECT 1");
      const res = await runHooks("report", ["slow-queries", "--min-mean-ms", "100"], target.env);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.json.rows.length, 2, res.stdout);
      const [mine, other] = res.json.rows;
      assert.match(mine.query, /pg_sleep/);
      assert.equal(mine.calls, 1);
      assert.ok(mine.mean_ms >= 250 && mine.total_ms >= 250, JSON.stringify(mine));
      assert.equal(other.query, "<insufficient privilege>");
      assert.match(res.stderr, /grant pg_read_all_stats/);
      assert.match(res.stderr, /^query\s+calls\s+total_ms\s+mean_ms\s+rows$/m);
      const bad = await runHooks("report", ["slow-queries", "--limit", "0"], target.env);
      assert.equal(bad.code, 2);
    } finally {
      own.stopSync();
    }
  });

  it("refuses an unknown report", async () => {
    const res = await runHooks("report", ["everything"], db.env);
    assert.equal(res.code, 2);
    assert.match(res.json.error, /name one report: slow-queries, unused-indexes, invalid-ids/);
  });
});
