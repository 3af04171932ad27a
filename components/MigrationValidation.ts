// Stage 7: the guide's "Validate Schema Changes" and "Data Migration Validation": ids and foreign
// keys are uuid, the expected keys, constraints and indexes exist, row counts and content match
// the verified backup's manifest, nothing is orphaned or NULL.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import { hookCommand } from "./hookCommand";

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
  /** The id type the checks found (`uuid` after the migration, `integer` after a rollback). */
  public readonly idType: pulumi.Output<string>;

  constructor(name: string, args: MigrationValidationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:migration:MigrationValidation", name, {}, opts);
    const { result } = hookCommand<{ checks: ValidationCheck[]; summary: string; idType?: string }>(`${name}-validate`, {
      config: args.config,
      step: "validate",
      args: ["schema", "data", "--manifest", args.manifestUri],
      env: ["database", "backup"],
      secrets: ["databasePassword"],
      backupSha256: args.backupSha256,
    }, { parent: this, dependsOn: opts?.dependsOn });
    // Check names, counts and type names hold no secret; the output is secret only because the
    // step got the password.
    this.summary = pulumi.unsecret(result.summary);
    // `idType` (the type of the covered tables' id columns) is a field this program asks of the
    // validate step's result; "unknown" until the hook reports it.
    this.idType = pulumi.unsecret(result.apply((r) => r.idType ?? "unknown"));
    this.registerOutputs({ summary: this.summary, idType: this.idType });
  }
}

