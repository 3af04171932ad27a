import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";
import { assertFailed, runHooks, type HooksResult } from "../support/hooks";

describe("vibes-hooks validate", function () {
  let pg: PgCluster;
  let before0: TestDatabase; // integer ids, the backup's source
  let migrated: TestDatabase; // template: the same data after 001_uuid_schema_migration
  let dir: string;
  let manifestUri: string;
  const made: string[] = [];

  before(async () => {
    pg = await getCluster();
    // Large enough that the planner uses indexes for lookups (small tables are read whole).
    before0 = await pg.createVibesDatabase({ users: 2000, journalsPerUser: 3 });
    dir = mkdtempSync(join(tmpdir(), "vibes-backups-"));
    const backup = await runHooks("backup", ["--label", "0000_initial"], { ...before0.env, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: dir });
    assert.equal(backup.code, 0, backup.stderr);
    manifestUri = backup.json.manifestUri;
    migrated = await pg.createDatabase(undefined, before0.name);
    await pg.runApp(migrated.env, ["-m", "alembic", "upgrade", "001_uuid_schema_migration"], "migrate");
  });
  after(async () => {
    for (const name of [...made, migrated.name, before0.name]) await pg.dropDatabase(name);
    rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh copy of the migrated database with `sql` applied (as superuser). */
  async function migratedWith(sql: string): Promise<TestDatabase> {
    const copy = await pg.createDatabase(undefined, migrated.name);
    made.push(copy.name);
    if (sql) await pg.query(copy.name, sql);
    return copy;
  }

  const failedChecks = (res: HooksResult) => res.json.checks.filter((c: { ok: boolean }) => !c.ok).map((c: { name: string }) => c.name).sort();

  it("passes schema, data and performance after the real migration", async () => {
    const res = await runHooks("validate", ["--manifest", manifestUri], migrated.env);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.json.summary, /^schema\+data\+performance: (\d+)\/\1 checks passed$/);
    const byName = Object.fromEntries(res.json.checks.map((c: { name: string; detail: string }) => [c.name, c.detail]));
    assert.match(byName["performance.user_lookup"], /Index Scan using users_pkey/);
    assert.match(byName["performance.journals_by_user"], /using ix_journals_user_id/);
    assert.equal(byName["schema.type.journal_tags.tag_id"], "uuid");
    assert.ok("data.relationships.journal_tags" in byName && "data.orphans.journals_user_id_fkey" in byName);
  });

  it("catches a deleted row", async () => {
    const db = await migratedWith("DELETE FROM tags WHERE name = (SELECT min(name) FROM tags)");
    const res = await runHooks("validate", ["data", "--manifest", manifestUri], db.env);
    assertFailed(res, "validate", /validation failed: .*data\.rows\.tags/);
    assert.ok(failedChecks(res).includes("data.rows.tags"));
    assert.ok(failedChecks(res).includes("data.rows.journal_tags"), "the cascade removed links too");
  });

  it("catches a changed value (counts equal)", async () => {
    const db = await migratedWith("UPDATE journals SET content = content || '.' WHERE id = (SELECT id FROM journals ORDER BY title, id LIMIT 1)");
    const res = await runHooks("validate", ["data", "--manifest", manifestUri], db.env);
    assertFailed(res, "validate", /data\.content\.journals/);
    assert.deepEqual(failedChecks(res), ["data.content.journals", "data.relationships.journal_tags", "data.relationships.journals"]);
  });

  it("catches a journal moved to another user (counts and contents equal)", async () => {
    const db = await migratedWith(`UPDATE journals SET user_id = (SELECT id FROM users WHERE id <> journals.user_id ORDER BY email LIMIT 1)
                                    WHERE id = (SELECT id FROM journals ORDER BY title, id LIMIT 1)`);
    const res = await runHooks("validate", ["schema", "data", "--manifest", manifestUri], db.env);
    assertFailed(res, "validate", /validation failed: data\.relationships\.journals$/);
    assert.deepEqual(failedChecks(res), ["data.relationships.journals"]);
  });

  it("catches an orphaned foreign key, even behind a NOT VALID constraint", async () => {
    const db = await migratedWith(`ALTER TABLE journals DROP CONSTRAINT journals_user_id_fkey;
      UPDATE journals SET user_id = gen_random_uuid() WHERE id = (SELECT id FROM journals ORDER BY title, id LIMIT 1);
      ALTER TABLE journals ADD CONSTRAINT journals_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE NOT VALID`);
    const res = await runHooks("validate", ["schema", "data", "--manifest", manifestUri], db.env);
    assertFailed(res, "validate", /data\.orphans\.journals_user_id_fkey/);
    assert.deepEqual(failedChecks(res), ["data.orphans.journals_user_id_fkey", "data.relationships.journals", "schema.constraint.journals_user_id_fkey"]);
    const orphan = res.json.checks.find((c: { name: string }) => c.name === "data.orphans.journals_user_id_fkey");
    assert.match(orphan.detail, /^1 rows of journals/);
  });

  it("catches a dropped index (schema) and the lookup that no longer uses it (performance)", async () => {
    const db = await migratedWith("DROP INDEX ix_journals_user_id");
    const res = await runHooks("validate", ["schema", "performance", "--manifest", manifestUri], db.env);
    assertFailed(res, "validate", /schema\.index\.ix_journals_user_id/);
    assert.deepEqual(failedChecks(res), ["performance.journals_by_user", "schema.index.ix_journals_user_id"]);
  });

  it("catches a changed ON DELETE rule", async () => {
    const db = await migratedWith(`ALTER TABLE journal_tags DROP CONSTRAINT journal_tags_tag_id_fkey,
      ADD CONSTRAINT journal_tags_tag_id_fkey FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE RESTRICT`);
    const res = await runHooks("validate", ["schema", "--manifest", manifestUri], db.env);
    assert.deepEqual(failedChecks(res), ["schema.constraint.journal_tags_tag_id_fkey"]);
    assert.match(res.json.checks.find((c: { ok: boolean }) => !c.ok).detail, /ON DELETE RESTRICT \(expected CASCADE\)/);
  });

  it("catches non-uuid id columns (the unmigrated database)", async () => {
    const res = await runHooks("validate", ["schema", "--manifest", manifestUri], before0.env);
    assertFailed(res, "validate", /schema\.type\.users\.id/);
    const types = res.json.checks.filter((c: { name: string }) => c.name.startsWith("schema.type."));
    assert.equal(types.length, 6);
    assert.ok(types.every((c: { ok: boolean; detail: string }) => !c.ok && c.detail === "integer (expected uuid)"));
    // The data part still matches: same rows, same contents, same relationships.
    const data = await runHooks("validate", ["data", "--manifest", manifestUri, "--uuid-version", "4"], before0.env);
    assert.deepEqual(failedChecks(data), ["data.uuid_version.journal_tags.journal_id", "data.uuid_version.journal_tags.tag_id",
      "data.uuid_version.journals.id", "data.uuid_version.tags.id", "data.uuid_version.users.id"]);
  });

  it("passes a rolled-back database with --id-type integer: sequence defaults, same data", async () => {
    const res = await runHooks("validate", ["schema", "data", "--manifest", manifestUri, "--id-type", "integer"], before0.env);
    assert.equal(res.code, 0, res.stderr);
    const defaults = res.json.checks.filter((c: { name: string }) => c.name.startsWith("schema.default."));
    assert.equal(defaults.length, 3);
    for (const c of defaults) assert.match(c.detail, /^default nextval\('\w+_id_seq'::regclass\)$/);
    // A uuid-typed database is no rollback: its ids fail the integer expectation.
    const uuidDb = await runHooks("validate", ["schema", "--manifest", manifestUri, "--id-type", "integer"], migrated.env);
    assert.ok(failedChecks(uuidDb).includes("schema.default.users.id") && failedChecks(uuidDb).includes("schema.type.users.id"));
  });

  it("catches UUIDs of the wrong version and rejects bad flags with exit 2", async () => {
    const res = await runHooks("validate", ["data", "--manifest", manifestUri, "--uuid-version", "7"], migrated.env);
    assertFailed(res, "validate", /data\.uuid_version\.users\.id/);
    for (const args of [["bogus", "--manifest", manifestUri], ["data"], ["data", "--manifest", manifestUri, "--uuid-version", "x"]]) {
      const bad = await runHooks("validate", args, migrated.env);
      assert.equal(bad.code, 2, `${args.join(" ")}: ${bad.stdout}`);
      assert.equal(bad.json.ok, false);
    }
  });
});
