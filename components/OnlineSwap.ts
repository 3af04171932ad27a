// Online strategy, inside the window (maintenance mode on: writes paused for seconds, as the ids
// change type under the same names and the old app's sessions would break): the proof before the
// swap (every new key equals its parent's through the old one, no NULLs, uuid version, content
// unchanged by the backfill), then the swap itself in one transaction held for milliseconds at
// any size. A failure after it (the release, the smoke tests) reverses the swap, losing no write.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import type { StepResults } from "../hooks/contracts";
import { StepRunner } from "../hookCommand";

export interface OnlineSwapArgs {
  steps: StepRunner;
  migration: Pick<DeployConfig["migration"], "targetRevision" | "idDefault" | "uuidVersion">;
  backupSha256: pulumi.Input<string>;
}

export class OnlineSwap extends pulumi.ComponentResource {
  public readonly phase: pulumi.Output<StepResults["online"]["phase"]>;
  /** The swap's longest ACCESS EXCLUSIVE hold, ms. */
  public readonly holdMs: pulumi.Output<number | undefined>;

  constructor(name: string, args: OnlineSwapArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:migration:OnlineSwap", name, {}, opts);
    const { result } = args.steps.run(`${name}-swap`, {
      step: "online",
      words: ["swap"],
      flags: { revision: args.migration.targetRevision, "id-default": args.migration.idDefault, "uuid-version": args.migration.uuidVersion },
      backupSha256: args.backupSha256,
    }, { parent: this, dependsOn: opts?.dependsOn });
    // A phase name and a duration hold no secret; the output is secret only because the step got the password.
    this.phase = pulumi.unsecret(result.phase);
    this.holdMs = pulumi.unsecret(result.apply((r) => r.holdMs));
    this.registerOutputs({ phase: this.phase, holdMs: this.holdMs });
  }
}
