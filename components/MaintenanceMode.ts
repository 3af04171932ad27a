// The app's maintenance mode through its admin endpoint: on after the verified backup (taken while
// the app still served; migrate proves nothing changed since), off after the post-deploy checks.
// The window users feel is the time between the two.
import * as pulumi from "@pulumi/pulumi";
import { StepRunner } from "../hookCommand";

export interface MaintenanceModeArgs {
  steps: StepRunner;
  enabled: boolean;
  /** Maintenance off follows the verified backup: a new backup runs the chain, and this, again. */
  backupSha256?: pulumi.Input<string>;
  /** Off: then drop the copy kept for a rollback by swap (offline only: online keeps none). */
  dropsCopy?: boolean;
}

export class MaintenanceMode extends pulumi.ComponentResource {
  public readonly enabled: pulumi.Output<boolean>;

  constructor(name: string, args: MaintenanceModeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:maintenance:MaintenanceMode", name, {}, opts);
    const maintenance = args.steps.run(`${name}-maintenance`, {
      step: "maintenance",
      words: [args.enabled ? "on" : "off"],
      backupSha256: args.backupSha256,
    }, { parent: this, dependsOn: opts?.dependsOn });
    if (!args.enabled && args.dropsCopy) {
      // The copy kept for a rollback by swap is of no use once the app serves again: its disk is freed.
      args.steps.run(`${name}-drop-copy`, {
        step: "copy",
        words: ["drop"],
        backupSha256: args.backupSha256,
      }, { parent: this, dependsOn: [maintenance.command] });
    }
    // A boolean holds no secret; the output is secret only because the step got the token.
    this.enabled = pulumi.unsecret(maintenance.result.enabled);
    this.registerOutputs({ enabled: this.enabled });
  }
}
