// End to end, migrationStrategy online (issue 19): the whole program under the rehearsal on a
// real database and the running sample app: the phases in order, uuid ids with every row and
// link, the app serving them, the integer columns kept until contract.
import { strict as assert } from "assert";
import { assertIdTypes, assertNoSecrets, content, dataPicture, getJson, maintenanceOn, rehearse, setUp, stageStatus, tearDown, type E2eEnv } from "./harness";

describe("e2e: migrationStrategy online under the rehearsal", function () {
  this.timeout(300_000);
  let e: E2eEnv | undefined;
  afterEach(async () => {
    await tearDown(e);
    e = undefined;
  });

  it("changes the ids while the app serves, swaps inside a short window, and contracts when asked", async () => {
    e = await setUp();
    const before = await dataPicture(e.pg, e.db.name);
    const run = await rehearse(e, { migrationStrategy: "online", onlineContract: "true" });
    assert.equal(run.code, 0, run.output);
    assertNoSecrets(run, e);
    const st = stageStatus(run);
    for (const stage of ["online-preparation", "maintenance-on", "online-swap", "app-release", "post-deploy-checks", "maintenance-off", "online-contract"]) assert.equal(st[stage], "ok", stage);
    assert.equal(st.migration, undefined, "no offline migration");
    const stages = new Map(run.summary.stages.map((s) => [s.name, s]));
    const end = (name: string) => stages.get(name)!.startedMs! + stages.get(name)!.durationMs!;
    assert.ok(stages.get("maintenance-on")!.startedMs! >= end("online-preparation"), "the window opened before the columns were ready");
    assert.ok(stages.get("online-swap")!.startedMs! >= end("maintenance-on"));
    const after = await dataPicture(e.pg, e.db.name);
    assertIdTypes(after, "uuid");
    // The revision the schema now is, for the app, preflight and a later offline deployment.
    assert.equal(after.revision, "001_uuid_schema_migration");
    assert.deepEqual(content(after), content(before), "a row or relationship changed");
    // Contracted: no integer column or trigger of the change is left.
    assert.deepEqual(await e.pg.query(e.db.name, "SELECT table_name, column_name FROM information_schema.columns WHERE column_name LIKE '%\\_\\_int' OR column_name LIKE '%\\_\\_uuid'"), []);
    assert.deepEqual(await e.pg.query(e.db.name, "SELECT tgname FROM pg_trigger WHERE tgname LIKE '%\\_\\_uuid\\_sync'"), []);
    const [{ id }] = await e.pg.query(e.db.name, "SELECT id::text AS id FROM users ORDER BY email LIMIT 1");
    assert.equal((await getJson(e, `/api/v1/users/${id}`)).status, 200);
    assert.equal(await maintenanceOn(e), false);
    assert.equal(run.summary.outputs!.idType, "uuid");
    assert.match(String(run.summary.outputs!.validationSummary), /^online: proven before the swap, swapped in [\d.]+ ms of locks$/);
  });
});
