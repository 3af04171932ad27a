// The online id change (hooks/online/) on real PostgreSQL: the sample schema (users, journals,
// tags, journal_tags) and a schema unlike it (schema-qualified, a self-reference with ON DELETE
// SET NULL, a composite primary key, app-made uuids). Each phase is proven: the links through
// the uuid keys against those through the integer keys, the schema against the offline
// migration's, the rollbacks against the state before.
import assert from "node:assert/strict";
import type { Client } from "pg";
import type { Check } from "../../common/types";
import { connect, connectionFromEnv } from "../../hooks/lib/database/connection";
import { tableOids } from "../../hooks/lib/database/tables";
import { captureState, compareState, type DatabaseState, type Manifest } from "../../hooks/lib/proof/manifest";
import { idChangeFrom } from "../../hooks/lib/proof/proof";
import { diffSchema, readSchemaSnapshot, type SchemaSnapshot } from "../../hooks/lib/proof/schemaSnapshot";
import { backfill } from "../../hooks/online/backfill";
import { buildConstraints } from "../../hooks/online/constraints";
import { expand } from "../../hooks/online/expand";
import { readPhase, readPlan, type OnlinePlan } from "../../hooks/online/plan";
import { proveBeforeSwap } from "../../hooks/online/proof";
import { rollback } from "../../hooks/online/rollback";
import { contract, swap } from "../../hooks/online/swap";
import { assertSecretAbsent, runHooks } from "../support/hooks";
import { getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";

const SAMPLE = ["users", "journals", "tags", "journal_tags"];

const failed = (checks: Check[]) => checks.filter((c) => !c.ok);

describe("online id change (hooks/online)", function () {
  this.timeout(300_000);
  let pg: PgCluster;
  const clients: Client[] = [];
  const logs: string[] = [];
  const log = (m: string) => logs.push(m);

  before(async () => {
    pg = await getCluster();
  });
  afterEach(async () => {
    while (clients.length > 0) await clients.pop()!.end().catch(() => undefined);
  });

  async function client(db: TestDatabase, name = "test"): Promise<Client> {
    const c = await connect(connectionFromEnv(db.env), { applicationName: `vibes-hooks online ${name}` });
    clients.push(c);
    return c;
  }

  async function state(c: Client, tables: string[], reference?: DatabaseState, ids = true): Promise<DatabaseState> {
    await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    try {
      return await captureState(c, tables, { reference, ids, relationships: true });
    } finally {
      await c.query("COMMIT");
    }
  }

  async function snapshot(c: Client, tables: string[]): Promise<SchemaSnapshot> {
    return readSchemaSnapshot(c, await tableOids(c, tables));
  }

  /** Expand, backfill, indexes and constraints: ready for the proof and the swap. */
  async function prepare(c: Client, plan: OnlinePlan): Promise<void> {
    await expand(c, plan, { log });
    const b = await backfill(c, plan, { batchSize: 7, log });
    assert.equal(b.completed, true);
    await buildConstraints(c, plan, { log });
  }

  const idChange = (before: DatabaseState, idDefault: string | null) => idChangeFrom(before as Manifest, { idType: "uuid", idDefault });

  /** The only differences the swap leaves until contract: the integer columns and indexes kept
   * under names of their own, and the triggers. */
  function onlyKeptIntegerSide(checks: Check[]): Check[] {
    return failed(checks).filter((c) => !/^schema\.(column|index)\.[^ ]+__int$/.test(c.name) && !/^schema\.trigger\.[^ ]+__uuid_sync$/.test(c.name));
  }

  it("sample schema: plans parents first, backfills, proves, swaps in milliseconds, and after contract equals the offline migration", async () => {
    const db = await pg.createVibesDatabase({ users: 30, journalsPerUser: 3 });
    const c = await client(db);
    const before = await state(c, SAMPLE);
    const plan = await readPlan(c, SAMPLE);
    assert.deepEqual(plan.tables.map((t) => t.table), ["users", "journals", "tags", "journal_tags"]);
    assert.deepEqual(plan.tables.find((t) => t.table === "journal_tags")!.indexes.map((i) => [i.name, i.constraint]).sort(),
      [["ix_journal_tags_tag_id", null], ["journal_tags_pkey", "p"]]);
    assert.equal(await readPhase(c, plan), "initial");

    await prepare(c, plan);
    const proof = await proveBeforeSwap(c, plan, { tables: SAMPLE, expected: before, uuidVersion: 4 });
    assert.deepEqual(failed(proof.checks), []);
    assert.ok(proof.checks.some((k) => k.name === "online.link.journal_tags.journal_tags_journal_id_fkey"));

    const swapped = await swap(c, plan, { log });
    log(`sample swap hold: ${swapped.holdMs.toFixed(1)} ms`);
    assert.ok(swapped.holdMs < 1000, `held ${swapped.holdMs} ms`);
    assert.equal(await readPhase(c, plan), "swapped");
    assert.deepEqual(onlyKeptIntegerSide(diffSchema(before.schema, await snapshot(c, SAMPLE), idChange(before, "gen_random_uuid()"))), []);
    // Same rows, same links, now through the uuid keys.
    assert.deepEqual(failed(compareState(before, await state(c, SAMPLE, before, false), { ids: false })), []);

    await contract(c, plan, { log });
    assert.equal(await readPhase(c, plan), "contracted");
    const online = await snapshot(c, SAMPLE);
    assert.deepEqual(failed(diffSchema(before.schema, online, idChange(before, "gen_random_uuid()"))), []);
    // The offline migration of the same data, compared exactly: what the app sees is the same.
    const offlineDb = await pg.createVibesDatabase({ users: 30, journalsPerUser: 3 });
    await pg.runApp(offlineDb.env, ["-m", "alembic", "upgrade", "001_uuid_schema_migration"], "alembic upgrade");
    const offline = await snapshot(await client(offlineDb, "offline"), SAMPLE);
    assert.deepEqual(failed(diffSchema(offline, online)), []);
    assert.deepEqual(failed(compareState(before, await state(c, SAMPLE, before, false), { ids: false })), []);
    await pg.dropDatabase(db.name);
    await pg.dropDatabase(offlineDb.name);
  });

  it("keeps and proves every write made from another session during the backfill, and after the swap; the swap reversed keeps them too", async () => {
    const db = await pg.createVibesDatabase({ users: 40, journalsPerUser: 5 });
    const c = await client(db);
    const w = await client(db, "writer");
    const original = await state(c, SAMPLE);
    const plan = await readPlan(c, SAMPLE);
    await expand(c, plan, { log });
    // The old app: integer columns only, inserts and FK changes, while the backfill runs.
    const written: { journal: number; user: number; tag: number }[] = [];
    let writing = true;
    let duringBackfill = 0;
    const writer = (async () => {
      for (let i = 0; writing || i < 20; i++) {
        const u = (await w.query("INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id", [`w${i}@example.com`])).rows[0].id;
        const oldUser = (await w.query("SELECT id FROM users ORDER BY random() LIMIT 1")).rows[0].id;
        const j = (await w.query("INSERT INTO journals (user_id, title, content) VALUES ($1, $2, 'c') RETURNING id", [oldUser, `t${i}`])).rows[0].id;
        const tag = (await w.query("INSERT INTO tags (name) VALUES ($1) RETURNING id", [`tag${i}`])).rows[0].id;
        await w.query("INSERT INTO journal_tags (journal_id, tag_id) VALUES ($1, $2)", [j, tag]);
        // An old journal moves to the new user: its uuid must follow.
        const moved = (await w.query("UPDATE journals SET user_id = $1 WHERE id = (SELECT id FROM journals ORDER BY random() LIMIT 1) RETURNING id", [u])).rows[0].id;
        written.push({ journal: j, user: oldUser, tag }, { journal: moved, user: u, tag: -1 });
        if (writing) duringBackfill++;
      }
    })();
    const b = await backfill(c, plan, { batchSize: 5, pauseMs: 2, log, afterBatch: () => new Promise((r) => setImmediate(r)) });
    writing = false;
    await writer;
    assert.equal(b.completed, true);
    assert.ok(duringBackfill >= 5, `only ${duringBackfill} rounds of writes while the backfill ran`);
    await buildConstraints(c, plan, { log });
    const proof = await proveBeforeSwap(c, plan, { tables: SAMPLE, uuidVersion: 4 });
    assert.deepEqual(failed(proof.checks), []);
    await swap(c, plan, { log });
    // Every acknowledged write, with its links, through the uuid keys.
    for (const x of written) {
      const r = (await c.query(`SELECT u.id__int AS user FROM journals j JOIN users u ON u.id = j.user_id WHERE j.id__int = $1`, [x.journal])).rows;
      const last = written.filter((y) => y.journal === x.journal).at(-1)!;
      assert.equal(r[0]?.user, last.user, `journal ${x.journal}`);
      if (x.tag > 0) assert.equal((await c.query(`SELECT count(*)::int AS n FROM journal_tags jt JOIN journals j ON j.id = jt.journal_id JOIN tags t ON t.id = jt.tag_id WHERE j.id__int = $1 AND t.id__int = $2`, [x.journal, x.tag])).rows[0].n, 1);
    }
    // The new app writes uuids only; the triggers keep the integer side for a rollback.
    const nu = (await w.query("INSERT INTO users (email, password_hash) VALUES ('new@example.com', 'x') RETURNING id")).rows[0].id;
    const nj = (await w.query("INSERT INTO journals (user_id, title, content) VALUES ($1, 'after', 'swap') RETURNING id", [nu])).rows[0].id;
    await w.query("INSERT INTO journal_tags (journal_id, tag_id) SELECT $1, id FROM tags ORDER BY name LIMIT 1", [nj]);
    const firstJournal = (await w.query("SELECT min(id__int) AS j FROM journals")).rows[0].j;
    await w.query("UPDATE journals SET user_id = $1 WHERE id__int = $2", [nu, firstJournal]);
    const afterSwap = await state(c, SAMPLE, original, false);
    const reversed = await rollback(c, plan, { log });
    assert.equal(reversed.from, "swapped");
    log(`swap reversed hold: ${reversed.holdMs.toFixed(1)} ms`);
    assert.equal(await readPhase(c, plan), "initial");
    // Proven: the schema is the one before, and the rows and links are those before the rollback.
    assert.deepEqual(failed(diffSchema(original.schema, await snapshot(c, SAMPLE))).map((k) => k.detail), []);
    assert.deepEqual(failed(compareState(afterSwap, await state(c, SAMPLE, original, false), { ids: false })), []);
    const r = (await c.query("SELECT u.email FROM journals j JOIN users u ON u.id = j.user_id WHERE j.title = 'after' OR j.id = $1 ORDER BY j.id", [firstJournal])).rows;
    assert.deepEqual(r.map((x) => x.email), ["new@example.com", "new@example.com"]);
    await pg.dropDatabase(db.name);
  });

  it("resumes a backfill killed with SIGKILL, from the database alone, and proves the result", async () => {
    const db = await pg.createVibesDatabase({ users: 200, journalsPerUser: 5 });
    const c = await client(db);
    const before = await state(c, SAMPLE);
    const plan = await readPlan(c, SAMPLE);
    await expand(c, plan, { log });
    let pid = 0;
    const killed = runHooks("online", ["backfill", "--batch-size", "10", "--pause-ms", "20"], { ...db.env, VIBES_TABLES: SAMPLE.join(",") }, { onSpawn: (p) => (pid = p) });
    // Killed halfway through the journals' ids.
    for (let i = 0; ; i++) {
      const n = (await c.query("SELECT count(id__uuid)::int AS n FROM journals")).rows[0].n;
      if (n > 100) break;
      assert.ok(i < 600, "the CLI backfilled nothing");
      await new Promise((r) => setTimeout(r, 50));
    }
    process.kill(pid, "SIGKILL");
    const res = await killed;
    assert.deepEqual([res.code, res.json], [-1, null], res.stdout);
    assertSecretAbsent(res, pg.password);
    assert.match(res.stderr, /backfill users ids: \d+ rows written.*rows\/s/);
    const left = (await c.query("SELECT count(*) FILTER (WHERE id__uuid IS NULL)::int AS n FROM journals")).rows[0].n;
    assert.ok(left > 0, "killed after the end: nothing left to resume");
    const before2 = (await c.query("SELECT id, id__uuid FROM journals WHERE id__uuid IS NOT NULL")).rows;
    const resumed = await backfill(c, plan, { batchSize: 50, log });
    assert.equal(resumed.completed, true);
    assert.equal(resumed.rows.journals.ids, left, "the re-run wrote exactly the rows left");
    // What the killed run wrote was kept, not written again.
    const kept = new Map((await c.query("SELECT id, id__uuid FROM journals")).rows.map((r) => [r.id, r.id__uuid]));
    for (const r of before2) assert.equal(kept.get(r.id), r.id__uuid);
    await buildConstraints(c, plan, { log });
    assert.deepEqual(failed((await proveBeforeSwap(c, plan, { tables: SAMPLE, expected: before, uuidVersion: 4 })).checks), []);
    await pg.dropDatabase(db.name);
  });

  it("stops between batches when told to, and a re-run continues", async () => {
    const db = await pg.createVibesDatabase({ users: 30, journalsPerUser: 2 });
    const c = await client(db);
    const plan = await readPlan(c, SAMPLE);
    await expand(c, plan, { log });
    let batches = 0;
    const first = await backfill(c, plan, { batchSize: 4, log, stop: () => batches >= 3, afterBatch: () => void batches++ });
    assert.equal(first.completed, false);
    assert.equal(first.rows.users.ids, 12);
    const second = await backfill(c, plan, { batchSize: 4, log });
    assert.equal(second.completed, true);
    assert.equal(second.rows.users.ids, 18);
    await pg.dropDatabase(db.name);
  });

  it("a swap that cannot get its locks retries, then stops with the old schema serving; later it goes through", async () => {
    const db = await pg.createVibesDatabase({ users: 10, journalsPerUser: 2 });
    const c = await client(db);
    const plan = await readPlan(c, SAMPLE);
    await prepare(c, plan);
    const schema = await snapshot(c, SAMPLE);
    const holder = await client(db, "holder");
    await holder.query("BEGIN");
    await holder.query("SELECT count(*) FROM journal_tags"); // a reader's ACCESS SHARE lock, held
    const lines: string[] = [];
    await assert.rejects(swap(c, plan, { lockTimeoutMs: 50, attempts: 4, backoffMs: 10, log: (m) => lines.push(m) }),
      /swap: could not take its locks in 4 attempts of 50 ms.*nothing of it was applied/);
    assert.equal(lines.filter((l) => /lock not granted/.test(l)).length, 3);
    assert.equal(await readPhase(c, plan), "expanded");
    assert.deepEqual(failed(diffSchema(schema, await snapshot(c, SAMPLE))), []);
    // The old app still writes, and its rows get their uuids.
    const w = await client(db, "writer");
    const j = (await w.query("INSERT INTO journals (user_id, title, content) VALUES ((SELECT min(id) FROM users), 'during', 'refusal') RETURNING id__uuid, user_id__uuid")).rows[0];
    assert.ok(j.id__uuid && j.user_id__uuid);
    await holder.query("COMMIT");
    const done = await swap(c, plan, { log });
    log(`swap after the refusal hold: ${done.holdMs.toFixed(1)} ms`);
    assert.equal(await readPhase(c, plan), "swapped");
    await pg.dropDatabase(db.name);
  });

  it("rollback before the swap drops what expand added: schema, ids, links and content as before", async () => {
    const db = await pg.createVibesDatabase({ users: 20, journalsPerUser: 3 });
    const c = await client(db);
    const before = await state(c, SAMPLE);
    const plan = await readPlan(c, SAMPLE);
    await prepare(c, plan);
    const r = await rollback(c, plan, { log });
    assert.equal(r.from, "expanded");
    assert.equal(await readPhase(c, plan), "initial");
    assert.deepEqual(failed(diffSchema(before.schema, await snapshot(c, SAMPLE))), []);
    assert.deepEqual(failed(compareState(before, await state(c, SAMPLE, before), { ids: true })), []);
    // Again from the start, it all works a second time.
    await prepare(c, plan);
    assert.deepEqual(failed((await proveBeforeSwap(c, plan, { tables: SAMPLE, expected: before })).checks), []);
    await pg.dropDatabase(db.name);
  });

  it("a child written before its parent was backfilled gives the parent its new id first; an FK change is followed", async () => {
    const db = await pg.createVibesDatabase({ users: 10, journalsPerUser: 1 });
    const c = await client(db);
    const plan = await readPlan(c, SAMPLE);
    await expand(c, plan, { log });
    const [first, second] = (await c.query("SELECT id FROM users ORDER BY id LIMIT 2")).rows.map((r) => r.id);
    const j = (await c.query("INSERT INTO journals (user_id, title, content) VALUES ($1, 'early', 'x') RETURNING id, id__uuid, user_id__uuid", [first])).rows[0];
    const u = (await c.query("SELECT id__uuid FROM users WHERE id = $1", [first])).rows[0];
    assert.ok(u.id__uuid);
    assert.equal(j.user_id__uuid, u.id__uuid);
    assert.equal((await c.query("SELECT count(id__uuid)::int AS n FROM users")).rows[0].n, 1, "only that parent");
    await c.query("UPDATE journals SET user_id = $2 WHERE id = $1", [j.id, second]);
    const moved = (await c.query("SELECT j.user_id__uuid = u.id__uuid AS ok FROM journals j JOIN users u ON u.id = $2 WHERE j.id = $1", [j.id, second])).rows[0];
    assert.equal(moved.ok, true);
    await c.query("INSERT INTO journal_tags (journal_id, tag_id) VALUES ($1, 2)", [j.id]);
    assert.ok((await c.query("SELECT tag_id__uuid FROM journal_tags WHERE journal_id = $1", [j.id])).rows[0].tag_id__uuid);
    const b = await backfill(c, plan, { batchSize: 3, log });
    assert.equal(b.rows.users.ids, 8, "the two parents given their ids early were not written again");
    await buildConstraints(c, plan, { log });
    assert.deepEqual(failed((await proveBeforeSwap(c, plan, { tables: SAMPLE })).checks), []);
    // The proof can fail: one journal pointed at another user through its uuid only (a link the
    // constraints cannot see wrong: the proof is what gates the swap).
    await c.query("UPDATE journals SET user_id__uuid = (SELECT id__uuid FROM users WHERE id = $1) WHERE id = (SELECT min(id) FROM journals WHERE user_id <> $1)", [first]);
    const wrong = await proveBeforeSwap(c, plan, { tables: SAMPLE });
    assert.deepEqual(failed(wrong.checks).map((k) => k.name).sort(), ["online.link.journals.journals_user_id_fkey", "online.relationships.journal_tags", "online.relationships.journals"]);
    await pg.dropDatabase(db.name);
  });

  it("finds an INVALID index a failed concurrent build left, drops and rebuilds it; the swap's hold does not grow with the size", async () => {
    const db = await pg.createVibesDatabase({ users: 1000, journalsPerUser: 20 });
    const c = await client(db);
    const before = await state(c, SAMPLE);
    const plan = await readPlan(c, SAMPLE);
    await expand(c, plan, { log });
    const filled = await backfill(c, plan, { batchSize: 2000, log });
    assert.deepEqual([filled.completed, filled.rows.journals.ids], [true, 20_000]);
    // A build that failed halfway (division by zero) leaves an INVALID index under the twin's name.
    await assert.rejects(c.query("CREATE UNIQUE INDEX CONCURRENTLY journals_pkey__uuid ON journals ((1 / (id - id)))"), /division by zero/);
    assert.equal((await c.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'journals_pkey__uuid'::regclass")).rows[0].indisvalid, false);
    const lines: string[] = [];
    await buildConstraints(c, plan, { log: (m) => (lines.push(m), log(m)) });
    assert.ok(lines.some((l) => /journals_pkey__uuid: an INVALID one is left/.test(l)), lines.join("\n"));
    const def = (await c.query("SELECT indisvalid, pg_get_indexdef(indexrelid) AS d FROM pg_index WHERE indexrelid = 'journals_pkey__uuid'::regclass")).rows[0];
    assert.deepEqual([def.indisvalid, def.d], [true, "CREATE UNIQUE INDEX journals_pkey__uuid ON public.journals USING btree (id__uuid)"]);
    assert.deepEqual(failed((await proveBeforeSwap(c, plan, { tables: SAMPLE, expected: before, uuidVersion: 4 })).checks), []);
    const swapped = await swap(c, plan, { log });
    log(`swap hold at 1000 users, 20000 journals: ${swapped.holdMs.toFixed(1)} ms`);
    assert.ok(swapped.holdMs < 1000, `held ${swapped.holdMs} ms`);
    await pg.dropDatabase(db.name);
  });

  const CRM = `
    CREATE SCHEMA crm;
    CREATE TABLE crm.countries (code char(2) PRIMARY KEY, name text NOT NULL);
    CREATE TABLE crm.users (id serial PRIMARY KEY, email text NOT NULL UNIQUE, country_code char(2) NOT NULL REFERENCES crm.countries (code));
    COMMENT ON COLUMN crm.users.id IS 'the user';
    CREATE TABLE crm.employees (
      id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
      user_id int NOT NULL REFERENCES crm.users (id) ON DELETE CASCADE,
      manager_id bigint REFERENCES crm.employees (id) ON DELETE SET NULL,
      title text NOT NULL);
    CREATE INDEX employees_manager_idx ON crm.employees (manager_id);
    CREATE TABLE crm.memberships (user_id int REFERENCES crm.users (id), team text, since date NOT NULL, PRIMARY KEY (user_id, team),
      CONSTRAINT memberships_team_user_key UNIQUE (team, user_id));
    CREATE TABLE crm.settings (key text PRIMARY KEY, value text);
    INSERT INTO crm.countries VALUES ('DE', 'Germany'), ('FR', 'France');
    INSERT INTO crm.users (email, country_code) SELECT 'u' || g || '@example.com', (ARRAY['DE', 'FR'])[1 + g % 2] FROM generate_series(1, 40) g;
    INSERT INTO crm.employees (user_id, title) SELECT id, 'engineer' FROM crm.users ORDER BY id DESC;
    -- Managers with later ids than their reports, a chain, and a loop (1 <-> 2).
    UPDATE crm.employees SET manager_id = CASE WHEN id > 3 THEN 1 + (id * 7) % 40 WHEN id = 1 THEN 2 WHEN id = 2 THEN 1 END;
    INSERT INTO crm.memberships SELECT id, team, date '2026-01-01' + id FROM crm.users, (VALUES ('red'), ('blue')) t(team) WHERE id % 3 <> 0;
    INSERT INTO crm.settings VALUES ('theme', 'dark');`;
  const CRM_TABLES = ["crm.countries", "crm.users", "crm.employees", "crm.memberships", "crm.settings"];

  it("a schema unlike the sample: schema-qualified, a self-reference (ON DELETE SET NULL, loops), an identity id, a composite key, app-made uuids", async () => {
    const db = await pg.createDatabase();
    await pg.query(db.name, `SET ROLE vibes; ${CRM}`);
    const c = await client(db);
    const before = await state(c, CRM_TABLES);
    const plan = await readPlan(c, CRM_TABLES, { idDefault: null });
    assert.deepEqual(plan.tables.map((t) => t.table), ["crm.users", "crm.employees", "crm.memberships"]);
    assert.equal(plan.tables.find((t) => t.table === "crm.memberships")!.batchColumn, "user_id");
    await expand(c, plan, { log });
    // Before the backfill: a report whose manager (same table) has no new id yet, a self-managed
    // row, and a manager deleted (ON DELETE SET NULL through the integer key).
    const w = await client(db, "writer");
    const boss = (await w.query("SELECT max(id) AS id FROM crm.employees")).rows[0].id;
    const e = (await w.query("INSERT INTO crm.employees (user_id, manager_id, title) VALUES ((SELECT min(id) FROM crm.users), $1, 'intern') RETURNING id, manager_id__uuid", [boss])).rows[0];
    assert.equal(e.manager_id__uuid, (await w.query("SELECT id__uuid FROM crm.employees WHERE id = $1", [boss])).rows[0].id__uuid);
    assert.ok(e.manager_id__uuid);
    const self = (await w.query("INSERT INTO crm.employees (id, user_id, manager_id, title) VALUES (1000, (SELECT min(id) FROM crm.users), 1000, 'founder') RETURNING id__uuid, manager_id__uuid")).rows[0];
    assert.equal(self.manager_id__uuid, self.id__uuid);
    await w.query("DELETE FROM crm.employees WHERE id = 5");
    const b = await backfill(c, plan, { batchSize: 6, log });
    assert.equal(b.completed, true);
    await w.query("UPDATE crm.employees SET manager_id = 7 WHERE id = 9");
    await buildConstraints(c, plan, { log });
    const proof = await proveBeforeSwap(c, plan, { tables: CRM_TABLES });
    assert.deepEqual(failed(proof.checks), []);
    const expanded = await state(c, CRM_TABLES, before, false);
    const swapped = await swap(c, plan, { log });
    log(`crm swap hold: ${swapped.holdMs.toFixed(1)} ms`);
    assert.deepEqual(onlyKeptIntegerSide(diffSchema(before.schema, await snapshot(c, CRM_TABLES), idChange(before, null))), []);
    assert.deepEqual(failed(compareState(expanded, await state(c, CRM_TABLES, before, false), { ids: false })), []);
    // The new app: its own uuids; the integer side follows for a rollback.
    const u = (await w.query("INSERT INTO crm.users (id, email, country_code) VALUES (gen_random_uuid(), 'new@example.com', 'DE') RETURNING id, id__int")).rows[0];
    assert.ok(u.id__int > 40);
    const n = (await w.query("INSERT INTO crm.employees (id, user_id, manager_id, title) VALUES (gen_random_uuid(), $1, (SELECT id FROM crm.employees WHERE id__int = 1000), 'new') RETURNING user_id__int, manager_id__int", [u.id])).rows[0];
    assert.deepEqual([n.user_id__int, Number(n.manager_id__int)], [u.id__int, 1000]);
    await assert.rejects(w.query("INSERT INTO crm.users (email, country_code) VALUES ('noid@example.com', 'DE')"), /null value in column "id"/);
    await contract(c, plan, { log });
    assert.deepEqual(failed(diffSchema(before.schema, await snapshot(c, CRM_TABLES), idChange(before, null))), []);
    await pg.dropDatabase(db.name);
  });

  it("the swap reversed on the other schema: ids, links and content as before the change", async () => {
    const db = await pg.createDatabase();
    await pg.query(db.name, `SET ROLE vibes; ${CRM}`);
    const c = await client(db);
    const before = await state(c, CRM_TABLES);
    const plan = await readPlan(c, CRM_TABLES, { idDefault: null });
    await prepare(c, plan);
    await swap(c, plan, { log });
    await rollback(c, plan, { log });
    assert.equal(await readPhase(c, plan), "initial");
    assert.deepEqual(failed(diffSchema(before.schema, await snapshot(c, CRM_TABLES))), []);
    assert.deepEqual(failed(compareState(before, await state(c, CRM_TABLES, before), { ids: true })), []);
    await pg.dropDatabase(db.name);
  });

  it("refuses what it cannot do, naming the table: a composite foreign key into a key, an id without a default, a cycle", async () => {
    const db = await pg.createDatabase();
    await pg.query(db.name, `SET ROLE vibes;
      CREATE TABLE n (id int PRIMARY KEY, x int);
      CREATE TABLE a (id serial PRIMARY KEY, x int, UNIQUE (id, x));
      CREATE TABLE b (id serial PRIMARY KEY, a_id int, a_x int, FOREIGN KEY (a_id, a_x) REFERENCES a (id, x));
      CREATE TABLE p (id serial PRIMARY KEY, q_id int);
      CREATE TABLE q (id serial PRIMARY KEY, p_id int REFERENCES p (id));
      ALTER TABLE p ADD FOREIGN KEY (q_id) REFERENCES q (id);`);
    const c = await client(db);
    await assert.rejects(readPlan(c, ["n"]), /online id change: n: its id id has no default/);
    await assert.rejects(readPlan(c, ["a", "b"]), /online id change: b: foreign key b_a_id_a_x_fkey \(a_id, a_x\) is composite/);
    await assert.rejects(readPlan(c, ["p", "q"]), /online id change: (p|q): foreign keys form a cycle/);
    await assert.rejects(readPlan(c, ["q"]), /outside the covered set/);
    await pg.dropDatabase(db.name);
  });

  after(() => {
    for (const line of logs.filter((l) => /hold|held/.test(l))) console.log(`    ${line}`);
  });
});
