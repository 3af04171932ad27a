import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";
import { assertFailed, runHooks, type HooksResult } from "../support/hooks";
import { SCHEMA_EXTRAS } from "./migrateHelpers";
import { PROPERTY_FAULTS } from "../support/faults";

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
    await pg.query(before0.name, SCHEMA_EXTRAS);
    dir = mkdtempSync(join(tmpdir(), "vibes-backups-"));
    const backup = await runHooks("backup", ["--label", "for-001"], { ...before0.env, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: dir });
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
    const res = await runHooks("validate", ["--manifest", manifestUri, "--revision", "001_uuid_schema_migration"], migrated.env);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.json.summary, /^schema\+data\+performance: (\d+)\/\1 checks passed$/);
    const byName = Object.fromEntries(res.json.checks.map((c: { name: string; detail: string }) => [c.name, c.detail]));
    assert.equal(byName["schema.revision"], "001_uuid_schema_migration");
    assert.match(byName["schema.basis"], /the id change to uuid/);
    assert.match(byName["schema.users"], /^as in the snapshot except the id change \(id integer -> uuid, default gen_random_uuid\(\)\)/);
    assert.match(byName["schema.journal_tags"], /journal_id integer -> uuid; tag_id integer -> uuid/);
    assert.match(byName["schema.views"], /journal_titles/);
    assert.match(byName["performance.user_lookup"], /Index Scan using users_pkey/);
    assert.match(byName["performance.journals_by_user"], /using ix_journals_user_id/);
    assert.ok("data.relationships.journal_tags" in byName && "data.orphans.journals_user_id_fkey" in byName);
    assert.ok(!Object.keys(byName).some((n) => n.startsWith("data.ids.")), "ids cannot compare across the id change");
  });

  // Each an upgrade's mistake that keeps every row: only the schema diff can see it.
  for (const [what, sql, failed, detail] of [
    ["a dropped NOT NULL on a foreign key", "ALTER TABLE journals ALTER COLUMN user_id DROP NOT NULL", "schema.column.journals.user_id", /NOT NULL was dropped/],
    ["a dropped CHECK constraint", "ALTER TABLE journals DROP CONSTRAINT journals_title_not_blank", "schema.constraint.journals.journals_title_not_blank", /is missing \(was CHECK/],
    ["a dropped trigger", "DROP TRIGGER journals_keep_created_at ON journals", "schema.trigger.journals.journals_keep_created_at", /is missing/],
    ["a dropped dependent view", "DROP VIEW journal_titles", "schema.view.journal_titles", /is missing \(was .*FROM journals/s],
    ["an added column", "ALTER TABLE users ADD COLUMN legacy_id integer", "schema.column.users.legacy_id", /column legacy_id \(integer\) was added/],
    ["a lost id default", "ALTER TABLE tags ALTER COLUMN id DROP DEFAULT", "schema.column.tags.id", /default none, expected gen_random_uuid\(\)/],
    ["a changed column type", "ALTER TABLE tags ALTER COLUMN name TYPE text", "schema.column.tags.name", /type text, was character varying\(100\)/],
    ["a partial index made whole", "DROP INDEX ix_journal_tags_tag_id; CREATE INDEX ix_journal_tags_tag_id ON journal_tags (tag_id) WHERE tag_id IS NOT NULL",
      "schema.index.journal_tags.ix_journal_tags_tag_id", /is now .*WHERE \(tag_id IS NOT NULL\); was/],
    ...PROPERTY_FAULTS.map((f) => [f.what, f.sql, f.check, f.detail] as const),
  ] as const) {
    it(`catches ${what} after the migration, by name`, async () => {
      const db = await migratedWith(sql);
      const res = await runHooks("validate", ["schema", "data", "--manifest", manifestUri], db.env);
      assertFailed(res, "validate", new RegExp(`validation failed: ${failed.replace(/\./g, "\\.")}$`));
      assert.deepEqual(failedChecks(res), [failed]);
      assert.match(res.json.checks.find((c: { name: string }) => c.name === failed).detail, detail);
    });
  }

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
    // Which row: found in a scratch restore of the backup, named by its content and its owner.
    const journals = res.json.differingRows.find((d: { table: string }) => d.table === "journals");
    assert.equal(journals.by, "content");
    assert.equal(journals.more, false);
    const [was] = journals.onlyInBackup.map((l: string) => JSON.parse(l));
    const [now] = journals.onlyNow.map((l: string) => JSON.parse(l));
    assert.equal(now.content, `${was.content}.`.slice(0, 60));
    assert.equal(now.users.email, was.users.email);
    assert.match(res.stderr, /journals \(content\): 2 rows differ/);
    const tags = res.json.differingRows.find((d: { table: string }) => d.table === "journal_tags");
    assert.equal(tags.by, "relationships", "the tags of the changed journal hang under a changed parent");
  });

  it("catches a journal moved to another user (counts and contents equal), in the journal and in its tags", async () => {
    const db = await migratedWith(`UPDATE journals SET user_id = (SELECT id FROM users WHERE id <> journals.user_id ORDER BY email LIMIT 1)
                                    WHERE id = (SELECT id FROM journals ORDER BY title, id LIMIT 1)`);
    const res = await runHooks("validate", ["schema", "data", "--manifest", manifestUri], db.env);
    assertFailed(res, "validate", /validation failed: data\.relationships\.journals, data\.relationships\.journal_tags$/);
    assert.deepEqual(failedChecks(res), ["data.relationships.journal_tags", "data.relationships.journals"]);
  });

  it("catches an orphaned foreign key, even behind a NOT VALID constraint", async () => {
    const db = await migratedWith(`ALTER TABLE journals DROP CONSTRAINT journals_user_id_fkey;
      UPDATE journals SET user_id = gen_random_uuid() WHERE id = (SELECT id FROM journals ORDER BY title, id LIMIT 1);
      ALTER TABLE journals ADD CONSTRAINT journals_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE NOT VALID`);
    const res = await runHooks("validate", ["schema", "data", "--manifest", manifestUri], db.env);
    assertFailed(res, "validate", /data\.orphans\.journals_user_id_fkey/);
    assert.deepEqual(failedChecks(res), ["data.orphans.journals_user_id_fkey", "data.relationships.journal_tags", "data.relationships.journals",
      "schema.constraint.journals.journals_user_id_fkey"]);
    const byName = Object.fromEntries(res.json.checks.map((c: { name: string; detail: string }) => [c.name, c.detail]));
    assert.match(byName["data.orphans.journals_user_id_fkey"], /^1 rows of journals/);
    assert.match(byName["schema.constraint.journals.journals_user_id_fkey"], /is NOT VALID now/);
  });

  it("catches a dropped index (schema) and the lookup that no longer uses it (performance)", async () => {
    const db = await migratedWith("DROP INDEX ix_journals_user_id");
    const res = await runHooks("validate", ["schema", "performance", "--manifest", manifestUri], db.env);
    assertFailed(res, "validate", /schema\.index\.journals\.ix_journals_user_id/);
    assert.deepEqual(failedChecks(res), ["performance.journals_by_user", "schema.index.journals.ix_journals_user_id"]);
  });

  it("catches a changed ON DELETE rule", async () => {
    const db = await migratedWith(`ALTER TABLE journal_tags DROP CONSTRAINT journal_tags_tag_id_fkey,
      ADD CONSTRAINT journal_tags_tag_id_fkey FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE RESTRICT`);
    const res = await runHooks("validate", ["schema", "--manifest", manifestUri], db.env);
    assert.deepEqual(failedChecks(res), ["schema.constraint.journal_tags.journal_tags_tag_id_fkey"]);
    assert.match(res.json.checks.find((c: { ok: boolean }) => !c.ok).detail, /is now FOREIGN KEY \(tag_id\) REFERENCES tags\(id\) ON DELETE RESTRICT; was .*ON DELETE CASCADE/);
  });

  it("proves the unmigrated database unchanged, ids too, and --revision says it is not migrated", async () => {
    const same = await runHooks("validate", ["schema", "data", "--manifest", manifestUri], before0.env);
    assert.equal(same.code, 0, same.stderr);
    assert.ok(same.json.checks.some((c: { name: string }) => c.name === "data.ids.journals"), "at the backup's revision the ids compare");
    const res = await runHooks("validate", ["schema", "data", "--manifest", manifestUri, "--revision", "001_uuid_schema_migration"], before0.env);
    assertFailed(res, "validate", /validation failed: schema\.revision$/);
    assert.equal(res.json.checks.find((c: { name: string }) => c.name === "schema.revision").detail, "0000_initial (expected 001_uuid_schema_migration)");
    const renumbered = await pg.createDatabase(undefined, before0.name);
    made.push(renumbered.name);
    // Same rows and links, the ids shifted by one: what a down command that renumbers does.
    await pg.query(renumbered.name, `ALTER TABLE journal_tags DROP CONSTRAINT journal_tags_tag_id_fkey,
      ADD CONSTRAINT journal_tags_tag_id_fkey FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE ON UPDATE CASCADE;
      UPDATE tags SET id = id + 1000; SELECT setval('tags_id_seq', 2000);
      ALTER TABLE journal_tags DROP CONSTRAINT journal_tags_tag_id_fkey,
      ADD CONSTRAINT journal_tags_tag_id_fkey FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE`);
    const ids = await runHooks("validate", ["schema", "data", "--manifest", manifestUri], renumbered.env);
    assertFailed(ids, "validate", /validation failed: data\.ids\.tags, data\.ids\.journal_tags$/);
  });

  it("checks a rolled-back database against a backup taken after the migration: a sequence default on each integer id", async () => {
    const dir001 = mkdtempSync(join(tmpdir(), "vibes-backups-"));
    try {
      const backup = await runHooks("backup", ["--label", "for-0000_initial"], { ...migrated.env, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: dir001 });
      assert.equal(backup.code, 0, backup.stderr);
      assert.match(backup.json.uri, /_at-001_uuid_schema_migration_for-0000_initial\.dump$/);
      const res = await runHooks("validate", ["schema", "data", "--manifest", backup.json.manifestUri, "--id-type", "integer"], before0.env);
      assert.equal(res.code, 0, res.stderr);
      const byName = Object.fromEntries(res.json.checks.map((c: { name: string; detail: string }) => [c.name, c.detail]));
      assert.match(byName["schema.users"], /id uuid -> integer, default a sequence/);
      assert.match(byName["schema.sequence.users.id"], /past the largest id/);
      // A downgrade that recreates the integer ids without their nextval() default.
      const noDefault = await pg.createDatabase(undefined, before0.name);
      made.push(noDefault.name);
      await pg.query(noDefault.name, "ALTER TABLE users ALTER COLUMN id DROP DEFAULT");
      const broken = await runHooks("validate", ["schema", "--manifest", backup.json.manifestUri, "--id-type", "integer"], noDefault.env);
      assert.deepEqual(failedChecks(broken), ["schema.column.users.id"]);
      assert.match(broken.json.checks.find((c: { ok: boolean }) => !c.ok).detail, /expected a sequence's nextval\(\) or an identity/);
      // A uuid-typed database is no rollback: its ids fail the integer expectation.
      const uuidDb = await runHooks("validate", ["schema", "--manifest", manifestUri, "--id-type", "integer"], migrated.env);
      assert.ok(failedChecks(uuidDb).includes("schema.column.users.id"));
      assert.match(uuidDb.json.checks.find((c: { name: string }) => c.name === "schema.column.users.id").detail, /type uuid, expected integer/);
    } finally {
      rmSync(dir001, { recursive: true, force: true });
    }
  });

  it("checks the uuid version it is told (4, 7, any) and rejects bad flags with exit 2", async () => {
    const res = await runHooks("validate", ["data", "--manifest", manifestUri, "--uuid-version", "7"], migrated.env);
    assertFailed(res, "validate", /data\.uuid_version\.users\.id/);
    assert.deepEqual(failedChecks(res), ["data.uuid_version.journals.id", "data.uuid_version.tags.id", "data.uuid_version.users.id"]);
    const any = await runHooks("validate", ["data", "--manifest", manifestUri, "--uuid-version", "any"], migrated.env);
    assert.equal(any.code, 0, any.stderr);
    for (const args of [["bogus", "--manifest", manifestUri], ["data"], ["data", "--manifest", manifestUri, "--uuid-version", "x"],
      ["data", "--manifest", manifestUri, "--revision", "a b"], ["data", "--manifest", manifestUri, "--id-default", " "]]) {
      const bad = await runHooks("validate", args, migrated.env);
      assert.equal(bad.code, 2, `${args.join(" ")}: ${bad.stdout}`);
      assert.equal(bad.json.ok, false);
    }
  });
});
