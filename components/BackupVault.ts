// Where backups live. AWS stacks: a hardened S3 bucket (versioned, encrypted, private,
// bucket-owner-enforced, TLS-only, with a lifecycle rule). Dev: a local folder, no AWS at all.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { local } from "@pulumi/command";
import { DeployConfig } from "../config";

export interface BackupVaultArgs {
  /** Where backups go (a local folder or the bucket) and how the bucket keeps them. */
  backup: Pick<DeployConfig["backup"], "target" | "dir" | "bucketName" | "prefix" | "retentionDays" | "encryption" | "kmsKeyId" | "protect">;
  /** Sends the failure notice when a cloud resource fails (safety/failureNotice.ts); unset on
   * stacks without a notification channel. */
  failureNotice?: pulumi.ErrorHook;
}

export class BackupVault extends pulumi.ComponentResource {
  public readonly bucketName?: pulumi.Output<string>;
  public readonly bucketArn?: pulumi.Output<string>;
  /** Local target: the folder holding dumps and manifests. */
  public readonly folder?: string;

  constructor(name: string, args: BackupVaultArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:backup:BackupVault", name, {}, opts);
    const b = args.backup;
    const after = { parent: this, dependsOn: opts?.dependsOn };

    if (b.target === "local") {
      this.folder = b.dir;
      // No delete: removing the folder would remove the backups in it.
      new local.Command(`${name}-folder`, {
        create: `mkdir -p "$VIBES_BACKUP_DIR" && chmod 700 "$VIBES_BACKUP_DIR"`,
        environment: { VIBES_BACKUP_DIR: b.dir },
        logging: "stderr",
        addPreviousOutputInEnv: false,
      }, after);
      this.registerOutputs({ folder: this.folder });
      return;
    }

    // What holds backups in prod is neither deleted nor replaced by a plan.
    const keep = { protect: b.protect, retainOnDelete: b.protect };
    const hooks = args.failureNotice ? { hooks: { onError: [args.failureNotice] } } : {};
    const bucket = new aws.s3.Bucket(`${name}-bucket`, { bucket: b.bucketName, forceDestroy: false }, { ...after, ...keep, ...hooks });
    // The bucket's hardening goes with the bucket, never before it: deleting these first (as a
    // destroy would, dependents first) would suspend versioning and open the bucket, and then the
    // bucket itself, not empty, would stay. They are kept like the bucket.
    const child = { parent: this, ...hooks, ...keep, deletedWith: bucket };
    const versioning = new aws.s3.BucketVersioning(`${name}-versioning`, {
      bucket: bucket.id,
      versioningConfiguration: { status: "Enabled" },
    }, child);
    new aws.s3.BucketServerSideEncryptionConfiguration(`${name}-encryption`, {
      bucket: bucket.id,
      rules: [{
        applyServerSideEncryptionByDefault: { sseAlgorithm: b.encryption, kmsMasterKeyId: b.kmsKeyId },
        bucketKeyEnabled: b.encryption === "aws:kms",
      }],
    }, child);
    const publicAccess = new aws.s3.BucketPublicAccessBlock(`${name}-public-access`, {
      bucket: bucket.id,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    }, child);
    new aws.s3.BucketOwnershipControls(`${name}-ownership`, {
      bucket: bucket.id,
      rule: { objectOwnership: "BucketOwnerEnforced" },
    }, child);
    // After the public access block: S3 rejects concurrent configuration calls on one bucket.
    new aws.s3.BucketPolicy(`${name}-tls-only`, {
      bucket: bucket.id,
      policy: pulumi.jsonStringify({
        Version: "2012-10-17",
        Statement: [{
          Sid: "DenyInsecureTransport",
          Effect: "Deny",
          Principal: "*",
          Action: "s3:*",
          Resource: [bucket.arn, pulumi.interpolate`${bucket.arn}/*`],
          Condition: { Bool: { "aws:SecureTransport": "false" } },
        }],
      }),
    }, { ...child, dependsOn: [publicAccess] });
    // After versioning: its rule expires noncurrent versions.
    new aws.s3.BucketLifecycleConfiguration(`${name}-lifecycle`, {
      bucket: bucket.id,
      rules: [{
        id: "expire-old-backups",
        status: "Enabled",
        filter: { prefix: b.prefix },
        expiration: { days: b.retentionDays },
        noncurrentVersionExpiration: { noncurrentDays: b.retentionDays },
        abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
      }],
    }, { ...child, dependsOn: [versioning] });

    this.bucketName = bucket.bucket;
    this.bucketArn = bucket.arn;
    this.registerOutputs({ bucketName: this.bucketName, bucketArn: this.bucketArn });
  }
}
