// Online strategy, its own explicit stage (config onlineContract, after maintenance mode is off):
// the integer columns and the triggers that kept them right are dropped. Until then the swap can
// be reversed without losing a write; after it, going back means the offline way.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import { StepRunner } from "../hookCommand";

export interface OnlineContractArgs {
  steps: StepRunner;
  migration: Pick<DeployConfig["migration"], "idDefault">;
  backupSha256: pulumi.Input<string>;
}

export class OnlineContract extends pulumi.ComponentResource {
  constructor(name: string, args: OnlineContractArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:migration:OnlineContract", name, {}, opts);
    args.steps.run(`${name}-contract`, {
      step: "online",
      words: ["contract"],
      flags: { "id-default": args.migration.idDefault },
      backupSha256: args.backupSha256,
    }, { parent: this, dependsOn: opts?.dependsOn });
    this.registerOutputs({});
  }
}
