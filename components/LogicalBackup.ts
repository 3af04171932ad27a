// The guide's "Database Backup", made trustworthy: pg_dump with a manifest (row counts
// and fingerprints for the validation), a SHA-256, and a verification that restores the whole dump
// into a scratch database (`pg_restore --list` alone passes truncated and corrupted dumps).
import * as pulumi from "@pulumi/pulumi";
import { StepRunner } from "../hookCommand";

export interface LogicalBackupArgs {
  steps: StepRunner;
  /** The revision the backup is taken for (its label). */
  targetRevision: string;
  /** Keep the proven copy for a rollback by swap (offline with rollbackStrategy swap; online a
   * failure reverses the swap instead, and the copy would lack the writes since). */
  keepCopy: boolean;
}


export class LogicalBackup extends pulumi.ComponentResource {
  public readonly uri: pulumi.Output<string>;
  public readonly manifestUri: pulumi.Output<string>;
  public readonly sha256: pulumi.Output<string>;
  public readonly bytes: pulumi.Output<number>;

  constructor(name: string, args: LogicalBackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:backup:LogicalBackup", name, {}, opts);
    const backup = args.steps.run(`${name}-dump`, {
      step: "backup",
      // The name says the revision it holds (the hook reads it); the label what it is for.
      flags: { label: `for-${args.targetRevision}` },
    }, { parent: this, dependsOn: opts?.dependsOn });
    // URIs, a hex digest and a size hold no secret (the hook never prints one); the step's
    // output is secret only because it got the password. Plain, they can flow into later
    // command strings and the stack outputs.
    const uri = pulumi.unsecret(backup.result.uri);

    // The proven copy is kept for a rollback by swap (seconds at any size) until maintenance mode
    // goes off; the step says when a swap cannot be exact here, and the rollback then restores.
    const verify = args.steps.run(`${name}-verify-restore`, {
      step: "verify-restore",
      flags: { uri, "keep-copy": args.keepCopy },
      backupSha256: pulumi.unsecret(backup.result.sha256),
    }, { parent: this, dependsOn: [backup.command] });

    // Consumers get the backup's facts through the verification: nothing downstream can
    // start before the dump has been restored successfully.
    const verified = <T>(value: pulumi.Output<T>) =>
      pulumi.unsecret(pulumi.all([value, verify.result]).apply(([v]) => v));
    this.uri = verified(backup.result.uri);
    this.manifestUri = verified(backup.result.manifestUri);
    this.sha256 = verified(backup.result.sha256);
    this.bytes = verified(backup.result.bytes);
    this.registerOutputs({ uri: this.uri, manifestUri: this.manifestUri, sha256: this.sha256, bytes: this.bytes });
  }
}
