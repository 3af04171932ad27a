// Online strategy (docs/online.md), before the window, while the app keeps serving and writing:
// expand (new uuid columns and the triggers that keep them right on every write), backfill (the
// rows from before, in throttled batches, resumable), constraints (unique indexes built
// concurrently, NOT NULL through validated checks, foreign keys NOT VALID then validated). Each
// phase is a resource of its own: `pulumi preview` shows where a deployment stands, `pulumi up`
// resumes it (every phase is idempotent and reads the database's phase first).
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import { StepRunner } from "../hookCommand";

export interface OnlinePreparationArgs {
  steps: StepRunner;
  migration: Pick<DeployConfig["migration"], "idDefault" | "online">;
  /** The verified backup this change follows: a new backup runs the phases again (each a no-op when done). */
  backupSha256: pulumi.Input<string>;
}

export class OnlinePreparation extends pulumi.ComponentResource {
  /** The last phase: the swap waits for it. */
  public readonly ready: pulumi.Resource;

  constructor(name: string, args: OnlinePreparationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:migration:OnlinePreparation", name, {}, opts);
    const m = args.migration;
    const phase = (phaseName: "expand" | "backfill" | "constraints", flags: { "batch-size"?: string; "pause-ms"?: string }, after?: pulumi.Resource) =>
      args.steps.run(`${name}-${phaseName}`, {
        step: "online",
        words: [phaseName],
        flags: { "id-default": m.idDefault, ...flags },
        backupSha256: args.backupSha256,
      }, { parent: this, dependsOn: after ? [after] : opts?.dependsOn }).command;
    const expand = phase("expand", {});
    const backfill = phase("backfill", { "batch-size": String(m.online.batchSize), "pause-ms": String(m.online.pauseMs) }, expand);
    this.ready = phase("constraints", {}, backfill);
    this.registerOutputs({});
  }
}
