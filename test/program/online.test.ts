// migrationStrategy online (issue 19): the graph of phases, where the window is, what a failure
// after the swap goes back to, and the contract stage only when asked for.
import * as assert from "node:assert/strict";
import { loadConfig } from "../../config";
import { ProgramRun, Registration, runProgram, sourceFor } from "./harness";

const byName = (run: ProgramRun, name: string): Registration => {
  const found = run.registrations.find((r) => r.name === name);
  assert.ok(found, `no resource named ${name}; have ${run.registrations.map((r) => r.name).join(", ")}`);
  return found;
};
const env = (r: Registration) => r.inputs.environment as Record<string, string>;
const dependsOn = (run: ProgramRun, stage: string, before: string) => byName(run, stage).dependencies.includes(byName(run, before).urn);

describe("program: migrationStrategy online", function () {
  this.timeout(60_000);
  const runs: Record<string, ProgramRun> = {};
  before(async () => {
    runs.offline = await runProgram("dev");
    runs.online = await runProgram("dev", { overrides: { migrationStrategy: "online" } });
    runs.contract = await runProgram("test", { overrides: { migrationStrategy: "online", onlineContract: "true", onlineBatchSize: "5000", onlinePauseMs: "20" } });
  });

  it("runs expand, backfill and constraints before the window, the proven swap inside it, and no offline migration", () => {
    const run = runs.online;
    const create = (name: string) => String(byName(run, name).inputs.create);
    assert.equal(create("online-preparation-expand"), "bin/vibes-hooks online expand --id-default 'gen_random_uuid()'");
    assert.equal(create("online-preparation-backfill"), "bin/vibes-hooks online backfill --id-default 'gen_random_uuid()' --batch-size 1000 --pause-ms 0");
    assert.equal(create("online-swap-swap"), "bin/vibes-hooks online swap --revision 001_uuid_schema_migration --id-default 'gen_random_uuid()' --uuid-version 4");
    for (const [stage, before] of [
      ["online-preparation-expand", "backup-verify-restore"],
      ["online-preparation-backfill", "online-preparation-expand"],
      ["online-preparation-constraints", "online-preparation-backfill"],
      ["maintenance-on-maintenance", "online-preparation-constraints"],
      ["online-swap-swap", "maintenance-on-maintenance"],
      ["app-release-restart", "online-swap-swap"],
      ["post-deploy-checks-performance", "online-swap-swap"],
      ["maintenance-off-maintenance", "post-deploy-checks-smoke"],
    ]) assert.ok(dependsOn(run, stage, before), `${stage} must wait for ${before}`);
    const names = run.registrations.map((r) => r.name);
    for (const offline of ["migration-migrate", "validation-validate", "maintenance-off-drop-copy", "online-contract-contract"]) assert.ok(!names.includes(offline), offline);
    // The copy would lack the writes made since the backup: none is kept.
    assert.doesNotMatch(create("backup-verify-restore"), /--keep-copy/);
    assert.match(String(byName(runs.offline, "backup-verify-restore").inputs.create), /--keep-copy/);
  });

  it("a failure after the swap reverses it (no write lost), never goes back to the backup", () => {
    for (const name of ["app-release-restart", "post-deploy-checks-smoke"]) {
      const e = env(byName(runs.online, name));
      assert.equal(e.VIBES_ROLLBACK_ON_FAILURE, "online", name);
      assert.equal(e.VIBES_ID_DEFAULT, "gen_random_uuid()", name);
      assert.equal(e.VIBES_ROLLBACK_MANIFEST, undefined, name);
    }
    assert.equal(env(byName(runs.offline, "app-release-restart")).VIBES_ROLLBACK_ON_FAILURE, "1");
  });

  it("contracts in a stage of its own after maintenance mode is off, only with onlineContract; the batch settings reach the backfill", () => {
    const run = runs.contract;
    assert.equal(byName(run, "online-contract-contract").inputs.create, "bin/vibes-hooks online contract --id-default 'gen_random_uuid()'");
    assert.ok(dependsOn(run, "online-contract-contract", "maintenance-off-maintenance"));
    assert.match(String(byName(run, "online-preparation-backfill").inputs.create), /--batch-size 5000 --pause-ms 20$/);
  });

  it("the stack outputs are the same contract as offline", () => {
    assert.deepEqual(Object.keys(runs.online.outputs).sort(), Object.keys(runs.offline.outputs).sort());
    assert.equal(runs.online.resolved.backupRetakenInWindow, false);
    assert.equal(runs.online.resolved.idType, "uuid");
  });

  it("refuses online towards integer ids and a bad strategy, naming the key", () => {
    assert.throws(() => loadConfig(sourceFor("test", { migrationStrategy: "online", targetRevision: "0000_initial" }), "test"), /migrationStrategy: online changes integer ids to uuid; targetRevision 0000_initial has integer ids/);
    assert.throws(() => loadConfig(sourceFor("test", { migrationStrategy: "sideways" }), "test"), /migrationStrategy: must be one of offline, online/);
  });
});
