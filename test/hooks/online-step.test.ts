// `vibes-hooks online <phase>` through the real CLI (bin/vibes-hooks) on the sample database: the
// phases in order with status between them, each run again doing nothing; the swap refused while
// the constraints are not ready and when the proof finds a link wrong (nothing changed); rollback
// before the swap; a phase run too early refused naming the step to run; swap-back, then the whole
// way again; Ctrl-C during the backfill, resumable; bad flags. No run prints the password.
import assert from "node:assert/strict";
import type { Client } from "pg";
import type { Check } from "../../common/types";
import { connect, connectionFromEnv } from "../../hooks/lib/database/connection";
import { tableOids } from "../../hooks/lib/database/tables";
import { captureState, compareState, type DatabaseState } from "../../hooks/lib/proof/manifest";
import { diffSchema, readSchemaSnapshot, type SchemaSnapshot } from "../../hooks/lib/proof/schemaSnapshot";
import { CONTRACTS } from "../../hooks/contracts";
import { assertFailed, assertSecretAbsent, runHooks, type HooksResult, type RunHooksOptions } from "../support/hooks";
import { getCluster, type PgCluster, type TestDatabase } from "../support/pgCluster";

const SAMPLE = ["users", "journals", "tags", "journal_tags"];
const failed = (checks: Check[]) => checks.filter((c) => !c.ok);

