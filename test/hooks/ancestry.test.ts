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

  async function withChange(change: string, reference: DatabaseState): Promise<DatabaseState> {
    await client.query("BEGIN");
    try {
      await client.query(change);
      return await captureState(client, TABLES, { reference });
    } finally {
      await client.query("ROLLBACK");
    }
  }
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
