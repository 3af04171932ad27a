// The guide's "Restart Application Services" and "Verify application startup": the
// configured restart (local scripts, or a command on the app host over SSH), then a health gate
// that polls until the app is healthy or the timeout passes.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import { hookCommand } from "../hookCommand";

export interface AppReleaseArgs {
  config: DeployConfig;
  backupSha256: pulumi.Input<string>;
}

export class AppRelease extends pulumi.ComponentResource {
  public readonly healthy: pulumi.Output<boolean>;

  constructor(name: string, args: AppReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:app:AppRelease", name, {}, opts);
    const app = args.config.app;
    // Local: the app's scripts start it with the same settings the hooks get (secrets in the
    // environment only). SSH: the app host keeps its own settings; no secret travels there.
    const restart = hookCommand(`${name}-restart`, {
      config: args.config,
      step: "restart",
      env: app.restartSshHost ? ["restart"] : ["restart", "database", "app"],
      secrets: app.restartSshHost ? [] : ["databasePassword", "adminToken"],
      backupSha256: args.backupSha256,
    }, { parent: this, dependsOn: opts?.dependsOn }).command;

    const { result } = hookCommand<{ healthy: boolean; attempts: number; elapsedMs: number }>(`${name}-health-gate`, {
      config: args.config,
      step: "health-gate",
      args: ["--timeout-seconds", String(app.healthGateTimeoutSeconds), "--interval-seconds", String(app.healthGateIntervalSeconds)],
      env: ["app"],
      backupSha256: args.backupSha256,
    }, { parent: this, dependsOn: [restart] });
    this.healthy = result.healthy;
    this.registerOutputs({ healthy: this.healthy });
  }
}
