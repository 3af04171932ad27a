// Stage 6: the guide's "Execute Migration", to the configured target revision. It starts only
// after the verified backup (and, on AWS stacks, the RDS snapshot). Rolling back is a forward,
// reviewed change: set targetRevision to the previous revision and `pulumi up` runs this step
// again as an update with `--to <previous>`. The step reads the database's actual revision
// first, so a re-run after an interrupted `pulumi up` does the right thing.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import { hookCommand, shellWord } from "./hookCommand";

export interface SchemaMigrationArgs {
  config: DeployConfig;
  /** The verified backup's manifest: the hook records it; validation compares against it. */
  manifestUri: pulumi.Input<string>;
  backupSha256: pulumi.Input<string>;
}

export class SchemaMigration extends pulumi.ComponentResource {
  public readonly revisionBefore: pulumi.Output<string>;
  public readonly revisionAfter: pulumi.Output<string>;

  constructor(name: string, args: SchemaMigrationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:migration:SchemaMigration", name, {}, opts);
    const m = args.config.migration;
    const commands = migrationCommands(args.config);
    const { result } = hookCommand<{ revisionBefore: string; revisionAfter: string; changed: boolean }>(`${name}-migrate`, {
      config: args.config,
      step: "migrate",
      args: [
        "--to", m.targetRevision,
        "--manifest", args.manifestUri,
        "--files-sha256", m.filesSha256,
        ...(commands.up ? ["--up", commands.up] : []),
        ...(commands.down ? ["--down", commands.down] : []),
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
    this.registerOutputs({ revisionBefore: this.revisionBefore, revisionAfter: this.revisionAfter });
  }
}

/** `--up`/`--down` for the hook: the config's overrides, SQL files in sql mode, or the hook's
 * alembic defaults. `{rev}` is replaced by the hook; psql gets the password from its PGPASSFILE. */
function migrationCommands(config: DeployConfig): { up?: string; down?: string } {
  const m = config.migration;
  const sql = (direction: "up" | "down") =>
    `psql "$DATABASE_URL" -v ON_ERROR_STOP=1 --single-transaction -f ${shellWord(path.join(m.sqlDir ?? "", `${direction}-to-{rev}.sql`))}`;
  return {
    up: m.upCommand ?? (m.mode === "sql" ? sql("up") : undefined),
    down: m.downCommand ?? (m.mode === "sql" ? sql("down") : undefined),
  };
}
