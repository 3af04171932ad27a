// The guide's "Post-Deployment Validation": API smoke tests and the performance checks
// (EXPLAIN of the guide's lookups uses the indexes). Both run while maintenance mode is still on.
// Failed smoke tests put the database back (the kept copy swapped in) and restart the app on it;
// the performance checks, beside the release, leave the database to it.
// The smoke tests wait for the released app; the performance checks need only the migrated
// database, so they run beside the app's restart instead of after it.
import * as pulumi from "@pulumi/pulumi";
import type { IdType } from "../common/types";
import { type RollBackTo, StepRunner } from "../hookCommand";

export interface PostDeployChecksArgs {
  steps: StepRunner;
  /** The id type the smoke tests expect in the API's answers. */
  expectedIdType: IdType;
  /** Where failed smoke tests go back to: the backup the migration relied on, or the online swap reversed. */
  rollBackTo: RollBackTo;
  backupSha256: pulumi.Input<string>;
  /** What the performance checks wait for: the validated migration. */
  migrated: pulumi.Resource;
  /** What the smoke tests wait for: the released (restarted, healthy) app. */
  released: pulumi.Resource;
}

export class PostDeployChecks extends pulumi.ComponentResource {
  constructor(name: string, args: PostDeployChecksArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:app:PostDeployChecks", name, {}, opts);
    args.steps.run(`${name}-smoke`, {
      step: "smoke",
      // The contract's admin token lets the smoke requests through maintenance mode.
      flags: { "expect-id-type": args.expectedIdType },
      backupSha256: args.backupSha256,
      rollBackOnFailure: args.rollBackTo,
    }, { parent: this, dependsOn: [args.released] });
    args.steps.run(`${name}-performance`, {
      step: "validate",
      words: ["performance"],
      backupSha256: args.backupSha256,
    }, { parent: this, dependsOn: [args.migrated] });
    this.registerOutputs({});
  }
}
