import * as assert from "node:assert/strict";
import { PolicyResource, ResourceValidationArgs, StackValidationArgs, StackValidationPolicy } from "@pulumi/policy";
import {
  T, bucketEncrypted, bucketPrivate, bucketTlsOnly, bucketVersioned, migrationAfterVerifiedBackup, noSecretsInCommands, prodBackupsProtected,
} from "../../policy/policies";
// @internal in the typings: the proxy the policy server wraps props in, and its "unknown" marker.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const proxy = require("@pulumi/policy/proxy") as { unknownCheckingProxy<V>(v: V): V; unknownStringValue: string };

class NotApplicable extends Error {}

function res(stack: string, type: string, name: string, props: Record<string, unknown>, extra: Partial<PolicyResource> = {}): PolicyResource {
  return {
    type,
    name,
    urn: `urn:pulumi:${stack}::vibes-db-deploy::${type}::${name}`,
    props: proxy.unknownCheckingProxy(props),
    opts: { protect: false, ignoreChanges: [], aliases: [], customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 }, additionalSecretOutputs: [] },
    dependencies: [],
    propertyDependencies: {},
    isType: () => false,
    asType: () => undefined,
    ...extra,
  };
}

/** Runs a stack policy; returns the violations, or "n/a" when it declares itself not applicable. */
function runStack(policy: StackValidationPolicy, resources: PolicyResource[], config: object = {}): string[] | "n/a" {
  const violations: string[] = [];
  const args: StackValidationArgs = {
    resources,
    stackTags: new Map(),
    getConfig: <C extends object>() => config as C,
    notApplicable: (reason?: string) => {
      throw new NotApplicable(reason);
    },
  };
  try {
    policy.validateStack(args, (message) => violations.push(message));
  } catch (err) {
    if (err instanceof NotApplicable) return "n/a";
    throw err;
  }
  return violations;
}

