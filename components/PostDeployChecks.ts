// The guide's "Post-Deployment Validation": API smoke tests and the performance checks
// (EXPLAIN of the guide's lookups uses the indexes). Both run while maintenance mode is still on.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import { hookCommand } from "../hookCommand";

export interface PostDeployChecksArgs {
  config: DeployConfig;
  backupSha256: pulumi.Input<string>;
}

export class PostDeployChecks extends pulumi.ComponentResource {
  constructor(name: string, args: PostDeployChecksArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:app:PostDeployChecks", name, {}, opts);
    const after = { parent: this, dependsOn: opts?.dependsOn };
    hookCommand(`${name}-smoke`, {
      config: args.config,
      step: "smoke",
      args: ["--expect-id-type", args.config.migration.expectedIdType],
      env: ["app"],
      // The token lets the smoke requests through maintenance mode.
      secrets: ["adminToken"],
      backupSha256: args.backupSha256,
    }, after);
    hookCommand(`${name}-performance`, {
      config: args.config,
      step: "validate",
      args: ["performance"],
      env: ["database"],
      secrets: ["databasePassword"],
      backupSha256: args.backupSha256,
    }, after);
    this.registerOutputs({});
  }
}
