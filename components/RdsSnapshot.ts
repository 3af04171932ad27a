// AWS stacks: an RDS snapshot (or an Aurora cluster snapshot) named after the target revision and
// the verified backup, taken right after it and before the maintenance window: the fallback if the
// dump itself is unusable. It may lack writes the app made before maintenance mode went on; the
// backup migrate relies on never does (it is proven unchanged, or taken again, inside the window).
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { DeployConfig, SNAPSHOT_SUFFIX_LENGTH } from "../config";

export interface RdsSnapshotArgs {
  snapshot: NonNullable<DeployConfig["snapshot"]>;
  /** Tagged on the snapshot. */
  stack: string;
  targetRevision: string;
  /** Config protectBackups: the snapshot is kept in AWS when it is deleted or replaced. */
  protectBackups: boolean;
  /** The verified backup this snapshot goes with: its checksum ends the snapshot's name. */
  backupSha256: pulumi.Input<string>;
  /** Sends the failure notice when a cloud resource fails (safety/failureNotice.ts); unset on
   * stacks without a notification channel. */
  failureNotice?: pulumi.ErrorHook;
}

export class RdsSnapshot extends pulumi.ComponentResource {
  public readonly identifier: pulumi.Output<string>;
  public readonly arn: pulumi.Output<string>;

  constructor(name: string, args: RdsSnapshotArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:backup:RdsSnapshot", name, {}, opts);
    const s = args.snapshot;
    // Unique per deployment: a retained snapshot of an earlier run with the same revision (a
    // re-deploy after a rollback) must not block this one with DBSnapshotAlreadyExists.
    const identifier = pulumi.interpolate`${s.identifierPrefix}-${pulumi.output(args.backupSha256).apply((sha) => sha.slice(0, SNAPSHOT_SUFFIX_LENGTH - 1))}`;
    const tags = { "vibes:stack": args.stack, "vibes:targetRevision": args.targetRevision };
    // A new deployment means a new snapshot (a replacement). retainOnDelete keeps the old
    // one in AWS when protection is on; `protect` is not set because it would block that
    // replacement, and with it every rollback plan.
    const resourceOpts: pulumi.CustomResourceOptions = {
      parent: this,
      dependsOn: opts?.dependsOn,
      retainOnDelete: args.protectBackups,
      // Creation time grows with the volume; the instance must also be `available` first.
      customTimeouts: { create: "2h", delete: "30m" },
      ...(args.failureNotice ? { hooks: { onError: [args.failureNotice] } } : {}),
    };
    if (s.kind === "cluster") {
      const snap = new aws.rds.ClusterSnapshot(`${name}-cluster-snapshot`, {
        dbClusterIdentifier: s.sourceIdentifier,
        dbClusterSnapshotIdentifier: identifier,
        tags,
      }, resourceOpts);
      this.identifier = snap.dbClusterSnapshotIdentifier;
      this.arn = snap.dbClusterSnapshotArn;
    } else {
      const snap = new aws.rds.Snapshot(`${name}-snapshot`, {
        dbInstanceIdentifier: s.sourceIdentifier,
        dbSnapshotIdentifier: identifier,
        tags,
      }, resourceOpts);
      this.identifier = snap.dbSnapshotIdentifier;
      this.arn = snap.dbSnapshotArn;
    }
    this.registerOutputs({ identifier: this.identifier, arn: this.arn });
  }
}
