import assert from "node:assert/strict";
import type { Client } from "pg";
import { connect, connectionFromEnv } from "../../hooks/lib/database/connection";
import { captureState, type DatabaseState } from "../../hooks/lib/proof/manifest";
import { getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";

/**
 * The manifest's fingerprints over every kind of column: natively hashed types, types hashed
 * through their text (json, arrays, enums), a case-insensitive collation, a parent table without
 * content columns. Each case changes one thing and checks that the fingerprint sees it, or that
 * it does not when nothing that matters changed.
 */
describe("manifest fingerprints", function () {
  this.timeout(60_000);
  let pg: PgCluster;
  let db: TestDatabase;
  let client: Client;
  const TABLES = ["owners", "items", "links", "people", "notes"];

  before(async () => {
    pg = await getCluster();
    db = await pg.createDatabase();
    await pg.query(db.name, `
      SET ROLE vibes;
      CREATE TYPE mood AS ENUM ('calm', 'busy');
      CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      CREATE DOMAIN ci_text AS text COLLATE ci;
      CREATE TABLE owners (id serial PRIMARY KEY);
      CREATE TABLE items (
        id serial PRIMARY KEY, owner_id int REFERENCES owners(id),
        name text COLLATE ci, code char(4), qty numeric, ratio double precision, ok boolean, at timestamptz,
        span interval, blob bytea, doc jsonb, raw json, tags text[], m mood, ref uuid, alias ci_text);
      CREATE TABLE links (item_id int REFERENCES items(id), owner_id int REFERENCES owners(id));
      INSERT INTO owners SELECT FROM generate_series(1, 3);
      INSERT INTO items (owner_id, name, code, qty, ratio, ok, at, span, blob, doc, raw, tags, m, ref, alias)
        SELECT 1 + g % 3, 'Name ' || g, 'c' || g, g * 1.5, g / 7.0, g % 2 = 0, '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 hour',
               g * interval '1 minute', decode(md5(g::text), 'hex'), jsonb_build_object('g', g), json_build_object('g', g),
               ARRAY['a' || g, 'b'], (ARRAY['calm', 'busy'])[1 + g % 2]::mood, md5(g::text)::uuid, 'Alias ' || g
          FROM generate_series(1, 50) g;
      INSERT INTO links SELECT id, owner_id FROM items WHERE id % 5 = 0;
      CREATE TABLE people (id serial PRIMARY KEY, email text);
      CREATE TABLE notes (id serial PRIMARY KEY, person_id int REFERENCES people(id), body text, at timestamptz);
      INSERT INTO people (email) SELECT 'p' || g || '@x.org' FROM generate_series(1, 3) g;
      INSERT INTO notes (person_id, body, at) SELECT 1 + g % 3, 'note ' || g, '2026-01-01'::timestamptz + g * interval '1 day' FROM generate_series(1, 6) g;
    `);
    client = await connect(connectionFromEnv(db.env));
  });
  after(async () => {
    await client?.end();
    await pg.dropDatabase(db.name);
  });

  /** As validate takes it after the migration: with the earlier state as the reference. */
  const capture = (reference?: DatabaseState) => captureState(client, TABLES, { reference });

  /** The state with `change` made in the same session, then rolled back. */
  async function withChange(change: string, reference?: DatabaseState): Promise<DatabaseState> {
    await client.query("BEGIN");
    try {
      await client.query(change);
      return await capture(reference);
    } finally {
      await client.query("ROLLBACK");
    }
  }

  const COLUMN_CHANGES: [string, string][] = [
    ["name", "'Name 7 changed'"], ["code", "'zz'"], ["qty", "qty + 0.5"], ["ratio", "ratio * 2"], ["ok", "NOT ok"],
    ["at", "at + interval '1 second'"], ["span", "span * 2"], ["blob", "'\\x00'::bytea"], ["doc", "'{\"g\": -1}'"],
    ["raw", "'{\"g\": -1}'"], ["tags", "ARRAY['x']"], ["m", "CASE m WHEN 'calm' THEN 'busy'::mood ELSE 'calm'::mood END"],
    ["ref", "gen_random_uuid()"],
  ];

  it("computes the fingerprints the manifests already written hold (these values: format 5, also before the parent subqueries)", async () => {
    // A change here makes every manifest written so far incomparable: raise MANIFEST_FORMAT with it.
    const state = await capture();
    assert.deepEqual(Object.fromEntries(Object.entries(state.tables).map(([t, d]) => [t, [d.rows, d.contentFingerprint, d.relationshipFingerprint, d.idFingerprint]])), {
      owners: [3, "4c38a23f6b8df7f76046d1c978d49a08", "4c38a23f6b8df7f76046d1c978d49a08", "73bbd182afbe0ca9d312b37e6ce78536"],
      items: [50, "f7e207b08c5fc77451f0d74d83625019", "b9b61513199de5049dbaf83f3cc00d88", "babae9e090ddd53a4a6dd07bce7d6a00"],
      links: [10, "500b9424ca410fee4720bc8834c51418", "121587d2e3132008e2d55cdb16074ec9", "9962bc387ff14dac9865c8436fd31c00"],
      people: [3, "8e259d96775897b7a2d42d0a6c20759e", "8e259d96775897b7a2d42d0a6c20759e", "ffb6be4ce901daefe970313f6db28a80"],
      notes: [6, "8d2011affddd71b68e9f2b97cb3ac902", "630b52e6cab664f1ca9a22999438e5c9", "8b237781272116cc4daeb203acae2e70"],
    });
  });

  it("changes with any column's value, whatever its type", async () => {
    const before = await capture();
    for (const [column, value] of COLUMN_CHANGES) {
      const changed = await withChange(`UPDATE items SET ${column} = ${value} WHERE id = 7`);
      assert.notEqual(changed.tables.items.contentFingerprint, before.tables.items.contentFingerprint, `a change of ${column} is seen`);
      assert.equal(changed.tables.items.rows, before.tables.items.rows);
    }
    assert.deepEqual(await capture(), before, "rolled back: the same fingerprints again");
  });

  it("sees a change of case under a case-insensitive collation (also through a domain), and a NULL", async () => {
    const before = await capture();
    const upper = await withChange("UPDATE items SET name = upper(name) WHERE id = 3");
    assert.notEqual(upper.tables.items.contentFingerprint, before.tables.items.contentFingerprint);
    const upperAlias = await withChange("UPDATE items SET alias = upper(alias) WHERE id = 3");
    assert.notEqual(upperAlias.tables.items.contentFingerprint, before.tables.items.contentFingerprint);
    const nulled = await withChange("UPDATE items SET doc = NULL WHERE id = 3");
    assert.notEqual(nulled.tables.items.contentFingerprint, before.tables.items.contentFingerprint);
  });

  it("sees values swapped between rows and children swapped between parents (same values per column)", async () => {
    const before = await capture();
    // Notes 1 and 2 belong to people 2 and 3 and have different bodies and times.
    const bodies = await withChange("UPDATE notes SET body = CASE id WHEN 1 THEN 'note 2' ELSE 'note 1' END WHERE id IN (1, 2)");
    assert.notEqual(bodies.tables.notes.contentFingerprint, before.tables.notes.contentFingerprint, "two notes swapped bodies");
    const owners = await withChange("UPDATE notes SET person_id = CASE id WHEN 1 THEN 3 ELSE 2 END WHERE id IN (1, 2)");
    assert.equal(owners.tables.notes.contentFingerprint, before.tables.notes.contentFingerprint, "the notes themselves are unchanged");
    assert.notEqual(owners.tables.notes.relationshipFingerprint, before.tables.notes.relationshipFingerprint, "two notes swapped people");
    const emails = await withChange("UPDATE people SET email = CASE id WHEN 1 THEN 'p2@x.org' ELSE 'p1@x.org' END WHERE id IN (1, 2)");
    assert.equal(emails.tables.people.contentFingerprint, before.tables.people.contentFingerprint, "people's emails as a set are unchanged");
    assert.notEqual(emails.tables.notes.relationshipFingerprint, before.tables.notes.relationshipFingerprint, "but their notes now belong to other emails");
  });

  it("is the same in another session with other date, time zone and float settings, and after the rows move on disk", async () => {
    const before = await capture();
    await client.query("SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'German, DMY'; SET extra_float_digits = -3; SET IntervalStyle = 'sql_standard'");
    await client.query("CLUSTER items USING items_pkey");
    await client.query("VACUUM FULL links");
    assert.deepEqual(await capture(), before);
  });

  it("counts a duplicated row and sees a row moved to another parent, also one without content columns", async () => {
    const before = await capture();
    const duplicated = await withChange("INSERT INTO links SELECT * FROM links LIMIT 1");
    assert.equal(duplicated.tables.links.rows, before.tables.links.rows + 1);
    assert.notEqual(duplicated.tables.links.relationshipFingerprint, before.tables.links.relationshipFingerprint);
    const moved = await withChange("UPDATE links SET item_id = 10 WHERE item_id = 5");
    assert.equal(moved.tables.links.contentFingerprint, before.tables.links.contentFingerprint, "links has no content columns");
    assert.notEqual(moved.tables.links.relationshipFingerprint, before.tables.links.relationshipFingerprint);
    // owners has no content columns: only whether a link has an owner can show, and it does.
    const orphaned = await withChange("ALTER TABLE links DROP CONSTRAINT links_owner_id_fkey; UPDATE links SET owner_id = 99 WHERE item_id = 5", before);
    assert.equal(orphaned.tables.links.contentFingerprint, before.tables.links.contentFingerprint, "the reference's key columns");
    assert.notEqual(orphaned.tables.links.relationshipFingerprint, before.tables.links.relationshipFingerprint);
  });

  it("follows a parent whose key column is named like the identity the pass computes for it", async () => {
    // The parent's subquery names its computed identity "identity", unless a column has that name.
    await pg.query(db.name, `
      SET ROLE vibes;
      CREATE TABLE shelves ("identity" int PRIMARY KEY, "_identity" text);
      CREATE TABLE books (id serial PRIMARY KEY, shelf int REFERENCES shelves("identity"), title text);
      INSERT INTO shelves VALUES (1, 'oak'), (2, 'pine');
      INSERT INTO books (shelf, title) VALUES (1, 'a'), (2, 'b');
    `);
    const shelved = (reference?: DatabaseState) => captureState(client, ["shelves", "books"], { reference });
    const before = await shelved();
    await client.query("BEGIN");
    try {
      await client.query(`UPDATE shelves SET "_identity" = 'elm' WHERE "identity" = 1`);
      const renamed = await shelved(before);
      assert.equal(renamed.tables.books.contentFingerprint, before.tables.books.contentFingerprint);
      assert.notEqual(renamed.tables.books.relationshipFingerprint, before.tables.books.relationshipFingerprint, "the book's shelf changed");
    } finally {
      await client.query("ROLLBACK");
    }
  });

  it("a key column the reference follows but the database lacks is reported, not an SQL error", async () => {
    const before = await capture();
    const renamed = await withChange("ALTER TABLE notes RENAME COLUMN person_id TO owner_id", before);
    assert.match(String(renamed.tables.notes.relationshipFingerprint), /^columns missing: notes\.person_id$/);
    assert.equal(renamed.tables.notes.rows, before.tables.notes.rows);
    assert.equal(renamed.tables.people.contentFingerprint, before.tables.people.contentFingerprint);
  });

  it("refuses a server older than PostgreSQL 14 before reading anything", async () => {
    const queries: string[] = [];
    const old = { query: async (sql: string) => (queries.push(sql), { rows: [{ v: 130011 }] }) } as unknown as Client;
    await assert.rejects(captureState(old, TABLES), /PostgreSQL 13; the manifest's fingerprints need PostgreSQL 14 or later/);
    assert.equal(queries.length, 1);
  });
});
