// End to end in SQL-files mode: the dev stack with migrationMode=sql runs app/migrations/sql through
// psql, with no Python able to run alembic. Slow: select with --grep "e2e".
import { strict as assert } from "assert";
import * as path from "path";
import { plannedMigrationFilesSha256 } from "../../common/migrationFiles";
import { APP_DIR } from "../support/pgCluster";
import { DEV_STAGE_ORDER, E2eEnv, assertIdTypes, assertNoSecrets, content, dataPicture, rehearse, setUp, stageStatus, tearDown } from "./harness";

describe("e2e: migrationMode=sql", function () {
  this.timeout(300_000);
  let e: E2eEnv | undefined;
  afterEach(async () => {
    await tearDown(e);
    e = undefined;
  });

  it("migrates a generated database to uuid ids with all its data, through the SQL files alone", async () => {
    e = await setUp();
    const before = await dataPicture(e.pg, e.db.name);
    assertIdTypes(before, "integer");

    // Alembic mode would fail here: the hooks inherit a Python that does not exist.
    const run = await rehearse({ ...e, runnerEnv: { ...e.runnerEnv, VIBES_PYTHON: "/nonexistent/python3" } },
      { migrationMode: "sql", sqlDir: "app/migrations/sql" });
    assert.equal(run.code, 0, run.output);
    assertNoSecrets(run, e);
    assert.deepEqual(stageStatus(run), Object.fromEntries(DEV_STAGE_ORDER.map((n) => [n, "ok"])));
    assert.match(run.output, /up: \S*psql .*--single-transaction -f 001_uuid_schema_migration\.up\.sql/);

    const after = await dataPicture(e.pg, e.db.name);
    assert.equal(after.revision, "001_uuid_schema_migration");
    assertIdTypes(after, "uuid");
    assert.deepEqual(content(after), content(before), "a row or relationship changed");

    const o = run.summary.outputs!;
    assert.equal(o.schemaRevisionAfter, "001_uuid_schema_migration");
    assert.equal(o.validated, true);
    assert.equal(o.migrationFilesSha256, plannedMigrationFilesSha256({ mode: "sql", sqlDir: path.join(APP_DIR, "migrations", "sql") }));
  });
});
