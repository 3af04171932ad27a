// Stage 7: the guide's "Validate Schema Changes" and "Data Migration Validation": ids and foreign
// keys are uuid, the expected keys, constraints and indexes exist, row counts and content match
// the verified backup's manifest, nothing is orphaned or NULL.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import { hookCommand } from "../hookCommand";

export interface MigrationValidationArgs {
  config: DeployConfig;
  manifestUri: pulumi.Input<string>;
  backupSha256: pulumi.Input<string>;
}

export interface ValidationCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export class MigrationValidation extends pulumi.ComponentResource {
  public readonly summary: pulumi.Output<string>;
  /** The id type the checks proved (`uuid` after the migration, `integer` after a rollback). */
  public readonly idType: pulumi.Output<string>;

  constructor(name: string, args: MigrationValidationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:migration:MigrationValidation", name, {}, opts);
    const idType = args.config.migration.expectedIdType;
    const { result } = hookCommand<{ checks: ValidationCheck[]; summary: string }>(`${name}-validate`, {
      config: args.config,
      step: "validate",
      args: ["schema", "data", "--manifest", args.manifestUri, "--id-type", idType],
      env: ["database", "backup"],
      secrets: ["databasePassword"],
      backupSha256: args.backupSha256,
    }, { parent: this, dependsOn: opts?.dependsOn });
    // Check names, counts and type names hold no secret; the output is secret only because the
    // step got the password.
    this.summary = pulumi.unsecret(result.summary);
    // The step fails unless every key column has this type, so a result means it holds.
    this.idType = pulumi.unsecret(result.apply(() => idType));
    this.registerOutputs({ summary: this.summary, idType: this.idType });
  }
}

