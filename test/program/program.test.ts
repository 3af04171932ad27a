// The program under mocks, per real stack file: what each stack holds, the graph's edges as the
// engine receives them, re-run inputs, secrets, and the stack outputs' contract.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { migrationFilesSha256, plannedMigrationFilesSha256 } from "../../common/migrationFiles";
import { getCluster } from "../support/pgCluster";
import { plainOccurrences, ProgramRun, Registration, ROOT, runProgram, secretPaths, TEST_SECRETS, testStackOutputs } from "./harness";

const COMMAND = "command:local:Command";
const BUCKET_SIDE_TYPES = [
  "aws:s3/bucketVersioning:BucketVersioning",
  "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
  "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
  "aws:s3/bucketPolicy:BucketPolicy",
  "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
];
const FILES_SHA = migrationFilesSha256(path.join(ROOT, "app/migrations/versions"));

function byName(run: ProgramRun, name: string): Registration {
  const found = run.registrations.find((r) => r.name === name);
  assert.ok(found, `no resource named ${name}; have ${run.registrations.map((r) => r.name).join(", ")}`);
  return found;
}
const ofType = (run: ProgramRun, type: string) => run.registrations.filter((r) => r.type === type);
const env = (r: Registration) => r.inputs.environment as Record<string, string>;
const wireEnv = (r: Registration) => r.wire.environment as Record<string, unknown>;

