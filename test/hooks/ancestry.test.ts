import assert from "node:assert/strict";
import type { Client } from "pg";
import { connect, connectionFromEnv } from "../../hooks/lib/database/connection";
import { captureState, compareState, type DatabaseState } from "../../hooks/lib/proof/manifest";
import { uncoveredReferencingTables, tableOids } from "../../hooks/lib/database/tables";
import { getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";

/**
 * A row's identity holds its ancestors' transitively. Two journals with equal title, body and
 * created_at (inserted in one transaction, they share now()) owned by different users: moving
 * their tags, their owners or a comment between them keeps every count and every row's own
 * content, and a fingerprint one level deep would see nothing.
 */
/** The state of `tables` with `change` made and undone again (a transaction rolled back). */
async function stateWithChange(client: Client, tables: string[], change: string, reference: DatabaseState): Promise<DatabaseState> {
  await client.query("BEGIN");
  try {
    await client.query(change);
    return await captureState(client, tables, { reference });
  } finally {
    await client.query("ROLLBACK");
  }
}

describe("relationship fingerprints: ancestors, transitively", function () {
  this.timeout(60_000);
  let pg: PgCluster;
  let db: TestDatabase;
  let client: Client;
  const TABLES = ["users", "journals", "tags", "journal_tags", "comments"];

  before(async () => {
    pg = await getCluster();
    db = await pg.createDatabase();
    await pg.query(db.name, `
      SET ROLE vibes;
      CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL);
      CREATE TABLE journals (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users (id), title text, body text, created_at timestamptz DEFAULT now());
      CREATE TABLE tags (id serial PRIMARY KEY, name text UNIQUE);
      CREATE TABLE journal_tags (journal_id int REFERENCES journals (id), tag_id int REFERENCES tags (id), PRIMARY KEY (journal_id, tag_id));
      CREATE TABLE comments (id serial PRIMARY KEY, journal_id int NOT NULL REFERENCES journals (id), body text);
      BEGIN;
      INSERT INTO users (email) VALUES ('ann@example.com'), ('bob@example.com');
      INSERT INTO journals (user_id, title, body) VALUES (1, 'Monday', 'same words'), (2, 'Monday', 'same words');
      INSERT INTO tags (name) VALUES ('work'), ('home');
      INSERT INTO journal_tags VALUES (1, 1), (2, 2);
      INSERT INTO comments (journal_id, body) VALUES (1, 'nice');
      COMMIT;
    `);
    client = await connect(connectionFromEnv(db.env));
  });
  after(async () => {
    await client?.end();
    await pg.dropDatabase(db.name);
  });

  const withChange = (change: string, reference: DatabaseState) => stateWithChange(client, TABLES, change, reference);
  const failed = (before: DatabaseState, after: DatabaseState, ids = false) =>
    compareState(before, after, { ids }).filter((c) => !c.ok).map((c) => c.name);

  it("the two journals are equal in content: only their owners tell them apart", async () => {
    const [a, b] = await pg.query(db.name, "SELECT title, body, created_at FROM journals ORDER BY id");
    assert.deepEqual(a, b);
  });

  it("sees tags swapped between the two journals", async () => {
    const before = await captureState(client, TABLES);
    const after = await withChange("UPDATE journal_tags SET tag_id = 3 - tag_id", before);
    assert.deepEqual(failed(before, after), ["data.relationships.journal_tags"]);
  });

  it("sees the owners swapped (the journals' tags and comments now hang under the other user)", async () => {
    const before = await captureState(client, TABLES);
    const after = await withChange("UPDATE journals SET user_id = 3 - user_id", before);
    assert.deepEqual(failed(before, after), ["data.relationships.journal_tags", "data.relationships.comments"]);
  });

  it("sees a comment moved to the other journal", async () => {
    const before = await captureState(client, TABLES);
    const after = await withChange("UPDATE comments SET journal_id = 2", before);
    assert.deepEqual(failed(before, after), ["data.relationships.comments"]);
  });

  it("sees the ids renumbered (every link kept) in the id fingerprint only", async () => {
    const before = await captureState(client, TABLES);
    const after = await withChange(`ALTER TABLE journal_tags DROP CONSTRAINT journal_tags_tag_id_fkey;
      UPDATE tags SET id = id + 10; UPDATE journal_tags SET tag_id = tag_id + 10;
      ALTER TABLE journal_tags ADD CONSTRAINT journal_tags_tag_id_fkey FOREIGN KEY (tag_id) REFERENCES tags (id)`, before);
    assert.deepEqual(failed(before, after), [], "the same rows and links");
    assert.deepEqual(failed(before, after, true), ["data.ids.tags", "data.ids.journal_tags"]);
  });

  it("finds uncovered tables whose foreign keys reach the covered ones, transitively", async () => {
    const oids = await tableOids(client, ["users", "journals", "tags", "journal_tags"]);
    await client.query("BEGIN");
    try {
      await client.query("CREATE TABLE comment_votes (comment_id int REFERENCES comments (id))");
      assert.deepEqual(await uncoveredReferencingTables(client, [...oids.values()]), [
        { table: "comment_votes", constraint: "comment_votes_comment_id_fkey", references: "comments" },
        { table: "comments", constraint: "comments_journal_id_fkey", references: "journals" },
      ]);
    } finally {
      await client.query("ROLLBACK");
    }
  });
});

/**
 * A self-reference (people.invited_by) is followed to the end of its chain, also around a loop in
 * the data. Pat and Pat are equal in content; only their inviters, Carl and Dave, tell them apart.
 * Two chains of 25 rows are equal in content but for their first row. Eve, Fay, Eve, Hal invite
 * each other in a loop of four (the two Eves equal in content); Gus hangs below it.
 */
describe("relationship fingerprints: self-references, to the end of the chain", function () {
  this.timeout(60_000);
  let pg: PgCluster;
  let db: TestDatabase;
  let client: Client;
  const TABLES = ["people", "journals"];
  const DEPTH = 25;

  before(async () => {
    pg = await getCluster();
    db = await pg.createDatabase();
    await pg.query(db.name, `
      SET ROLE vibes;
      CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, invited_by int REFERENCES people (id));
      CREATE TABLE journals (id serial PRIMARY KEY, person_id int NOT NULL REFERENCES people (id), title text);
      INSERT INTO people (id, name, invited_by) VALUES (1, 'carl', NULL), (2, 'dave', NULL), (3, 'pat', 1), (4, 'pat', 2), (5, 'kim', 3), (6, 'lee', 4);
      -- Two chains: 101 and 201 at the top, 100 + ${DEPTH} and 200 + ${DEPTH} at the bottom.
      INSERT INTO people (id, name, invited_by)
        SELECT c + g, CASE WHEN g = 1 THEN 'top ' || c ELSE 'deep' END, CASE WHEN g > 1 THEN c + g - 1 END
          FROM generate_series(1, ${DEPTH}) g, (VALUES (100), (200)) v(c);
      -- The loop: 301 eve -> 302 fay -> 303 eve -> 304 hal -> 301; 305 gus below 301.
      INSERT INTO people (id, name) VALUES (301, 'eve'), (302, 'fay'), (303, 'eve'), (304, 'hal'), (305, 'gus');
      UPDATE people SET invited_by = CASE id WHEN 301 THEN 302 WHEN 302 THEN 303 WHEN 303 THEN 304 WHEN 304 THEN 301 WHEN 305 THEN 301 END WHERE id > 300;
      INSERT INTO journals (person_id, title) VALUES (3, 'monday'), (100 + ${DEPTH}, 'deep down'), (305, 'below the loop'), (301, 'in the loop');
    `);
    client = await connect(connectionFromEnv(db.env));
  });
  after(async () => {
    await client?.end();
    await pg.dropDatabase(db.name);
  });

  const withChange = (change: string, reference: DatabaseState) => stateWithChange(client, TABLES, change, reference);
  const failed = (before: DatabaseState, after: DatabaseState) =>
    compareState(before, after, { ids: false }).filter((c) => !c.ok).map((c) => c.name);

  it("sees a journal moved to the other Pat (equal in content, invited by someone else)", async () => {
    const before = await captureState(client, TABLES);
    const after = await withChange("UPDATE journals SET person_id = 4 WHERE person_id = 3", before);
    assert.deepEqual(failed(before, after), ["data.relationships.journals"]);
  });

  it("sees the two Pats' inviters swapped, in their journal and in the people they invited", async () => {
    const before = await captureState(client, TABLES);
    const after = await withChange("UPDATE people SET invited_by = 3 - invited_by WHERE id IN (3, 4)", before);
    assert.deepEqual(failed(before, after), ["data.relationships.people", "data.relationships.journals"]);
  });

  it(`follows a chain ${DEPTH} rows deep: a journal moved to the other chain's bottom, a change at the top`, async () => {
    const before = await captureState(client, TABLES);
    const moved = await withChange(`UPDATE journals SET person_id = 200 + ${DEPTH} WHERE person_id = 100 + ${DEPTH}`, before);
    assert.deepEqual(failed(before, moved), ["data.relationships.journals"]);
    const renamed = await withChange("UPDATE people SET name = 'top 100, renamed' WHERE id = 101", before);
    assert.deepEqual(failed(before, renamed), ["data.content.people", "data.relationships.people", "data.relationships.journals"]);
  });

  it("follows a loop: the same fingerprints after the ids became uuids, a change inside it seen below it, a row's place in it seen", async () => {
    const before = await captureState(client, TABLES);
    assert.deepEqual(await captureState(client, TABLES), before, "the same again");
    // The id change as a migration makes it, uuids in another order than the integers.
    const uuids = await withChange(`
      ALTER TABLE journals DROP CONSTRAINT journals_person_id_fkey;
      ALTER TABLE people DROP CONSTRAINT people_invited_by_fkey;
      ALTER TABLE people ADD COLUMN new_id uuid NOT NULL DEFAULT gen_random_uuid(), ADD COLUMN new_invited_by uuid;
      UPDATE people p SET new_invited_by = i.new_id FROM people i WHERE i.id = p.invited_by;
      ALTER TABLE journals ADD COLUMN new_person_id uuid;
      UPDATE journals j SET new_person_id = p.new_id FROM people p WHERE p.id = j.person_id;
      ALTER TABLE people DROP COLUMN invited_by, DROP COLUMN id;
      ALTER TABLE people RENAME COLUMN new_id TO id;
      ALTER TABLE people RENAME COLUMN new_invited_by TO invited_by;
      ALTER TABLE people ADD PRIMARY KEY (id), ADD FOREIGN KEY (invited_by) REFERENCES people (id);
      ALTER TABLE journals DROP COLUMN person_id;
      ALTER TABLE journals RENAME COLUMN new_person_id TO person_id;
      ALTER TABLE journals ADD FOREIGN KEY (person_id) REFERENCES people (id);
      CLUSTER people USING people_pkey`, before);
    assert.notEqual(uuids.tables.people.idFingerprint, before.tables.people.idFingerprint, "other ids");
    assert.deepEqual(failed(before, uuids), [], "the same rows and links");
    const renamed = await withChange("UPDATE people SET name = 'hal, renamed' WHERE id = 304", before);
    assert.deepEqual(failed(before, renamed), ["data.content.people", "data.relationships.people", "data.relationships.journals"]);
    // Both Eves are in the loop, one invited by Fay, the other by Hal.
    const otherEve = await withChange("UPDATE journals SET person_id = 303 WHERE person_id = 301", before);
    assert.deepEqual(failed(before, otherEve), ["data.relationships.journals"]);
  });

  it("reports a self-reference the database lacks in every table whose identity follows it, not an SQL error", async () => {
    const before = await captureState(client, TABLES);
    const dropped = await withChange("ALTER TABLE people DROP COLUMN invited_by", before);
    assert.equal(dropped.tables.people.relationshipFingerprint, "columns missing: people.invited_by");
    assert.equal(dropped.tables.journals.relationshipFingerprint, "columns missing: people.invited_by");
  });
});

/** Self-references through a composite key (a tenant's tree of nodes) and two of them on one table
 * (staff.manager_id, staff.mentor_id): each chain is followed to its end. */
describe("relationship fingerprints: composite and several self-references", function () {
  this.timeout(60_000);
  let pg: PgCluster;
  let db: TestDatabase;
  let client: Client;
  const TABLES = ["tenants", "nodes", "staff", "tasks"];

  before(async () => {
    pg = await getCluster();
    db = await pg.createDatabase();
    await pg.query(db.name, `
      SET ROLE vibes;
      CREATE TABLE tenants (id serial PRIMARY KEY, name text);
      CREATE TABLE nodes (tenant_id int REFERENCES tenants (id), id int, parent_id int, name text,
        PRIMARY KEY (tenant_id, id), FOREIGN KEY (tenant_id, parent_id) REFERENCES nodes (tenant_id, id));
      CREATE TABLE staff (id serial PRIMARY KEY, title text, manager_id int REFERENCES staff (id), mentor_id int REFERENCES staff (id));
      CREATE TABLE tasks (id serial PRIMARY KEY, staff_id int REFERENCES staff (id), tenant_id int, node_id int, what text,
        FOREIGN KEY (tenant_id, node_id) REFERENCES nodes (tenant_id, id));
      INSERT INTO tenants (name) VALUES ('acme');
      INSERT INTO nodes VALUES (1, 1, NULL, 'root'), (1, 2, 1, 'branch'), (1, 3, 2, 'leaf');
      -- 1 manages 2 manages 3; 4 mentors 5 mentors 3.
      INSERT INTO staff (title) SELECT 'staff' FROM generate_series(1, 5);
      UPDATE staff SET manager_id = CASE id WHEN 2 THEN 1 WHEN 3 THEN 2 END, mentor_id = CASE id WHEN 5 THEN 4 WHEN 3 THEN 5 END;
      INSERT INTO tasks (staff_id, tenant_id, node_id, what) VALUES (3, 1, 3, 'sweep');
    `);
    client = await connect(connectionFromEnv(db.env));
  });
  after(async () => {
    await client?.end();
    await pg.dropDatabase(db.name);
  });

  async function failedAfter(change: string): Promise<string[]> {
    const before = await captureState(client, TABLES);
    await client.query("BEGIN");
    try {
      await client.query(change);
      const after = await captureState(client, TABLES, { reference: before });
      return compareState(before, after, { ids: false }).filter((c) => !c.ok).map((c) => c.name);
    } finally {
      await client.query("ROLLBACK");
    }
  }

  it("sees the root of a composite-key tree renamed in the task on its leaf", async () => {
    assert.deepEqual(await failedAfter("UPDATE nodes SET name = 'trunk' WHERE id = 1"),
      ["data.content.nodes", "data.relationships.nodes", "data.relationships.tasks"]);
  });

  it("sees the top of either chain of staff changed in the task at their bottom", async () => {
    const seen = ["data.content.staff", "data.relationships.staff", "data.relationships.tasks"];
    assert.deepEqual(await failedAfter("UPDATE staff SET title = 'boss' WHERE id = 1"), seen, "the manager chain");
    assert.deepEqual(await failedAfter("UPDATE staff SET title = 'guru' WHERE id = 4"), seen, "the mentor chain");
  });
});
