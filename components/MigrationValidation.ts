// The guide's "Validate Schema Changes" and "Data Migration Validation": the schema is the
// backup's except the id change, row counts, content and relationships match the backup's
// manifest, nothing is orphaned or NULL. migrate proved exactly this and recorded it: the stage
// reports that proof (--use-recorded) and runs the checks itself only when there is none for
// this backup and revision (a database migrated by other means, a record that could not be written).
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import { StepRunner } from "../hookCommand";

export interface MigrationValidationArgs {
  steps: StepRunner;
  /** What the migration was to bring about: the revision, and the ids the checks expect. */
  migration: Pick<DeployConfig["migration"], "targetRevision" | "expectedIdType" | "idDefault" | "uuidVersion">;
  /** The backup the migration relied on (SchemaMigration.backup). */
  manifestUri: pulumi.Input<string>;
  backupSha256: pulumi.Input<string>;
}


export class MigrationValidation extends pulumi.ComponentResource {
  public readonly summary: pulumi.Output<string>;
  /** The id type the checks proved (`uuid` after the migration, `integer` after a rollback). */
  public readonly idType: pulumi.Output<string>;

  constructor(name: string, args: MigrationValidationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:migration:MigrationValidation", name, {}, opts);
    const m = args.migration;
    const idType = m.expectedIdType;
    const { result } = args.steps.run(`${name}-validate`, {
      step: "validate",
      words: ["schema", "data"],
      flags: { "use-recorded": true, manifest: args.manifestUri, revision: m.targetRevision, "id-type": idType, "id-default": m.idDefault, "uuid-version": m.uuidVersion },
      backupSha256: args.backupSha256,
      rollBackOnFailure: { manifestUri: args.manifestUri },
    }, { parent: this, dependsOn: opts?.dependsOn });
    // Check names, counts and type names hold no secret; the output is secret only because the
    // step got the password.
    this.summary = pulumi.unsecret(result.summary);
    // The step fails unless every key column has this type, so a result means it holds.
    this.idType = pulumi.unsecret(result.apply(() => idType));
    this.registerOutputs({ summary: this.summary, idType: this.idType });
  }
}