describe("program", function () {
  const runs: Record<string, ProgramRun> = {};
  before(async () => {
    for (const stack of ["dev", "test", "prod"]) runs[stack] = await runProgram(stack);
  });

  describe("resources per stack", () => {
    it("dev has no AWS resources and a local backup folder", () => {
      const dev = runs.dev;
      assert.deepEqual(dev.registrations.filter((r) => r.type.startsWith("aws:")).map((r) => r.name), []);
      const folder = byName(dev, "backup-vault-folder");
      assert.equal(env(folder).VIBES_BACKUP_DIR, ".dev/backups");
      assert.equal(folder.inputs.delete, undefined, "removing the folder would remove the backups");
    });

    for (const stack of ["test", "prod"]) {
      it(`${stack} has the hardened bucket and an RDS snapshot named after the target revision`, () => {
        const run = runs[stack];
        const bucket = byName(run, "backup-vault-bucket");
        assert.equal(bucket.inputs.bucket, `vibes-backups-${stack}-eu-west-1`);
        assert.equal(bucket.inputs.forceDestroy, false);
        for (const type of BUCKET_SIDE_TYPES) {
          const side = ofType(run, type);
          assert.equal(side.length, 1, type);
          assert.equal(side[0].inputs.bucket, "backup-vault-bucket-id", `${type} must configure the vault's bucket`);
        }
        const snapshot = byName(run, "rds-snapshot-snapshot");
        assert.equal(snapshot.type, "aws:rds/snapshot:Snapshot");
        assert.equal(snapshot.inputs.dbInstanceIdentifier, `vibes-${stack}`);
        assert.equal(snapshot.inputs.dbSnapshotIdentifier, `vibes-${stack}-pre-001-uuid-schema-migration-abababab`);
      });
    }

    it("uses a cluster snapshot for Aurora", async () => {
      const run = await runProgram("test", { overrides: { rdsInstanceIdentifier: undefined, rdsClusterIdentifier: "vibes-test-aurora" } });
      assert.equal(ofType(run, "aws:rds/snapshot:Snapshot").length, 0);
      const snap = byName(run, "rds-snapshot-cluster-snapshot");
      assert.equal(snap.inputs.dbClusterIdentifier, "vibes-test-aurora");
      assert.equal(snap.inputs.dbClusterSnapshotIdentifier, "vibes-test-pre-001-uuid-schema-migration-abababab");
    });
  });

  describe("backup vault hardening", () => {
    it("versions, encrypts, blocks public access, enforces ownership, denies plain HTTP, expires old backups", () => {
      const run = runs.prod;
      const input = (type: string) => ofType(run, type)[0].inputs as Record<string, never>;
      assert.deepEqual(input(BUCKET_SIDE_TYPES[0]).versioningConfiguration, { status: "Enabled" });
      const sse = input(BUCKET_SIDE_TYPES[1]).rules[0] as Record<string, Record<string, unknown>>;
      assert.equal(sse.applyServerSideEncryptionByDefault.sseAlgorithm, "aws:kms");
      const pab = input(BUCKET_SIDE_TYPES[2]);
      for (const k of ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"]) assert.equal(pab[k], true, k);
      assert.deepEqual(input(BUCKET_SIDE_TYPES[3]).rule, { objectOwnership: "BucketOwnerEnforced" });
      const policy = JSON.parse(input(BUCKET_SIDE_TYPES[4]).policy);
      const deny = policy.Statement.find((s: { Effect: string }) => s.Effect === "Deny");
      assert.deepEqual(deny.Condition, { Bool: { "aws:SecureTransport": "false" } });
      assert.deepEqual(deny.Resource, ["arn:aws:s3:::vibes-backups-prod-eu-west-1", "arn:aws:s3:::vibes-backups-prod-eu-west-1/*"]);
      assert.equal(deny.Action, "s3:*");
      const rule = (input(BUCKET_SIDE_TYPES[5]).rules as Record<string, Record<string, unknown>>[])[0];
      assert.equal(rule.status, "Enabled");
      assert.deepEqual(rule.filter, { prefix: "pre-uuid-migration/" });
      assert.equal(rule.expiration.days, 90);
      assert.equal(rule.noncurrentVersionExpiration.noncurrentDays, 90);
      assert.equal(rule.abortIncompleteMultipartUpload.daysAfterInitiation, 7);
    });

    it("uses AES256 and a KMS key only as configured", async () => {
      const aes = await runProgram("test", { overrides: { backupEncryption: "AES256" } });
      const rule = (ofType(aes, BUCKET_SIDE_TYPES[1])[0].inputs.rules as Record<string, Record<string, unknown>>[])[0];
      assert.equal(rule.applyServerSideEncryptionByDefault.sseAlgorithm, "AES256");
      assert.equal(rule.applyServerSideEncryptionByDefault.kmsMasterKeyId, undefined);
    });

    it("protects and retains the prod bucket and retains the prod snapshot; test does neither", () => {
      const prodBucket = byName(runs.prod, "backup-vault-bucket");
      assert.ok(prodBucket.protect && prodBucket.retainOnDelete, "prod bucket: protect + retainOnDelete");
      assert.ok(byName(runs.prod, "rds-snapshot-snapshot").retainOnDelete, "prod snapshot: retainOnDelete");
      const testBucket = byName(runs.test, "backup-vault-bucket");
      assert.ok(!testBucket.protect && !testBucket.retainOnDelete);
    });

    for (const stack of ["test", "prod"]) {
      it(`${stack}: the bucket's hardening is kept like the bucket and goes only with it`, () => {
        const bucket = byName(runs[stack], "backup-vault-bucket");
        const hardening = runs[stack].registrations.filter((r) => r.type.startsWith("aws:s3/") && r.name !== "backup-vault-bucket");
        assert.equal(hardening.length, 6);
        for (const r of hardening) {
          assert.equal(r.deletedWith, bucket.urn, `${r.name}: deleted with the bucket, never before it`);
          assert.equal(r.protect, bucket.protect, `${r.name}: protect like the bucket`);
          assert.equal(r.retainOnDelete, bucket.retainOnDelete, `${r.name}: retainOnDelete like the bucket`);
        }
        const lifecycle = byName(runs[stack], "backup-vault-lifecycle");
        assert.ok(lifecycle.dependencies.includes(byName(runs[stack], "backup-vault-versioning").urn), "lifecycle after versioning");
      });
    }
  });

  describe("database monitoring connection", () => {
    it("verifies the server with the CA bundle on prod (verify-full), as the hooks do", () => {
      const prod = byName(runs.prod, "database-monitoring-postgresql");
      assert.equal(prod.inputs.sslmode, "verify-full");
      assert.match(String(prod.inputs.sslrootcert), /rds-ca-stand-in\.pem$/);
      const test = byName(runs.test, "database-monitoring-postgresql");
      assert.equal(test.inputs.sslmode, "require");
      assert.equal(test.inputs.sslrootcert, undefined);
    });
  });

  describe("failure notice for cloud resources", () => {
    const cloud = (run: ProgramRun) => run.registrations.filter((r) => r.custom && /^(aws|postgresql):/.test(r.type));
    for (const stack of ["test", "prod"]) {
      it(`${stack}: every AWS and postgresql resource carries the error hook; commands notify themselves`, () => {
        const run = runs[stack];
        assert.deepEqual(run.errorHooks, ["vibes-failure-notice"], "one hook, registered once");
        const names = cloud(run).map((r) => r.name);
        for (const name of ["backup-vault-bucket", "backup-vault-tls-only", "rds-snapshot-snapshot", "monitoring-alarms", "monitoring-cpu", "database-monitoring-role", "database-monitoring-tables-select"]) {
          assert.ok(names.includes(name), `${name} is registered`);
        }
        for (const r of cloud(run)) assert.deepEqual(r.onError, ["vibes-failure-notice"], `${r.name} (${r.type})`);
        for (const c of ofType(run, COMMAND)) assert.deepEqual(c.onError, [], `${c.name}: the hook step reports its own failure`);
      });
    }

    it("dev has no notification channel: no error hook at all", () => {
      assert.deepEqual(runs.dev.errorHooks, []);
      assert.deepEqual(runs.dev.registrations.filter((r) => r.onError.length > 0).map((r) => r.name), []);
    });
  });

  describe("commands", () => {
    for (const stack of ["dev", "test", "prod"]) {
      it(`${stack}: every stage runs bin/vibes-hooks (relative, no dir, no triggers), logging stderr only, without the previous output`, () => {
        const commands = ofType(runs[stack], COMMAND);
        const steps = commands.map((c) => String(c.inputs.create).split(" ").slice(0, 3).join(" "));
        assert.deepEqual(steps.filter((s) => s.startsWith("bin/vibes-hooks")).sort(), [
          "bin/vibes-hooks backup --label",
          "bin/vibes-hooks copy drop",
          "bin/vibes-hooks maintenance off",
          "bin/vibes-hooks maintenance on",
          "bin/vibes-hooks migrate --to",
          "bin/vibes-hooks notify start",
          "bin/vibes-hooks notify success",
          "bin/vibes-hooks preflight --expect-revision",
          "bin/vibes-hooks restart --health-timeout-seconds",
          "bin/vibes-hooks smoke --expect-id-type",
          "bin/vibes-hooks validate performance",
          "bin/vibes-hooks validate schema",
          "bin/vibes-hooks verify-restore --uri",
          // Only prod declares a maintenance window.
          ...(stack === "prod" ? ["bin/vibes-hooks window-check --window"] : []),
        ].sort());
        for (const c of commands) {
          assert.equal(c.inputs.dir, undefined, `${c.name}: no dir`);
          assert.equal(c.inputs.triggers, undefined, `${c.name}: triggers replace (create-before-delete)`);
          assert.equal(c.inputs.logging, "stderr", `${c.name}: logging`);
          assert.equal(c.inputs.addPreviousOutputInEnv, false, `${c.name}: the previous run's output would outgrow the environment`);
        }
      });
    }

    it("migrates to the target revision from the verified manifest, with the files' checksum", () => {
      const migrate = byName(runs.test, "migration-migrate");
      const manifest = runs.test.resolved.backupManifestUri as string;
      assert.equal(migrate.inputs.create, `bin/vibes-hooks migrate --to 001_uuid_schema_migration --manifest ${manifest} --files-sha256 ${FILES_SHA} ` +
        "--id-type uuid --id-default 'gen_random_uuid()' --uuid-version 4");
      assert.ok(!/vibes-hooks|downgrade|migrate/.test(String(migrate.inputs.delete)), "delete must never downgrade");
      assert.equal(env(migrate).VIBES_LOCK_TIMEOUT, "5s");
      assert.equal(env(migrate).VIBES_MIGRATION_TIMEOUT, "1h");
      assert.equal(env(byName(runs.prod, "migration-migrate")).VIBES_LOCK_TIMEOUT, "3s");
      assert.equal(env(migrate).VIBES_APP_DIR, "app");
      const validate = byName(runs.test, "validation-validate");
      assert.equal(validate.inputs.create, `bin/vibes-hooks validate schema data --use-recorded --manifest ${manifest} --revision 001_uuid_schema_migration ` +
        "--id-type uuid --id-default 'gen_random_uuid()' --uuid-version 4");
      assert.equal(byName(runs.test, "post-deploy-checks-smoke").inputs.create, "bin/vibes-hooks smoke --expect-id-type uuid");
    });

    it("rolls back by target revision alone: integer ids expected, every known revision accepted", async () => {
      const run = await runProgram("test", { overrides: { targetRevision: "0000_initial" } });
      assert.match(String(byName(run, "migration-migrate").inputs.create), /^bin\/vibes-hooks migrate --to 0000_initial .* --id-type integer --id-default 'gen_random_uuid\(\)' --uuid-version 4$/);
      assert.match(String(byName(run, "validation-validate").inputs.create), / --revision 0000_initial --id-type integer /);
      assert.equal(byName(run, "post-deploy-checks-smoke").inputs.create, "bin/vibes-hooks smoke --expect-id-type integer");
      assert.equal(byName(run, "preflight-preflight").inputs.create,
        "bin/vibes-hooks preflight --expect-revision 0000_initial --expect-revision 001_uuid_schema_migration --min-free-ratio 1.5 --storage-bytes 107374182400 --target 0000_initial");
      assert.equal(run.resolved.idType, "integer");
    });

    it("runs the SQL files in sql mode, planned with their own checksum; alembic command overrides only in alembic mode", async () => {
      const run = await runProgram("test", { overrides: { migrationMode: "sql", sqlDir: "app/migrations/sql" } });
      const migrate = byName(run, "migration-migrate");
      const sqlSha = plannedMigrationFilesSha256({ mode: "sql", sqlDir: path.join(ROOT, "app/migrations/sql") });
      assert.notEqual(sqlSha, FILES_SHA);
      assert.equal(migrate.inputs.create,
        `bin/vibes-hooks migrate --to 001_uuid_schema_migration --manifest ${run.resolved.backupManifestUri} --files-sha256 ${sqlSha} --id-type uuid --id-default 'gen_random_uuid()' --uuid-version 4 --mode sql --sql-dir app/migrations/sql`);
      assert.equal(env(migrate).VIBES_MIGRATION_FILES_SHA256, sqlSha, "a changed SQL file re-runs the chain");
      assert.equal(run.resolved.migrationFilesSha256, sqlSha);

      const overridden = await runProgram("test", { overrides: { upCommand: "./up.sh {rev}", downCommand: "./down.sh {rev}" } });
      assert.match(String(byName(overridden, "migration-migrate").inputs.create), / --files-sha256 [0-9a-f]{64} --id-type uuid --id-default 'gen_random_uuid\(\)' --uuid-version 4 --up '\.\/up\.sh \{rev\}' --down '\.\/down\.sh \{rev\}'$/);
    });

    it("every step of an AWS stack reports to the alarm topic; dev has none", () => {
      for (const r of ofType(runs.prod, COMMAND)) {
        assert.equal(env(r).VIBES_NOTIFY_TOPIC_ARN, "arn:aws:sns:eu-west-1:123456789012:vibes-prod-alarms", r.name);
        assert.equal(env(r).VIBES_STACK, "prod", r.name);
      }
      for (const r of ofType(runs.dev, COMMAND)) assert.equal(env(r).VIBES_NOTIFY_TOPIC_ARN, undefined, r.name);
    });

    it("gives each step its settings through the environment", () => {
      const run = runs.test;
      const backup = env(byName(run, "backup-dump"));
      assert.equal(backup.DATABASE_URL, "postgresql://vibes@vibes-test.cluster-placeholder.eu-west-1.rds.amazonaws.com:5432/vibes_test?sslmode=require");
      assert.equal(backup.VIBES_TABLES, "users,journals,tags,journal_tags");
      assert.equal(backup.VIBES_BACKUP_TARGET, "s3");
      assert.equal(backup.VIBES_BACKUP_BUCKET, "vibes-backups-test-eu-west-1");
      assert.equal(backup.VIBES_BACKUP_PREFIX, "pre-uuid-migration/");
      assert.equal(backup.AWS_REGION, "eu-west-1");
      const devBackup = env(byName(runs.dev, "backup-dump"));
      assert.equal(devBackup.VIBES_BACKUP_TARGET, "local");
      assert.equal(devBackup.VIBES_BACKUP_DIR, ".dev/backups");
      assert.equal(devBackup.AWS_REGION, undefined);
      assert.equal(env(byName(run, "maintenance-on-maintenance")).VIBES_APP_URL, "https://vibes-test.internal.example");
      // The restart step waits for /health itself: one process fewer inside the window.
      assert.equal(byName(run, "app-release-restart").inputs.create, "bin/vibes-hooks restart --health-timeout-seconds 120 --health-interval-seconds 2");
      assert.equal(byName(runs.dev, "app-release-restart").inputs.create, "bin/vibes-hooks restart --health-timeout-seconds 60 --health-interval-seconds 2");
      assert.equal(env(byName(run, "app-release-restart")).VIBES_APP_URL, "https://vibes-test.internal.example");
      assert.equal(byName(run, "preflight-preflight").inputs.create,
        "bin/vibes-hooks preflight --expect-revision 0000_initial --expect-revision 001_uuid_schema_migration --min-free-ratio 1.5 --storage-bytes 107374182400 --target 001_uuid_schema_migration");
      // RDS's allocated storage (100 GiB here) lets preflight estimate free space; dev measures its disk.
      assert.doesNotMatch(String(byName(runs.dev, "preflight-preflight").inputs.create), /--storage-bytes/);
    });

    it("keeps the verified copy for a rollback by swap, and the steps after the migration roll back on failure", async () => {
      for (const stack of ["dev", "test", "prod"]) {
        const run = runs[stack];
        assert.match(String(byName(run, "backup-verify-restore").inputs.create), / --keep-copy$/, stack);
        assert.equal(env(byName(run, "backup-verify-restore")).VIBES_ROLLBACK, "swap", stack);
        for (const name of ["validation-validate", "app-release-restart", "post-deploy-checks-smoke"]) {
          const e = env(byName(run, name));
          assert.equal(e.VIBES_ROLLBACK_ON_FAILURE, "1", `${stack} ${name}`);
          assert.equal(e.VIBES_ROLLBACK_MANIFEST, run.resolved.backupManifestUri, `${stack} ${name} goes back to the backup the migration relied on`);
          assert.ok(e.DATABASE_URL && e.VIBES_BACKUP_TARGET && e.VIBES_RESTART_COMMAND && e.VIBES_APP_URL, `${stack} ${name} has what the rollback needs`);
        }
        // Beside the release, the performance checks leave the database to it.
        assert.equal(env(byName(run, "post-deploy-checks-performance")).VIBES_ROLLBACK_ON_FAILURE, undefined, stack);
        assert.equal(byName(run, "maintenance-off-drop-copy").inputs.create, "bin/vibes-hooks copy drop");
      }
      const restoring = await runProgram("test", { overrides: { rollbackStrategy: "restore" } });
      assert.doesNotMatch(String(byName(restoring, "backup-verify-restore").inputs.create), /--keep-copy/);
      assert.equal(env(byName(restoring, "migration-migrate")).VIBES_ROLLBACK, "restore");
    });

    it("restarts over SSH on AWS stacks (host and command in the environment) and locally on dev", () => {
      const remote = byName(runs.prod, "app-release-restart");
      assert.equal(remote.inputs.create, "bin/vibes-hooks restart --health-timeout-seconds 300 --health-interval-seconds 2");
      assert.equal(env(remote).VIBES_APP_URL, "https://vibes.example", "the health gate polls the app from here");
      assert.equal(env(remote).VIBES_RESTART_HOST, "deploy@vibes-prod-app.internal.example");
      assert.equal(env(remote).VIBES_RESTART_COMMAND, "sudo systemctl restart vibes");
      // The database password is for the rollback after a failed release (the swap runs here); over
      // ssh no secret of ours travels to the app host (test/hooks/restart.test.ts).
      assert.deepEqual(secretPaths(remote.wire), ["environment.VIBES_DB_PASSWORD", "environment.VIBES_DEPLOYMENT_DIGEST"], "the remote restart gets only the rollback's password");
      const localRestart = byName(runs.dev, "app-release-restart");
      assert.equal(localRestart.inputs.create, "bin/vibes-hooks restart --health-timeout-seconds 60 --health-interval-seconds 2");
      assert.equal(env(localRestart).VIBES_RESTART_COMMAND, "scripts/dev-env.sh restart-app");
      assert.equal(env(localRestart).VIBES_RESTART_HOST, undefined);
    });
  });

  describe("graph order", () => {
    // [stage command, the commands or resources it must wait for]
    const edges = (aws: boolean): [string, string[]][] => [
      [aws ? "backup-vault-bucket" : "backup-vault-folder", ["gates-notify-start"]],
      // The backup is taken and proven while the app still serves; the window opens after it.
      ["backup-dump", aws ? ["backup-vault-bucket", "backup-vault-encryption", "backup-vault-public-access", "backup-vault-tls-only"] : ["backup-vault-folder"]],
      ["backup-verify-restore", ["backup-dump"]],
      ...(aws ? [["rds-snapshot-snapshot", ["backup-verify-restore"]] as [string, string[]]] : []),
      ["maintenance-on-maintenance", aws ? ["backup-verify-restore", "rds-snapshot-snapshot"] : ["backup-verify-restore"]],
      ["migration-migrate", ["maintenance-on-maintenance", "backup-verify-restore"]],
      ["validation-validate", ["migration-migrate"]],
      ["app-release-restart", ["validation-validate"]],
      ["post-deploy-checks-smoke", ["app-release-restart"]],
      ["post-deploy-checks-performance", ["validation-validate"]],
      ["maintenance-off-maintenance", ["post-deploy-checks-smoke", "post-deploy-checks-performance"]],
      // The copy kept for a rollback by swap goes once the app serves again.
      ["maintenance-off-drop-copy", ["maintenance-off-maintenance"]],
      ["notify-success", ["maintenance-off-maintenance", "validation-validate"]],
      // The monitoring role's grants never queue behind the migration's locks.
      ...(aws ? [["database-monitoring-tables-select", ["maintenance-off-maintenance"]] as [string, string[]]] : []),
    ];
    for (const stack of ["dev", "test", "prod"]) {
      it(`${stack}: each stage waits for the ones it must`, () => {
        const run = runs[stack];
        const windowEdges: [string, string[]][] = stack === "prod"
          ? [["gates-window-check", ["preflight-preflight"]], ["gates-notify-start", ["gates-window-check"]]]
          : [["gates-notify-start", ["preflight-preflight"]]];
        for (const [stage, before] of [...edges(stack !== "dev"), ...windowEdges]) {
          const deps = byName(run, stage).dependencies;
          for (const b of before) assert.ok(deps.includes(byName(run, b).urn), `${stage} must depend on ${b}`);
        }
        // The performance checks need only the database: they must not wait for the app's restart.
        const performance = byName(run, "post-deploy-checks-performance").dependencies;
        assert.ok(!performance.includes(byName(run, "app-release-restart").urn), "performance must not wait for the app's release");
      });
    }

    it("the verified backup's checksum reaches every stage after it, so a new backup re-runs them", () => {
      const sha = runs.test.resolved.backupSha256;
      for (const name of ["maintenance-on-maintenance", "migration-migrate", "validation-validate", "app-release-restart",
        "post-deploy-checks-smoke", "post-deploy-checks-performance", "maintenance-off-maintenance"]) {
        assert.equal(env(byName(runs.test, name)).VIBES_BACKUP_SHA256, sha, name);
      }
    });
  });

  describe("re-runs", () => {
    const inputsByName = (run: ProgramRun) => new Map(run.registrations.map((r) => [r.name, JSON.stringify(r.wire)]));

    it("an unchanged up registers identical inputs (nothing re-runs)", async () => {
      const again = await runProgram("prod");
      assert.deepEqual(inputsByName(again), inputsByName(runs.prod));
    });

    // Every command of prod's deployment chain, in no particular order.
    const CHAIN = [
      "app-release-restart", "backup-dump", "backup-verify-restore",
      "gates-notify-start", "gates-window-check",
      "maintenance-off-drop-copy", "maintenance-off-maintenance", "maintenance-on-maintenance", "migration-migrate", "notify-success",
      "post-deploy-checks-performance", "post-deploy-checks-smoke", "preflight-preflight", "validation-validate",
    ];
    const changedFrom = (base: ProgramRun, run: ProgramRun, type?: string) => {
      const before = inputsByName(base);
      const names = new Set(run.registrations.filter((r) => !type || r.type === type).map((r) => r.name));
      return [...inputsByName(run)].filter(([name, wire]) => names.has(name) && before.get(name) !== wire).map(([name]) => name).sort();
    };

    it("a new target revision re-runs the whole chain, gates and maintenance mode included, and takes a new snapshot", async () => {
      // Prod's promotion gate needs the test stack to have rolled back first.
      const validatedOnTest = testStackOutputs.schemaRevisionAfter;
      testStackOutputs.schemaRevisionAfter = "0000_initial";
      const rollback = await runProgram("prod", { overrides: { targetRevision: "0000_initial" } })
        .finally(() => { testStackOutputs.schemaRevisionAfter = validatedOnTest; });
      assert.deepEqual(changedFrom(runs.prod, rollback), [...CHAIN, "rds-snapshot-snapshot"].sort());
      assert.match(String(byName(rollback, "migration-migrate").inputs.create), /^bin\/vibes-hooks migrate --to 0000_initial /);
      assert.equal(byName(rollback, "rds-snapshot-snapshot").inputs.dbSnapshotIdentifier, "vibes-prod-pre-0000-initial-abababab");
    });

    // A part of the chain re-running alone would back up without maintenance mode, or restart
    // the app outside the window: any setting the chain uses re-runs all of it.
    for (const [what, overrides] of [
      ["the lock timeout", { lockTimeout: "7s" }],
      ["the backup prefix", { backupPrefix: "elsewhere/" }],
      ["a rotated database password", { databasePassword: "pw-R0tated-77aa" }],
      ["the health gate's timeout", { healthGateTimeoutSeconds: "200" }],
    ] as [string, Record<string, string>][]) {
      it(`${what} re-runs the whole chain, never a part of it`, async () => {
        assert.deepEqual(changedFrom(runs.prod, await runProgram("prod", { overrides }), COMMAND), CHAIN.slice().sort());
      });
    }

    it("an alarm threshold changes the alarm only", async () => {
      const run = await runProgram("prod", { overrides: { alarmCpuUtilizationPercent: "60" } });
      assert.deepEqual(changedFrom(runs.prod, run), ["monitoring-cpu"]);
    });
  });

  describe("secrets", () => {
    for (const stack of ["dev", "test", "prod"]) {
      it(`${stack}: no secret in any plain input, command string or output`, async () => {
        const run = runs[stack];
        for (const r of run.registrations) {
          for (const secret of Object.values(TEST_SECRETS)) {
            assert.deepEqual(plainOccurrences(r.wire, secret), [], `${r.name} holds a secret in plain inputs`);
          }
          if (r.type === COMMAND) assert.equal(typeof r.wire.create, "string", `${r.name}: the command string is plain text, free of secrets`);
        }
        for (const [key, value] of Object.entries(run.outputs)) {
          if (pulumi.Output.isInstance(value)) assert.equal(await pulumi.isSecret(value), false, `output ${key} must be plain`);
          for (const secret of Object.values(TEST_SECRETS)) assert.ok(!JSON.stringify(run.resolved[key]).includes(secret), key);
        }
      });
    }

    it("each step gets only the secrets it needs, as secrets", () => {
      const expected: Record<string, string[]> = {
        "preflight-preflight": ["environment.VIBES_DB_PASSWORD"],
        "maintenance-on-maintenance": ["environment.VIBES_ADMIN_TOKEN"],
        "backup-dump": ["environment.VIBES_DB_PASSWORD"],
        "backup-verify-restore": ["environment.VIBES_DB_PASSWORD"],
        "migration-migrate": ["environment.VIBES_DB_PASSWORD"],
        // After the migration a failure rolls back and restarts the app on dev's scripts, which need the token.
        "validation-validate": ["environment.VIBES_ADMIN_TOKEN", "environment.VIBES_DB_PASSWORD"],
        "app-release-restart": ["environment.VIBES_ADMIN_TOKEN", "environment.VIBES_DB_PASSWORD"],
        "post-deploy-checks-smoke": ["environment.VIBES_ADMIN_TOKEN", "environment.VIBES_DB_PASSWORD"],
        "post-deploy-checks-performance": ["environment.VIBES_DB_PASSWORD"],
        "maintenance-off-maintenance": ["environment.VIBES_ADMIN_TOKEN"],
        "maintenance-off-drop-copy": ["environment.VIBES_DB_PASSWORD"],
        "backup-vault-folder": [],
        "gates-notify-start": [],
        "notify-success": [],
      };
      for (const [name, paths] of Object.entries(expected)) {
        // Every step also gets the chain digest, a secret because secrets go into it.
        const all = [...paths, ...(name === "backup-vault-folder" ? [] : ["environment.VIBES_DEPLOYMENT_DIGEST"])].sort();
        assert.deepEqual(secretPaths(byName(runs.dev, name).wire).sort(), all, name);
      }
      assert.equal((wireEnv(byName(runs.test, "backup-dump")).VIBES_DB_PASSWORD as { value: string }).value, TEST_SECRETS.databasePassword);
    });
  });

  describe("stack outputs", () => {
    const common = ["appUrl", "backupBytes", "backupManifestUri", "backupObjectUri", "backupRetakenInWindow", "backupSha256", "idType",
      "migrationFilesSha256", "schemaRevisionAfter", "schemaRevisionBefore", "targetRevision", "validated", "validationSummary"];
    const aws = [...common, "backupBucketArn", "backupBucketName", "snapshotArn", "snapshotIdentifier",
      "alarmNames", "alarmTopicArn", "monitoringRoleName"];
    const expected: Record<string, string[]> = {
      dev: [...common, "backupFolder"],
      test: aws,
      prod: [...aws, "promotionOverride"],
    };
    for (const stack of ["dev", "test", "prod"]) {
      it(`${stack}: the set is pinned (docs/outputs.md)`, () => {
        assert.deepEqual(Object.keys(runs[stack].outputs).sort(), expected[stack].sort());
      });
    }

    it("carries the values other teams read", () => {
      const o = runs.prod.resolved;
      assert.equal(o.backupBucketName, "vibes-backups-prod-eu-west-1");
      assert.equal(o.backupBucketArn, "arn:aws:s3:::vibes-backups-prod-eu-west-1");
      assert.match(String(o.backupObjectUri), /^s3:\/\/vibes-backups-prod-eu-west-1\/pre-uuid-migration\//);
      assert.match(String(o.backupSha256), /^[0-9a-f]{64}$/);
      assert.equal(o.backupBytes, 4096);
      assert.equal(o.backupRetakenInWindow, false);
      // Named after the revision and the verified backup's checksum ("ab" x 32 in these mocks).
      assert.equal(o.snapshotIdentifier, "vibes-prod-pre-001-uuid-schema-migration-abababab");
      assert.match(String(o.snapshotArn), /^arn:aws:rds:.*:snapshot:vibes-prod-pre-001-uuid-schema-migration-abababab$/);
      assert.equal(o.schemaRevisionBefore, "0000_initial");
      assert.equal(o.schemaRevisionAfter, "001_uuid_schema_migration");
      assert.equal(o.idType, "uuid");
      assert.equal(o.validationSummary, "12/12 checks passed");
      assert.equal(o.migrationFilesSha256, FILES_SHA);
      assert.equal(o.appUrl, "https://vibes.example");
      assert.equal(runs.dev.resolved.backupFolder, ".dev/backups");
      assert.equal(o.validated, true);
      assert.equal(o.alarmTopicArn, "arn:aws:sns:eu-west-1:123456789012:vibes-prod-alarms");
      assert.deepEqual(o.alarmNames, ["vibes-prod-cpu", "vibes-prod-freeable-memory", "vibes-prod-free-storage",
        "vibes-prod-connections", "vibes-prod-read-latency", "vibes-prod-write-latency"]);
      assert.equal(o.monitoringRoleName, "vibes_monitor");
      assert.equal(o.promotionOverride, null);
    });
  });

  describe("preview", () => {
    it("plans the whole graph without running anything", async () => {
      const preview = await runProgram("prod", { preview: true });
      assert.equal(preview.registrations.length, runs.prod.registrations.length);
    });

    it("logs the plan summary from the database, reading only", async () => {
      const pg = await getCluster();
      const db = await pg.createVibesDatabase({ users: 5, journalsPerUser: 2, tags: 3 });
      const passwordFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "vibes-plan-")), "pw");
      fs.writeFileSync(passwordFile, pg.password, { mode: 0o600 });
      const infos: string[] = [];
      const original = console.log;
      console.log = (msg: string) => infos.push(msg);
      try {
        await runProgram("dev", { preview: true, overrides: { planSummary: "true", databaseUrl: db.env.DATABASE_URL, databasePasswordFile: passwordFile } });
      } finally {
        console.log = original;
        fs.rmSync(path.dirname(passwordFile), { recursive: true, force: true });
      }
      const plan = infos.join("\n");
      assert.match(plan, /plan: schema revision 0000_initial -> 001_uuid_schema_migration/);
      assert.match(plan, /plan: rows \(estimates\) journal_tags ~\d+, journals ~10, tags ~3, users ~5; database size \d/);
      assert.match(plan, /plan: backup to \.dev\/backups\/ \(local\)/);
      assert.ok(!plan.includes(pg.password));
      const revision = await pg.query(db.name, "SELECT version_num FROM alembic_version");
      assert.equal(revision[0].version_num, "0000_initial");
      await pg.dropDatabase(db.name);
    });

    it("warns and goes on when the plan summary cannot reach the database", async () => {
      const warnings: string[] = [];
      const original = console.warn;
      console.warn = (msg: string) => warnings.push(msg);
      try {
        const preview = await runProgram("dev", {
          preview: true,
          overrides: { planSummary: "true", databaseUrl: "postgresql://vibes@127.0.0.1:1/vibes_dev" },
        });
        assert.ok(preview.registrations.length > 0);
      } finally {
        console.warn = original;
      }
      const warning = warnings.find((w) => w.includes("plan summary skipped"));
      assert.ok(warning, warnings.join("\n"));
      assert.ok(!warning.includes(TEST_SECRETS.databasePassword));
    });
  });
});