/** The backup vault as components/BackupVault.ts builds it; `over` replaces a side resource's props. */
function vault(stack: string, over: Partial<Record<"versioning" | "encryption" | "pab" | "policy", Record<string, unknown> | null>> = {}, bucketOpts: Partial<PolicyResource["opts"]> = {}) {
  const bucket = res(stack, T.bucket, "vault-bucket", { id: "vibes-backups-x", bucket: "vibes-backups-x" });
  Object.assign(bucket.opts, bucketOpts);
  const side = (type: string, name: string, props: Record<string, unknown>) =>
    res(stack, type, name, { bucket: "vibes-backups-x", ...props }, { propertyDependencies: { bucket: [bucket] }, dependencies: [bucket] });
  const parts: [keyof typeof over, string, string, Record<string, unknown>][] = [
    ["versioning", T.versioning, "vault-versioning", { versioningConfiguration: { status: "Enabled" } }],
    ["encryption", T.encryption, "vault-encryption", { rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms" } }] }],
    ["pab", T.publicAccessBlock, "vault-public-access", { blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true }],
    ["policy", T.bucketPolicy, "vault-tls-only", {
      policy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Deny", Principal: "*", Action: "s3:*", Resource: ["arn:aws:s3:::vibes-backups-x"], Condition: { Bool: { "aws:SecureTransport": "false" } } }] }),
    }],
  ];
  const sides = parts.filter(([k]) => over[k] !== null).map(([k, type, name, props]) => side(type, name, over[k] ?? props));
  return [bucket, ...sides];
}

describe("policy pack vibes-safety", () => {
  describe("backup bucket hardening", () => {
    it("passes the vault as BackupVault builds it", () => {
      for (const p of [bucketVersioned, bucketEncrypted, bucketPrivate, bucketTlsOnly]) assert.deepEqual(runStack(p, vault("prod")), [], p.name);
    });

    it("is not applicable without a bucket (dev stack)", () => {
      assert.equal(runStack(bucketVersioned, [res("dev", T.command, "x", { create: "true" })]), "n/a");
    });

    it("flags a missing or suspended versioning", () => {
      assert.match((runStack(bucketVersioned, vault("prod", { versioning: null })) as string[])[0], /vault-bucket: the backup bucket has versioning enabled; add aws\.s3\.BucketVersioning/);
      assert.equal((runStack(bucketVersioned, vault("prod", { versioning: { versioningConfiguration: { status: "Suspended" } } })) as string[]).length, 1);
    });

    it("flags missing encryption", () => {
      assert.equal((runStack(bucketEncrypted, vault("prod", { encryption: null })) as string[]).length, 1);
      assert.equal((runStack(bucketEncrypted, vault("prod", { encryption: { rules: [{}] } })) as string[]).length, 1);
    });

    it("flags a public access block with any of the four settings off", () => {
      const pab = { blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: false };
      assert.equal((runStack(bucketPrivate, vault("prod", { pab })) as string[]).length, 1);
      assert.equal((runStack(bucketPrivate, vault("prod", { pab: null })) as string[]).length, 1);
    });

    it("flags a bucket policy without the TLS deny", () => {
      const allowOnly = JSON.stringify({ Statement: [{ Effect: "Allow", Principal: "*", Action: "s3:GetObject" }] });
      assert.equal((runStack(bucketTlsOnly, vault("prod", { policy: { policy: allowOnly } })) as string[]).length, 1);
      const wrongCondition = JSON.stringify({ Statement: { Effect: "Deny", Principal: "*", Action: "s3:*", Condition: { Bool: { "aws:SecureTransport": "true" } } } });
      assert.equal((runStack(bucketTlsOnly, vault("prod", { policy: { policy: wrongCondition } })) as string[]).length, 1);
      assert.equal((runStack(bucketTlsOnly, vault("prod", { policy: null })) as string[]).length, 1);
    });

    it("does not count a side resource of another bucket", () => {
      const [bucket, ...sides] = vault("prod");
      const other = res("prod", T.bucket, "other-bucket", { id: "other", bucket: "other" });
      const versioningOfOther = res("prod", T.versioning, "other-versioning", { bucket: "other", versioningConfiguration: { status: "Enabled" } }, { propertyDependencies: { bucket: [other] } });
      const resources = [bucket, other, versioningOfOther, ...sides.filter((s) => s.type !== T.versioning)];
      assert.deepEqual((runStack(bucketVersioned, resources) as string[]).map((v) => v.split(":")[0]), ["backup bucket vault-bucket"]);
    });

    it("at preview, links by dependency and does not fail on values not known yet", () => {
      const bucket = res("prod", T.bucket, "vault-bucket", { id: proxy.unknownStringValue, bucket: proxy.unknownStringValue });
      const policyDoc = res("prod", T.bucketPolicy, "vault-tls-only", { bucket: proxy.unknownStringValue, policy: proxy.unknownStringValue }, { propertyDependencies: { bucket: [bucket] } });
      const versioning = res("prod", T.versioning, "vault-versioning", { bucket: proxy.unknownStringValue, versioningConfiguration: { status: "Enabled" } }, { propertyDependencies: { bucket: [bucket] } });
      assert.deepEqual(runStack(bucketTlsOnly, [bucket, policyDoc]), []);
      assert.deepEqual(runStack(bucketVersioned, [bucket, versioning]), []);
      assert.equal((runStack(bucketVersioned, [bucket, policyDoc]) as string[]).length, 1);
    });
  });

  describe("migration after verified backup", () => {
    const hook = (stack: string, name: string, step: string, deps: PolicyResource[] = [], create?: string) =>
      res(stack, T.command, name, { create: create ?? `bin/vibes-hooks ${step} --x 1` }, { dependencies: deps });

    function chain(stack: string, opts: { snapshot?: boolean; migrateDeps?: "verify" | "backup-only" | "verify+snapshot" }) {
      const backup = hook(stack, "backup-dump", "backup");
      const verify = hook(stack, "backup-verify-restore", "verify-restore", [backup]);
      const snapshot = res(stack, T.snapshot, "snapshot-snapshot", { dbSnapshotIdentifier: "s" }, { dependencies: [verify] });
      const deps = opts.migrateDeps === "backup-only" ? [backup] : opts.migrateDeps === "verify+snapshot" ? [snapshot] : [verify];
      const migrate = hook(stack, "migration-migrate", "migrate", []);
      // The manifest URI flows from the verified backup into the command string.
      migrate.propertyDependencies = { create: deps };
      return [backup, verify, ...(opts.snapshot ? [snapshot] : []), migrate];
    }

    it("passes when the migration waits for verify-restore (transitively) and the snapshot", () => {
      assert.deepEqual(runStack(migrationAfterVerifiedBackup, chain("prod", { snapshot: true, migrateDeps: "verify+snapshot" })), []);
      assert.deepEqual(runStack(migrationAfterVerifiedBackup, chain("dev", { migrateDeps: "verify" })), []);
    });

    it("flags a migration that only waits for the dump, not its verification", () => {
      const v = runStack(migrationAfterVerifiedBackup, chain("dev", { migrateDeps: "backup-only" })) as string[];
      assert.equal(v.length, 1);
      assert.match(v[0], /migration-migrate does not depend on a `vibes-hooks verify-restore` command/);
    });

    it("flags a migration that does not wait for the snapshot in the stack", () => {
      const v = runStack(migrationAfterVerifiedBackup, chain("test", { snapshot: true, migrateDeps: "verify" })) as string[];
      assert.deepEqual(v.length, 1);
      assert.match(v[0], /does not depend on the RDS snapshot \(snapshot-snapshot\)/);
    });

    it("requires a snapshot on prod stacks (configurable)", () => {
      assert.match((runStack(migrationAfterVerifiedBackup, chain("prod", { migrateDeps: "verify" })) as string[])[0], /runs on prod without an RDS snapshot/);
      assert.deepEqual(runStack(migrationAfterVerifiedBackup, chain("prod", { migrateDeps: "verify" }), { prodStacks: ["production"] }), []);
    });

    it("recognises the steps by name when the command string is unknown at preview", () => {
      const resources = chain("dev", { migrateDeps: "backup-only" });
      const migrate = resources[resources.length - 1];
      const unknownMigrate = res("dev", T.command, migrate.name, { create: proxy.unknownStringValue }, { propertyDependencies: migrate.propertyDependencies });
      assert.equal((runStack(migrationAfterVerifiedBackup, [...resources.slice(0, -1), unknownMigrate]) as string[]).length, 1);
      assert.equal(runStack(migrationAfterVerifiedBackup, [res("dev", T.command, "x-report", { create: "bin/vibes-hooks report slow-queries" })]), "n/a");
    });
  });

  describe("prod backups protected", () => {
    it("passes a protected prod bucket and ignores other stacks", () => {
      assert.deepEqual(runStack(prodBackupsProtected, vault("prod", {}, { protect: true })), []);
      assert.equal(runStack(prodBackupsProtected, vault("test")), "n/a");
    });

    it("flags an unprotected prod bucket", () => {
      const v = runStack(prodBackupsProtected, vault("prod")) as string[];
      assert.equal(v.length, 1);
      assert.match(v[0], /vault-bucket holds prod backups but is not protected; set protectBackups: true/);
    });
  });

  describe("no secrets in commands", () => {
    function runResource(props: Record<string, unknown>, type: string = T.command): string[] | "n/a" {
      const violations: string[] = [];
      const args = {
        type, name: "stage", urn: `urn:pulumi:prod::vibes-db-deploy::${type}::stage`, props: proxy.unknownCheckingProxy(props), opts: {} as never, stackTags: new Map(),
        isType: () => false, asType: () => undefined, getConfig: () => ({}) as never,
        notApplicable: (reason?: string): never => {
          throw new NotApplicable(reason);
        },
      } as ResourceValidationArgs;
      try {
        (noSecretsInCommands.validateResource as (a: ResourceValidationArgs, r: (m: string) => void) => void)(args, (m) => violations.push(m));
      } catch (err) {
        if (err instanceof NotApplicable) return "n/a";
        throw err;
      }
      return violations;
    }

    it("passes hook commands that take secrets through the environment", () => {
      assert.deepEqual(runResource({
        create: "bin/vibes-hooks migrate --to 001_uuid_schema_migration --manifest s3://b/p/x.manifest.json --up 'psql \"$DATABASE_URL\" -f up.sql'",
        delete: "echo \"vibes: the database stays at its current revision; to roll back set targetRevision\" >&2",
        environment: { DATABASE_URL: "postgresql://vibes@db:5432/vibes", VIBES_DB_PASSWORD: "hunter2-long" },
      }), []);
      assert.equal(runResource({ bucket: "x" }, T.bucket), "n/a");
    });

    it("flags a URL with a password, inline secret variables, password flags and auth headers", () => {
      const cases = [
        "psql postgresql://vibes:hunter2@db/vibes -c 'select 1'",
        "PGPASSWORD=hunter2 pg_dump vibes",
        "export VIBES_ADMIN_TOKEN=abc; bin/vibes-hooks smoke",
        "mysql --password=x",
        "curl -H 'X-Admin-Token: abc' http://app/admin",
        "aws s3 ls --profile x AKIAIOSFODNN7EXAMPLE",
      ];
      for (const create of cases) assert.equal((runResource({ create }) as string[]).length, 1, create);
    });

    it("flags a secret environment value copied into the command string, in update and delete too", () => {
      const v = runResource({
        create: "bin/vibes-hooks smoke",
        update: "bin/vibes-hooks smoke --note s3cr3t-token-value",
        delete: "echo s3cr3t-token-value",
        environment: { VIBES_ADMIN_TOKEN: "s3cr3t-token-value", VIBES_APP_URL: "http://app" },
      }) as string[];
      assert.equal(v.length, 2);
      assert.match(v[0], /stage\.update contains the value of environment\.VIBES_ADMIN_TOKEN/);
      assert.match(v[1], /stage\.delete contains the value of environment\.VIBES_ADMIN_TOKEN/);
    });

    it("skips a command string not known yet (preview) instead of failing", () => {
      assert.deepEqual(runResource({ create: proxy.unknownStringValue, environment: proxy.unknownStringValue }), []);
    });
  });
});
