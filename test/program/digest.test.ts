// The deployment digest (hookCommand.ts) is taken over the whole config: a group or key added
// later re-runs the chain unless it is excluded on purpose, and only the excluded settings do not.
import * as assert from "node:assert/strict";
import { DeployConfig, loadConfig } from "../../config";
import { deploymentDigest } from "../../hookCommand";
import { sourceFor } from "./harness";

const digestOf = (config: DeployConfig) => new Promise<string>((resolve) => deploymentDigest(config).apply(resolve));

describe("deployment digest", () => {
  const config = loadConfig(sourceFor("prod"), "prod");

  it("is the same for the same settings", async () => {
    assert.equal(await digestOf(loadConfig(sourceFor("prod"), "prod")), await digestOf(config));
  });

  it("changes with a group or a key the chain has not known before", async () => {
    const base = await digestOf(config);
    const added = [
      { ...config, newGroup: { setting: "x" } },
      { ...config, migration: { ...config.migration, newKey: "x" } },
      { ...config, safety: { ...config.safety, newKey: "x" } },
    ];
    for (const changed of added) assert.notEqual(await digestOf(changed as DeployConfig), base, JSON.stringify(Object.keys(changed)));
  });

  it("does not change with the preview-only, snapshot, RDS, promotion and monitoring settings", async () => {
    const base = await digestOf(config);
    const outside: Partial<DeployConfig>[] = [
      { planSummary: !config.planSummary },
      { rds: undefined },
      { snapshot: undefined },
      { safety: { ...config.safety, promotion: undefined } },
      { safety: { ...config.safety, monitoring: { ...config.safety.monitoring!, alarmEmails: ["other@vibes.example"] } } },
    ];
    for (const change of outside) assert.equal(await digestOf({ ...config, ...change }), base, JSON.stringify(Object.keys(change)));
  });
});
