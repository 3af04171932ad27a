// The guide's "Execute Migration", to the configured target revision, inside the maintenance
// window. It first proves that nothing changed since the verified backup (taken before the
// window), and takes the backup again if anything did; after the change it proves schema and
// data against the backup and records that proof for the validation stage. Rolling back is a forward,
// reviewed change: set targetRevision to the previous revision and `pulumi up` runs this step
// again as an update with `--to <previous>`. The step reads the database's actual revision
// first, so a re-run after an interrupted `pulumi up` does the right thing.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import type { StepResults } from "../hooks/contracts";
import { StepRunner } from "../hookCommand";

type MigrationArgs = Pick<DeployConfig["migration"], "targetRevision" | "filesSha256" | "expectedIdType" | "idDefault" | "uuidVersion"
  | "acceptRenumberedIds" | "mode" | "sqlDir" | "upCommand" | "downCommand">;

export interface SchemaMigrationArgs {
  steps: StepRunner;
  /** The target, the files that take the database there and how, the ids expected after it. */
  migration: MigrationArgs;
  /** The verified backup's manifest: the hook records it; validation compares against it. */
  manifestUri: pulumi.Input<string>;
  backupSha256: pulumi.Input<string>;
}


export class SchemaMigration extends pulumi.ComponentResource {
  public readonly revisionBefore: pulumi.Output<string>;
  public readonly revisionAfter: pulumi.Output<string>;
  /** SHA-256 of the migration files that brought the database to revisionAfter, as recorded in
   * the database (null when it was migrated by other means): what test vouches for to prod. */
  public readonly filesSha256: pulumi.Output<string | null>;
  /** The verified backup the migration relied on (taken again inside the window when the
   * database had changed since the first): what a restore needs. */
  public readonly backup: pulumi.Output<StepResults["migrate"]["backup"]>;

  constructor(name: string, args: SchemaMigrationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:migration:SchemaMigration", name, {}, opts);
    const m = args.migration;
    const { result } = args.steps.run(`${name}-migrate`, {
      step: "migrate",
      flags: {
        to: m.targetRevision,
        manifest: args.manifestUri,
        "files-sha256": m.filesSha256,
        "id-type": m.expectedIdType,
        "id-default": m.idDefault,
        "uuid-version": m.uuidVersion,
        "accept-renumbered-ids": m.acceptRenumberedIds,
        // How the hook finds and runs the revisions: the SQL files of sqlDir (relative to the
        // project folder, like the hook's own path), or alembic with the config's optional overrides.
        ...(m.mode === "sql" ? { mode: "sql", "sql-dir": m.sqlDir } : { up: m.upCommand || undefined, down: m.downCommand || undefined }),
      },
      backupSha256: args.backupSha256,
      // Destroy and replacement run `delete`: it must never downgrade the database.
      delete: `echo "vibes: the database stays at its current revision; to roll back set targetRevision (docs/operations.md)" >&2`,
    }, { parent: this, dependsOn: opts?.dependsOn });
    // Revision ids, URIs and checksums hold no secret; the output is secret only because the step
    // got the password.
    this.revisionBefore = pulumi.unsecret(result.revisionBefore);
    this.revisionAfter = pulumi.unsecret(result.revisionAfter);
    this.filesSha256 = pulumi.unsecret(result.filesSha256);
    this.backup = pulumi.unsecret(result.backup);
    this.registerOutputs({ revisionBefore: this.revisionBefore, revisionAfter: this.revisionAfter, filesSha256: this.filesSha256, backup: this.backup });
  }
}
