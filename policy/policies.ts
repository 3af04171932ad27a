// The safety rules of docs/safety.md as @pulumi/policy policies. Kept apart from index.ts (which
// starts the policy server) so tests can call each validate function directly.
//
// Notes from @pulumi/policy 1.21 (server.js): validation props come with secrets unwrapped to
// plain values, so a policy cannot ask "is this a secret"; it can only recognise secret-looking
// text. Unknown values (preview) throw UnknownValueError on access, which turns the whole policy
// into an advisory for that preview: the helpers below read what is unknown as "not known yet"
// and fall back to the dependency graph, which is always known. PolicyResourceOptions exposes
// `protect` but not `retainOnDelete`.
import { PolicyResource, ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy } from "@pulumi/policy";
import { isSecretName } from "../common/redact";

export const T = {
  bucket: "aws:s3/bucket:Bucket",
  versioning: "aws:s3/bucketVersioning:BucketVersioning",
  encryption: "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  publicAccessBlock: "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
  bucketPolicy: "aws:s3/bucketPolicy:BucketPolicy",
  snapshot: "aws:rds/snapshot:Snapshot",
  clusterSnapshot: "aws:rds/clusterSnapshot:ClusterSnapshot",
  command: "command:local:Command",
} as const;

/** Reads a property; `undefined` when it is unknown at preview. */
function known<V>(read: () => V): V | undefined {
  try {
    return read();
  } catch (err) {
    // The class is @internal in @pulumi/policy's typings.
    if (err instanceof Error && err.constructor.name === "UnknownValueError") return undefined;
    throw err;
  }
}

/** The stack name in a URN: urn:pulumi:<stack>::<project>::<type>::<name>. */
export function stackOfUrn(urn: string): string {
  return urn.split(":")[2]?.split("::")[0] ?? "";
}

function prodStacks(args: StackValidationArgs): string[] {
  return args.getConfig<{ prodStacks?: string[] }>().prodStacks ?? ["prod"];
}

const prodConfigSchema = {
  properties: { prodStacks: { type: "array" as const, items: { type: "string" as const }, default: ["prod"] } },
};

// ---------------------------------------------------------------- backup bucket hardening

/** The side resources that configure `bucket`: linked through the `bucket` property's
 * dependency (known at preview) or, failing that, its value. */
function sideResourcesOf(bucket: PolicyResource, resources: PolicyResource[], type: string): PolicyResource[] {
  const bucketIds = [known(() => bucket.props.id), known(() => bucket.props.bucket)].filter((v) => typeof v === "string" && v !== "");
  return resources.filter((r) => {
    if (r.type !== type) return false;
    if ((r.propertyDependencies?.bucket ?? []).some((d) => d.urn === bucket.urn)) return true;
    const target = known(() => r.props.bucket);
    return typeof target === "string" && bucketIds.includes(target);
  });
}

function bucketPolicy(
  name: string,
  description: string,
  type: string,
  fix: string,
  ok: (side: PolicyResource) => boolean | undefined,
): StackValidationPolicy {
  return {
    name,
    description,
    enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => {
      const buckets = args.resources.filter((r) => r.type === T.bucket);
      if (buckets.length === 0) args.notApplicable("no S3 bucket in the stack");
      for (const bucket of buckets) {
        const sides = sideResourcesOf(bucket, args.resources, type);
        // `undefined`: not known until the update; the engine re-runs policies after it.
        if (!sides.some((s) => ok(s) !== false)) {
          reportViolation(`backup bucket ${bucket.name}: ${description.toLowerCase()}; ${fix}`, bucket.urn);
        }
      }
    },
  };
}

export const bucketVersioned = bucketPolicy(
  "backup-bucket-versioned",
  "The backup bucket has versioning Enabled",
  T.versioning,
  "add aws.s3.BucketVersioning {bucket: bucket.id, versioningConfiguration: {status: \"Enabled\"}} (components/BackupVault.ts)",
  (s) => known(() => s.props.versioningConfiguration?.status === "Enabled"),
);

