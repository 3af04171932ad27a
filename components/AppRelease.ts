// The guide's "Restart Application Services" and "Verify application startup": the
// configured restart (local scripts, or a command on the app host over SSH), then the health gate
// that polls until the app is healthy or the timeout passes, both in one step.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import { type RollBackTo, StepRunner } from "../hookCommand";

export interface AppReleaseArgs {
  steps: StepRunner;
  /** Where the restart runs (local, or over SSH) and how long the health gate waits. */
  app: Pick<DeployConfig["app"], "healthGateTimeoutSeconds" | "healthGateIntervalSeconds">;
  /** Where a failed release goes back to: the backup the migration relied on, or the online swap reversed. */
  rollBackTo: RollBackTo;
  backupSha256: pulumi.Input<string>;
}

export class AppRelease extends pulumi.ComponentResource {
  public readonly healthy: pulumi.Output<boolean>;

  constructor(name: string, args: AppReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:app:AppRelease", name, {}, opts);
    const app = args.app;
    // Local: the app's scripts start it with the same settings the hooks get (secrets in the
    // environment only). SSH: the app host keeps its own settings; no secret travels there (the
    // restart contract's startsTheApp). The step then waits for /health itself (the health gate).
    const { result } = args.steps.run(`${name}-restart`, {
      step: "restart",
      flags: { "health-timeout-seconds": String(app.healthGateTimeoutSeconds), "health-interval-seconds": String(app.healthGateIntervalSeconds) },
      backupSha256: args.backupSha256,
      // A release that fails (the restart, its health gate) puts the database back and restarts the app on it.
      rollBackOnFailure: args.rollBackTo,
    }, { parent: this, dependsOn: opts?.dependsOn });
    // A boolean holds no secret; the output is secret only because the step got them.
    this.healthy = pulumi.unsecret(result.health.healthy);
    this.registerOutputs({ healthy: this.healthy });
  }
}
