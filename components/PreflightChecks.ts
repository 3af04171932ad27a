// Stage 1: the guide's "Pre-Deployment Validation": connectivity and server version, the
// expected schema revision, database size against free space, pg_dump's major version, app health.
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../config";
import { hookCommand } from "./hookCommand";

export interface PreflightChecksArgs {
  config: DeployConfig;
}

export interface PreflightResult {
  serverVersion: string;
  serverMajor: number;
  pgDumpMajor: number;
  revision: string;
  tables: Record<string, { rows: number; bytes: number }>;
  databaseBytes: number;
  freeBytes: number | null;
}

export class PreflightChecks extends pulumi.ComponentResource {
  /** The checks' findings (secret: the step got the database password). */
  public readonly result: pulumi.Output<PreflightResult>;

  constructor(name: string, args: PreflightChecksArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:preflight:PreflightChecks", name, {}, opts);
    const m = args.config.migration;
    this.result = hookCommand<PreflightResult>(`${name}-preflight`, {
      config: args.config,
      step: "preflight",
      // Any known revision is fine: before the migration, after it on a re-run, or the
      // revision a rollback starts from. The migrate step decides the direction.
      args: [...m.knownRevisions.flatMap((rev) => ["--expect-revision", rev]),
        "--min-free-ratio", String(args.config.preflight.minFreeSpaceRatio)],
      env: ["database", "app"],
      secrets: ["databasePassword"],
    }, { parent: this, dependsOn: opts?.dependsOn }).result;
    this.registerOutputs({ result: this.result });
  }
}