describe("vibes-hooks online <phase>", function () {
  this.timeout(300_000);
  let pg: PgCluster;

  before(async () => {
    pg = await getCluster();
  });

  /** One phase through the CLI; no output may hold the password. */
  async function online(db: TestDatabase, args: string[], opts?: RunHooksOptions): Promise<HooksResult> {
    const res = await runHooks("online", args, { ...db.env, VIBES_TABLES: SAMPLE.join(",") }, opts);
    assertSecretAbsent(res, pg.password);
    return res;
  }

  /** A phase that must succeed: its JSON result. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async function ok(db: TestDatabase, ...args: string[]): Promise<any> {
    const res = await online(db, args);
    assert.equal(res.code, 0, `online ${args.join(" ")}: ${res.stdout}\n${res.stderr}`);
    assert.equal(res.json?.ok, true, res.stdout);
    assert.equal(res.json.step, "online");
    return res.json;
  }

  async function withClient<T>(db: TestDatabase, use: (c: Client) => Promise<T>): Promise<T> {
    const c = await connect(connectionFromEnv(db.env), { applicationName: "vibes-hooks online test" });
    try {
      return await use(c);
    } finally {
      await c.end();
    }
  }

  /** Rows, links and (without a reference) ids, in one snapshot. */
  const stateOf = (db: TestDatabase, reference?: DatabaseState, ids = reference === undefined) => withClient(db, async (c) => {
    await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    try {
      return await captureState(c, SAMPLE, { reference, ids, relationships: true });
    } finally {
      await c.query("COMMIT");
    }
  });

  const schemaOf = (db: TestDatabase): Promise<SchemaSnapshot> => withClient(db, async (c) => readSchemaSnapshot(c, await tableOids(c, SAMPLE)));

  const columnType = async (db: TestDatabase, table: string, column: string) =>
    (await pg.query(db.name, "SELECT format_type(atttypid, NULL) AS t FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped", [table, column]))[0]?.t;

  it("runs the phases in order on the sample database, each saying where the database stands; status before, between and after; a phase run again does nothing", async () => {
    const db = await pg.createVibesDatabase({ users: 30, journalsPerUser: 3 });
    const before = await stateOf(db);

    let status = await ok(db, "status");
    assert.deepEqual([status.phase, status.tables, status.rowsToBackfill, status.notReady], ["initial", SAMPLE, null, []]);
    assert.match(status.next, /online expand/);

    const expanded = await ok(db, "expand");
    assert.deepEqual([expanded.phaseBefore, expanded.phase], ["initial", "expanded"]);
    assert.ok(expanded.added.includes("users.id__uuid") && expanded.added.includes("journals.user_id__uuid"), expanded.added.join(", "));
    status = await ok(db, "status");
    assert.equal(status.phase, "expanded");
    assert.deepEqual(status.tablesWithoutTrigger, []);
    assert.deepEqual(status.rowsToBackfill.users, { ids: 30, foreignKeys: 0 });
    assert.deepEqual(status.rowsToBackfill.journals, { ids: 90, foreignKeys: 90 });
    assert.ok(status.notReady.some((n: string) => /users: index users_pkey__uuid is missing/.test(n)), status.notReady.join("; "));
    assert.match(status.next, /online backfill/);

    const filled = await online(db, ["backfill", "--batch-size", "7"]);
    assert.equal(filled.code, 0, filled.stderr);
    assert.deepEqual([filled.json.phaseBefore, filled.json.phase], ["expanded", "expanded"]);
    assert.deepEqual(filled.json.rows.users, { ids: 30, foreignKeys: 0 });
    assert.deepEqual(filled.json.rows.journals, { ids: 90, foreignKeys: 90 });
    assert.match(filled.stderr, /^\[online \+[\d.]+s\] backfill journals ids: \d+ rows written, .*rows\/s/m);
    status = await ok(db, "status");
    for (const [table, left] of Object.entries(status.rowsToBackfill)) assert.deepEqual(left, { ids: 0, foreignKeys: 0 }, table);
    assert.match(status.next, /online constraints/);

    const built = await ok(db, "constraints");
    assert.equal(built.phase, "expanded");
    assert.ok(built.made.includes("journals_user_id_fkey__uuid"), built.made.join(", "));
    status = await ok(db, "status");
    assert.deepEqual(status.notReady, []);
    assert.match(status.next, /online swap/);

    const swapped = await ok(db, "swap");
    assert.deepEqual([swapped.phaseBefore, swapped.phase], ["expanded", "swapped"]);
    assert.ok(typeof swapped.holdMs === "number" && swapped.holdMs < 1000, `held ${swapped.holdMs} ms`);
    assert.ok(swapped.checks > 0);
    assert.equal(await columnType(db, "journals", "user_id"), "uuid");
    status = await ok(db, "status");
    assert.deepEqual([status.phase, status.tablesWithoutTrigger], ["swapped", []]);
    assert.match(status.next, /online contract.*online swap-back/);

    // The program may run the chain again: every phase behind the database does nothing.
    for (const phase of ["expand", "backfill", "constraints", "swap"]) {
      const again = await ok(db, phase);
      assert.deepEqual([again.phaseBefore, again.phase, again.holdMs], ["swapped", "swapped", undefined], phase);
      assert.match(again.did, /^nothing: the database is already swapped/, phase);
    }

    const contracted = await ok(db, "contract");
    assert.deepEqual([contracted.phaseBefore, contracted.phase], ["swapped", "contracted"]);
    assert.equal(typeof contracted.holdMs, "number");
    assert.equal(await columnType(db, "users", "id__int"), undefined);
    assert.match((await ok(db, "contract")).did, /^nothing/);
    status = await ok(db, "status");
    assert.equal(status.phase, "contracted");
    assert.match(status.next, /nothing: the change is done/);
    // Same rows, same links, through the uuid keys now.
    assert.deepEqual(failed(compareState(before, await stateOf(db, before, false), { ids: false })), []);
    await pg.dropDatabase(db.name);
  });

  it("swap refuses, changing nothing, while the constraints are not ready and when the proof finds a link wrong; rollback before the swap leaves the database as it was", async () => {
    const db = await pg.createVibesDatabase({ users: 20, journalsPerUser: 2 });
    const before = await stateOf(db);
    await ok(db, "expand");
    await ok(db, "backfill");

    let res = await online(db, ["swap"]);
    assertFailed(res, "online", /^online swap: refused, not ready: .*users: index users_pkey__uuid is missing.*; nothing was swapped$/);
    assert.match(res.json.next, /online constraints/);
    assert.equal(res.json.phase, "expanded");
    assert.ok(res.json.notReady.length > 0);

    await ok(db, "constraints");
    const schema = await schemaOf(db);
    // One journal pointed at another user through its uuid only: no constraint can see it wrong,
    // the proof before the swap does.
    await pg.query(db.name, `UPDATE journals SET user_id__uuid = (SELECT id__uuid FROM users WHERE id = (SELECT min(id) FROM users))
      WHERE id = (SELECT min(id) FROM journals WHERE user_id <> (SELECT min(id) FROM users))`);
    res = await online(db, ["swap"]);
    assertFailed(res, "online", /^online swap: refused, the proof before the swap failed: .*online\.link\.journals\.journals_user_id_fkey.*; nothing was swapped$/);
    assert.deepEqual(res.json.failedChecks.map((c: Check) => c.name).sort(),
      ["online.link.journals.journals_user_id_fkey", "online.relationships.journal_tags", "online.relationships.journals"]);
    assert.match(res.json.next, /online backfill.*online constraints.*then swap again.*online rollback/);
    assert.equal(res.json.phase, "expanded");
    assert.match(res.stderr, /FAIL online\.link\.journals\.journals_user_id_fkey: 1 rows whose user_id__uuid is not their users row's new id/);
    assert.deepEqual(failed(diffSchema(schema, await schemaOf(db))), []);
    assert.equal((await ok(db, "status")).phase, "expanded");

    const back = await ok(db, "rollback");
    assert.deepEqual([back.phaseBefore, back.phase], ["expanded", "initial"]);
    assert.equal(typeof back.holdMs, "number");
    assert.deepEqual(failed(diffSchema(before.schema, await schemaOf(db))), []);
    assert.deepEqual(failed(compareState(before, await stateOf(db, before, true), { ids: true })), []);
    assert.match((await ok(db, "rollback")).did, /^nothing: the database is already initial/);
    await pg.dropDatabase(db.name);
  });

  it("refuses a phase the database is not ready for, naming where it stands and the step to run; swap-back keeps the writes since the swap, then the whole way again", async () => {
    const db = await pg.createVibesDatabase({ users: 15, journalsPerUser: 2 });
    const original = await schemaOf(db);
    const refused = async (args: string[], error: RegExp, next: RegExp, phase: string) => {
      const res = await online(db, args);
      assertFailed(res, "online", error);
      assert.match(res.json.next, next, args.join(" "));
      assert.equal(res.json.phase, phase);
    };
    await refused(["backfill"], /^online backfill: the database is initial \(integer ids, nothing of the change in place\); backfill runs when it is expanded$/, /run `vibes-hooks online expand` first/, "initial");
    await refused(["swap"], /the database is initial/, /online expand/, "initial");
    await ok(db, "expand");
    await refused(["contract"], /^online contract: the database is expanded .*; contract runs when it is swapped$/, /online swap` first/, "expanded");
    await refused(["swap-back"], /^online swap-back: the database is expanded/, /the swap has not happened: `vibes-hooks online rollback`/, "expanded");
    await ok(db, "backfill");
    await ok(db, "constraints");
    await ok(db, "swap");
    await refused(["rollback"], /^online rollback: the database is swapped .*; rollback runs when it is expanded$/, /online swap-back` reverses it/, "swapped");

    // The app after the swap: uuid ids. The triggers keep the integer side, so the swap reversed keeps the row.
    await pg.query(db.name, "INSERT INTO users (email, password_hash) VALUES ('after-swap@example.com', 'x')");
    await pg.query(db.name, "INSERT INTO journals (user_id, title, content) SELECT id, 'after', 'swap' FROM users WHERE email = 'after-swap@example.com'");
    const reversed = await ok(db, "swap-back");
    assert.deepEqual([reversed.phaseBefore, reversed.phase], ["swapped", "initial"]);
    assert.equal(typeof reversed.holdMs, "number");
    assert.ok(reversed.validated.includes("journals_user_id_fkey"), reversed.validated.join(", "));
    assert.deepEqual(failed(diffSchema(original, await schemaOf(db))), []);
    const kept = await pg.query(db.name, "SELECT u.id, j.title FROM users u JOIN journals j ON j.user_id = u.id WHERE u.email = 'after-swap@example.com'");
    assert.deepEqual([typeof kept[0]?.id, kept[0]?.title], ["number", "after"]);
    assert.match((await ok(db, "swap-back")).did, /^nothing/);
    await refused(["contract"], /the database is initial/, /online expand` first/, "initial");

    for (const phase of ["expand", "backfill", "constraints", "swap"]) await ok(db, phase);
    assert.equal((await ok(db, "status")).phase, "swapped");
    const again = await pg.query(db.name, "SELECT u.id__int, j.title FROM users u JOIN journals j ON j.user_id = u.id WHERE u.email = 'after-swap@example.com'");
    assert.deepEqual([typeof again[0]?.id__int, again[0]?.title], ["number", "after"]);
    await pg.dropDatabase(db.name);
  });

  it("swap --revision records the target in the version table; swap-back records the revision before again", async () => {
    const db = await pg.createVibesDatabase();
    const revision = async () => (await pg.query(db.name, "SELECT version_num FROM alembic_version"))[0].version_num;
    for (const phase of ["expand", "backfill", "constraints"]) await ok(db, phase);
    const swapped = await ok(db, "swap", "--revision", "001_uuid_schema_migration");
    assert.equal(swapped.phase, "swapped");
    assert.equal(await revision(), "001_uuid_schema_migration");
    // Run again (as after a run cut short before it recorded): still recorded, nothing swapped twice.
    await ok(db, "swap", "--revision", "001_uuid_schema_migration");
    assert.equal(await revision(), "001_uuid_schema_migration");
    await ok(db, "swap-back");
    assert.equal(await revision(), "0000_initial");
    const bad = await online(db, ["swap", "--revision", "no such rev!"]);
    assert.equal(bad.code, 2);
    assert.match(bad.json.error, /--revision "no such rev!" is not a revision id/);
    await pg.dropDatabase(db.name);
  });

  it("SIGINT during the backfill stops it between batches with the failure JSON saying it resumes; a re-run finishes it", async () => {
    const db = await pg.createVibesDatabase({ users: 200, journalsPerUser: 5 });
    await ok(db, "expand");
    let pid = 0;
    const running = online(db, ["backfill", "--batch-size", "10", "--pause-ms", "20"], { onSpawn: (p) => (pid = p) });
    for (let i = 0; ; i++) {
      const n = (await pg.query(db.name, "SELECT count(id__uuid)::int AS n FROM users"))[0].n;
      if (n > 50) break;
      assert.ok(i < 600, "the CLI backfilled nothing");
      await new Promise((r) => setTimeout(r, 50));
    }
    process.kill(pid, "SIGINT");
    const res = await running;
    assertFailed(res, "online", /^online backfill: stopped by SIGINT between batches after \d+ rows; what it wrote is kept$/);
    assert.deepEqual([res.json.resumable, res.json.phase], [true, "expanded"]);
    assert.match(res.json.next, /run `vibes-hooks online backfill` again: it continues where it stopped/);
    assert.match(res.stderr, /SIGINT: stopping after the batch in flight/);
    const left = (await pg.query(db.name, "SELECT count(*) FILTER (WHERE id__uuid IS NULL)::int AS n FROM journals"))[0].n;
    assert.ok(left > 0, "stopped after the end: nothing left to resume");

    const resumed = await ok(db, "backfill", "--batch-size", "500");
    assert.equal(resumed.rows.journals.ids, left, "the re-run wrote exactly the rows left");
    assert.equal(resumed.rows.users.ids + res.json.rows.users.ids, 200);
    for (const [table, n] of Object.entries((await ok(db, "status")).rowsToBackfill)) assert.deepEqual(n, { ids: 0, foreignKeys: 0 }, table);
    await pg.dropDatabase(db.name);
  });

  it("refuses bad flags and phases with exit 2, naming them, before connecting", async () => {
    const env = { DATABASE_URL: "postgresql://vibes@127.0.0.1:9/none", VIBES_DB_PASSWORD: pg.password };
    const cases: [string[], RegExp][] = [
      [["backfill", "--batch-size", "0"], /^online: --batch-size "0" is not a whole number of at least 1$/],
      [["backfill", "--pause-ms=-5"], /^online: --pause-ms "-5" is not a whole number from 0 to 2147483647$/],
      [["swap", "--lock-timeout-ms", "1.5"], /^online: --lock-timeout-ms "1.5" is not a whole number/],
      [["contract", "--lock-attempts", "many"], /^online: --lock-attempts "many" is not a whole number/],
      [["swap", "--uuid-version", "9"], /^online: --uuid-version "9" is not 1-8 or any$/],
      [["expand", "--id-default", " "], /^online: --id-default is empty$/],
      [["backfill", "--batch", "5"], /Unknown option '--batch'/],
      [["sideways"], /^online: name one phase: status, expand, backfill, constraints, swap, swap-back, rollback, contract$/],
      [[], /name one phase/],
    ];
    await Promise.all(cases.map(async ([args, error]) => {
      const res = await runHooks("online", args, env);
      assert.equal(res.code, 2, `${args.join(" ")}: ${res.stdout}`);
      assert.equal(res.json?.ok, false);
      assert.match(res.json.error, error, args.join(" "));
      assert.ok(res.json.next);
      assertSecretAbsent(res, pg.password);
    }));
  });

  it("--help lists the phases, each with what it does, and every flag", async () => {
    const res = await runHooks("online", ["--help"], {});
    assert.equal(res.code, 0);
    const phases = CONTRACTS.online.positionals.choices;
    assert.match(res.stderr, new RegExp(`^usage: vibes-hooks online ${phases.join("\\|")} `, "m"));
    for (const phase of phases) assert.match(res.stderr, new RegExp(`(: |; )${phase}: \\w`), phase);
    for (const flag of Object.keys(CONTRACTS.online.flags)) assert.match(res.stderr, new RegExp(`^  --${flag} `, "m"), flag);
  });
});
