// The guide's "Pre-Deployment Validation": connectivity and server version, the
// expected schema revision, database size against free space, pg_dump's major version, app health.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { DeployConfig } from "../config";
import type { StepResults } from "../hooks/contracts";
import { StepRunner } from "../hookCommand";

export interface PreflightChecksArgs {
  steps: StepRunner;
  /** The revisions the database may be at, the target, and where the migration files are. */
  migration: Pick<DeployConfig["migration"], "knownRevisions" | "targetRevision" | "mode" | "sqlDir">;
  minFreeSpaceRatio: number;
  /** The RDS instance (or Aurora cluster) behind the database, on AWS stacks. */
  rds?: DeployConfig["rds"];
}


export class PreflightChecks extends pulumi.ComponentResource {
  /** The checks' findings (secret: the step got the database password). */
  public readonly result: pulumi.Output<StepResults["preflight"]>;

  constructor(name: string, args: PreflightChecksArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:preflight:PreflightChecks", name, {}, opts);
    const m = args.migration;
    const rds = args.rds;
    // Preflight cannot see an RDS instance's disk: it estimates free space from the allocated
    // storage. Aurora's storage grows on demand, so there is nothing to check there.
    const storageBytes = rds?.kind === "instance"
      ? aws.rds.getInstanceOutput({ dbInstanceIdentifier: rds.identifier }, { parent: this }).allocatedStorage
        .apply((gib) => (gib ? String(gib * 1024 ** 3) : undefined))
      : undefined;
    this.result = args.steps.run(`${name}-preflight`, {
      step: "preflight",
      // Any known revision is fine: before the migration, after it on a re-run, or the
      // revision a rollback starts from. The migrate step decides the direction.
      // The migration files too (one head, the target among them), read here, before the window.
      flags: {
        "expect-revision": m.knownRevisions,
        "min-free-ratio": String(args.minFreeSpaceRatio),
        "storage-bytes": storageBytes,
        target: m.targetRevision,
        ...(m.mode === "sql" ? { mode: "sql", "sql-dir": m.sqlDir } : {}),
      },
    }, { parent: this, dependsOn: opts?.dependsOn }).result;
    this.registerOutputs({ result: this.result });
  }
}