export const bucketEncrypted = bucketPolicy(
  "backup-bucket-encrypted",
  "The backup bucket has default server-side encryption",
  T.encryption,
  "add aws.s3.BucketServerSideEncryptionConfiguration with applyServerSideEncryptionByDefault.sseAlgorithm aws:kms or AES256",
  (s) =>
    known(() => {
      const rules: { applyServerSideEncryptionByDefault?: { sseAlgorithm?: string } }[] = s.props.rules ?? [];
      return rules.some((r) => ["aws:kms", "aws:kms:dsse", "AES256"].includes(r.applyServerSideEncryptionByDefault?.sseAlgorithm ?? ""));
    }),
);

export const bucketPrivate = bucketPolicy(
  "backup-bucket-private",
  "The backup bucket blocks all public access",
  T.publicAccessBlock,
  "add aws.s3.BucketPublicAccessBlock with blockPublicAcls, blockPublicPolicy, ignorePublicAcls and restrictPublicBuckets all true",
  (s) =>
    known(() => ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"].every((k) => s.props[k] === true)),
);

/** True when the policy document denies every request made without TLS. */
export function deniesInsecureTransport(policy: unknown): boolean {
  let doc: unknown = policy;
  if (typeof policy === "string") {
    try {
      doc = JSON.parse(policy);
    } catch {
      return false;
    }
  }
  const raw = (doc as { Statement?: unknown } | null)?.Statement;
  const statements = (Array.isArray(raw) ? raw : raw ? [raw] : []) as Record<string, unknown>[];
  return statements.some((st) => {
    const actions = ([] as unknown[]).concat(st.Action ?? []);
    const principal = st.Principal;
    const everyone = principal === "*" || (principal as { AWS?: unknown } | undefined)?.AWS === "*";
    const secure = (st.Condition as { Bool?: Record<string, unknown> } | undefined)?.Bool?.["aws:SecureTransport"];
    return st.Effect === "Deny" && everyone && actions.some((a) => a === "s3:*" || a === "*") && String(secure) === "false";
  });
}

export const bucketTlsOnly = bucketPolicy(
  "backup-bucket-tls-only",
  "The backup bucket policy denies requests without TLS",
  T.bucketPolicy,
  "add an aws.s3.BucketPolicy statement {Effect: Deny, Principal: *, Action: s3:*, Condition: {Bool: {aws:SecureTransport: false}}}",
  (s) => {
    const doc = known(() => s.props.policy);
    return doc === undefined ? undefined : deniesInsecureTransport(doc);
  },
);

// ---------------------------------------------------------------- migration ordering

function commandText(r: PolicyResource): string | undefined {
  return known(() => [r.props.create, r.props.update, r.props.delete].filter((c) => typeof c === "string").join("\n"));
}

/** A hook step's Command: by its `create` (`vibes-hooks <step>`) or, when that is unknown at
 * preview, by the name hookCommand.ts callers give it (`<component>-<step>`). */
export function isHookStep(r: PolicyResource, step: string): boolean {
  if (r.type !== T.command) return false;
  const text = commandText(r);
  if (text !== undefined) return new RegExp(`vibes-hooks['"]?\\s+${step}(\\s|$)`).test(text);
  return r.name.endsWith(`-${step}`);
}

/** Every resource `r` waits for: dependsOn, property dependencies, transitively. */
export function transitiveDependencies(r: PolicyResource): Set<string> {
  const seen = new Set<string>();
  const stack = [r];
  while (stack.length > 0) {
    const cur = stack.pop() as PolicyResource;
    const direct = [...(cur.dependencies ?? []), ...Object.values(cur.propertyDependencies ?? {}).flat()];
    for (const d of direct) {
      if (!seen.has(d.urn)) {
        seen.add(d.urn);
        stack.push(d);
      }
    }
  }
  return seen;
}

export const migrationAfterVerifiedBackup: StackValidationPolicy = {
  name: "migration-after-verified-backup",
  description: "The schema migration depends on a verified backup, and on an RDS snapshot on AWS stacks",
  enforcementLevel: "mandatory",
  configSchema: prodConfigSchema,
  validateStack: (args, reportViolation) => {
    const migrations = args.resources.filter((r) => isHookStep(r, "migrate"));
    if (migrations.length === 0) args.notApplicable("no `vibes-hooks migrate` command in the stack");
    const verifies = args.resources.filter((r) => isHookStep(r, "verify-restore"));
    const snapshots = args.resources.filter((r) => r.type === T.snapshot || r.type === T.clusterSnapshot);
    for (const m of migrations) {
      const deps = transitiveDependencies(m);
      if (!verifies.some((v) => deps.has(v.urn))) {
        reportViolation(`${m.name} does not depend on a \`vibes-hooks verify-restore\` command: the migration could run without a restorable backup; make SchemaMigration depend on LogicalBackup's verified outputs`, m.urn);
      }
      const onProd = prodStacks(args).includes(stackOfUrn(m.urn));
      if (snapshots.length === 0 && onProd) {
        reportViolation(`${m.name} runs on ${stackOfUrn(m.urn)} without an RDS snapshot in the stack; set snapshotEnabled and the RDS identifier`, m.urn);
      } else if (snapshots.length > 0 && !snapshots.some((s) => deps.has(s.urn))) {
        reportViolation(`${m.name} does not depend on the RDS snapshot (${snapshots.map((s) => s.name).join(", ")}); pass the RdsSnapshot in the migration's dependsOn`, m.urn);
      }
    }
  },
};

// ---------------------------------------------------------------- protection of backups

export const prodBackupsProtected: StackValidationPolicy = {
  name: "prod-backups-protected",
  description: "On prod stacks the backup bucket is protected",
  enforcementLevel: "mandatory",
  configSchema: prodConfigSchema,
  validateStack: (args, reportViolation) => {
    // RDS snapshots are exempt: each target revision replaces its snapshot, which `protect`
    // would block; they rely on retainOnDelete, which policies cannot see.
    const holders = args.resources.filter((r) => r.type === T.bucket && prodStacks(args).includes(stackOfUrn(r.urn)));
    if (holders.length === 0) args.notApplicable("no backup bucket on a prod stack");
    for (const r of holders) {
      if (!r.opts.protect) {
        reportViolation(`${r.name} holds prod backups but is not protected; set protectBackups: true (it sets protect and retainOnDelete)`, r.urn);
      }
    }
  },
};

// ---------------------------------------------------------------- secrets in command strings


/** Secret-looking text in a command string; the reasons, without the values. */
export function secretLookingParts(text: string): string[] {
  const rules: [RegExp, string][] = [
    [/[a-z][a-z0-9+.-]*:\/\/[^\s:@/'"]+:[^\s@/'"]+@/i, "a URL with a password (user:password@)"],
    [/(^|[\s;&|'"])(export\s+)?[A-Z0-9_]*(PASSWORD|PASSWD|TOKEN|SECRET|API_KEY)[A-Z0-9_]*=/i, "a secret-named variable assigned inline"],
    [/--?(password|passwd|token|secret|api-key)(=|\s+)\S/i, "a password/token flag"],
    [/\b(authorization:\s*bearer|x-admin-token:)\s*\S/i, "an authorization header"],
    [/\bAKIA[0-9A-Z]{16}\b/, "an AWS access key id"],
  ];
  return rules.filter(([re]) => re.test(text)).map(([, why]) => why);
}

export const noSecretsInCommands: ResourceValidationPolicy = {
  name: "no-secrets-in-commands",
  description: "Command strings (create, update, delete) carry no secret; secrets go through `environment`",
  enforcementLevel: "mandatory",
  validateResource: (args, reportViolation) => {
    if (args.type !== T.command) args.notApplicable("not a command:local:Command");
    const env = (known(() => args.props.environment) ?? {}) as Record<string, unknown>;
    const secretValues = Object.entries(env)
      .filter(([k, v]) => isSecretName(k) && typeof v === "string" && v.length >= 4)
      .map(([k, v]) => [k, v as string] as const);
    for (const field of ["create", "update", "delete"] as const) {
      const text = known(() => args.props[field]);
      if (typeof text !== "string") continue;
      for (const why of secretLookingParts(text)) {
        reportViolation(`${args.name}.${field} contains ${why}; pass secrets in \`environment\` and let the step read them (docs/architecture.md)`);
      }
      for (const [k] of secretValues.filter(([, v]) => text.includes(v))) {
        reportViolation(`${args.name}.${field} contains the value of environment.${k}; refer to it only through the environment`);
      }
    }
  },
};

export const policies = [
  bucketVersioned,
  bucketEncrypted,
  bucketPrivate,
  bucketTlsOnly,
  migrationAfterVerifiedBackup,
  prodBackupsProtected,
  noSecretsInCommands,
];
