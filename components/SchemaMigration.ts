// Stage 6: the guide's "Execute Migration", to the configured target revision. It starts only
// after the verified backup (and, on AWS stacks, the RDS snapshot). Rolling back is a forward,
// reviewed change: set targetRevision to the previous revision and `pulumi up` runs this step
// again as an update with `--to <previous>`. The step reads the database's actual revision
// first, so a re-run after an interrupted `pulumi up` does the right thing.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import { hookCommand } from "../hookCommand";

export interface SchemaMigrationArgs {
  config: DeployConfig;
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

  constructor(name: string, args: SchemaMigrationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:migration:SchemaMigration", name, {}, opts);
    const m = args.config.migration;
    const { result } = hookCommand<{ revisionBefore: string; revisionAfter: string; changed: boolean; filesSha256: string | null }>(`${name}-migrate`, {
      config: args.config,
      step: "migrate",
      args: [
        "--to", m.targetRevision,
        "--manifest", args.manifestUri,
        "--files-sha256", m.filesSha256,
        "--id-type", m.expectedIdType,
        ...migrationSourceFlags(args.config),
      ],
      env: ["database", "backup", "migration"],
      secrets: ["databasePassword"],
      backupSha256: args.backupSha256,
      // Destroy and replacement run `delete`: it must never downgrade the database.
      delete: `echo "vibes: the database stays at its current revision; to roll back set targetRevision (docs/operations.md)" >&2`,
    }, { parent: this, dependsOn: opts?.dependsOn });
    // Revision ids hold no secret; the output is secret only because the step got the password.
    this.revisionBefore = pulumi.unsecret(result.revisionBefore);
    this.revisionAfter = pulumi.unsecret(result.revisionAfter);
    this.filesSha256 = pulumi.unsecret(result.filesSha256);
    this.registerOutputs({ revisionBefore: this.revisionBefore, revisionAfter: this.revisionAfter, filesSha256: this.filesSha256 });
  }
}

/** How the hook finds and runs the revisions: the SQL files of sqlDir (relative to the project
 * folder, like the hook's own path), or alembic with the config's optional command overrides. */
function migrationSourceFlags(config: DeployConfig): string[] {
  const m = config.migration;
  if (m.mode === "sql") return ["--mode", "sql", "--sql-dir", m.sqlDir!];
  return [...(m.upCommand ? ["--up", m.upCommand] : []), ...(m.downCommand ? ["--down", m.downCommand] : [])];
}
