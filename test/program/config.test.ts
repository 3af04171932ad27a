// config.ts: every bad value fails with a message naming the key and the fix, before any
// resource exists; Pulumi.yaml declares exactly the keys the program reads.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { migrationFilesSha256, plannedMigrationFilesSha256 } from "../../common/migrationFiles";
import { loadConfig, PROJECT, s3BucketNameProblem, snapshotIdentifier } from "../../config";
import { ROOT, runProgram, sourceFor, TEST_SECRETS } from "./harness";

type Overrides = Record<string, string | undefined>;

function errorFor(stack: string, overrides: Overrides): string {
  try {
    loadConfig(sourceFor(stack, overrides), stack);
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail(`expected a configuration error for ${JSON.stringify(overrides)} on ${stack}`);
}

/** The problem line for `key`: names the key, says what is wrong and how to fix it. */
function problemLine(message: string, key: string): string {
  const line = message.split("\n").find((l) => l.startsWith(`  - ${key}:`));
  assert.ok(line, `no problem reported for ${key} in:\n${message}`);
  assert.match(line, /; .*(set|run|use|remove|keep|pulumi config)/, `no fix given for ${key}: ${line}`);
  return line;
}

describe("config", () => {
  for (const stack of ["dev", "test", "prod"]) {
    it(`accepts the real ${stack} stack file`, () => {
      const config = loadConfig(sourceFor(stack), stack);
      assert.equal(config.migration.targetRevision, "001_uuid_schema_migration");
      assert.match(config.migration.filesSha256, /^[0-9a-f]{64}$/);
    });
  }

  it("expects the target revision's id type and accepts every known revision before a run", () => {
    const up = loadConfig(sourceFor("test"), "test").migration;
    assert.deepEqual(up.knownRevisions, ["0000_initial", "001_uuid_schema_migration"]);
    assert.equal(up.expectedIdType, "uuid");
    const rollback = loadConfig(sourceFor("test", { targetRevision: "0000_initial" }), "test").migration;
    assert.equal(rollback.expectedIdType, "integer");
  });

  it("reads the id settings and schema-qualified tables", () => {
    const c = loadConfig(sourceFor("test", { tables: '["public.users", "journals", "tags", "journal_tags"]', idDefault: "none", uuidVersion: "7", acceptRenumberedIds: "true" }), "test");
    assert.deepEqual(c.tables, ["public.users", "journals", "tags", "journal_tags"]);
    assert.deepEqual([c.migration.idDefault, c.migration.uuidVersion, c.migration.acceptRenumberedIds], ["none", "7", true]);
    const defaults = loadConfig(sourceFor("test"), "test").migration;
    assert.deepEqual([defaults.idDefault, defaults.uuidVersion, defaults.acceptRenumberedIds], ["gen_random_uuid()", "4", false]);
  });

  it("plans sql mode with the SQL folder's checksum, and alembic mode with the revisions' checksum", () => {
    const sql = loadConfig(sourceFor("test", { migrationMode: "sql", sqlDir: "app/migrations/sql" }), "test").migration;
    assert.equal(sql.sqlDir, "app/migrations/sql");
    assert.equal(sql.filesSha256, plannedMigrationFilesSha256({ mode: "sql", sqlDir: path.join(ROOT, "app/migrations/sql") }));
    const alembic = loadConfig(sourceFor("test"), "test").migration;
    assert.equal(alembic.filesSha256, migrationFilesSha256(path.join(ROOT, "app/migrations/versions")));
    assert.notEqual(sql.filesSha256, alembic.filesSha256);
  });

  it("reads the dev secrets from the files dev-env.sh writes, trailing newline removed", async () => {
    const config = loadConfig(sourceFor("dev"), "dev");
    const password = await new Promise((resolve) => config.database.password.apply(resolve));
    assert.equal(password, TEST_SECRETS.databasePassword);
  });

  const cases: [string, string, Overrides, RegExp][] = [
    ["test", "databaseUrl", { databaseUrl: "not a url" }, /is not a URL/],
    ["test", "databaseUrl", { databaseUrl: "mysql://vibes@db:3306/vibes" }, /scheme must be postgresql/],
    ["test", "databaseUrl", { databaseUrl: "postgresql://vibes@db:5432/" }, /names no database/],
    ["test", "databaseUrl", { databaseUrl: "postgresql://db:5432/vibes" }, /names no user/],
    ["test", "databaseUrl", { databaseUrl: "postgresql://vibes@db/vibes?sslmode=maybe" }, /sslmode/],
    ["test", "backupBucketName", { backupBucketName: "Vibes_Backups" }, /S3 bucket naming rules/],
    ["test", "backupBucketName", { backupBucketName: "ab" }, /3 to 63/],
    ["test", "backupBucketName", { backupBucketName: "192.168.10.12" }, /IP address/],
    ["test", "backupBucketName", { backupBucketName: "vibes..backups" }, /adjacent dots/],
    ["test", "backupBucketName", { backupBucketName: "xn--vibes-backups" }, /xn--/],
    ["test", "backupBucketName", { backupBucketName: "vibes-backups-s3alias" }, /-s3alias/],
    ["test", "backupBucketName", { backupBucketName: "-vibes-backups" }, /start and end/],
    ["test", "backupBucketName", { backupBucketName: undefined }, /required when backupTarget is s3/],
    ["dev", "backupBucketName", { backupTarget: "s3", "aws:region": "eu-west-1" }, /required when backupTarget is s3/],
    ["test", "backupTarget", { backupTarget: "ftp" }, /one of local, s3/],
    ["dev", "backupDir", { backupDir: "" }, /required when backupTarget is local/],
    ["prod", "databaseSslRootCert", { databaseSslRootCert: undefined }, /is required with sslmode=verify-full in databaseUrl/],
    ["prod", "databaseSslRootCert", { databaseSslRootCert: "/nonexistent/global-bundle.pem" }, /does not exist/],
    ["prod", "snapshotEnabled", { snapshotEnabled: "false" }, /must be true on prod/],
    ["prod", "protectBackups", { protectBackups: "false" }, /must be true on prod/],
    ["prod", "backupTarget", { backupTarget: "local" }, /must be s3 on prod/],
    ["test", "snapshotEnabled", { snapshotEnabled: "yes" }, /true or false/],
    ["test", "databasePassword", { databasePassword: undefined }, /secret is missing/],
    ["test", "adminToken", { adminToken: undefined }, /secret is missing/],
    ["dev", "databasePasswordFile", { databasePasswordFile: "/nonexistent/db-password" }, /cannot read/],
    ["test", "databasePasswordFile", { databasePasswordFile: "/tmp/db-password", databasePassword: undefined }, /only allowed on the dev stack/],
    ["test", "healthGateTimeoutSeconds", { healthGateTimeoutSeconds: "-5" }, /integer >= 1/],
    ["test", "healthGateTimeoutSeconds", { healthGateTimeoutSeconds: "0" }, /integer >= 1/],
    ["test", "healthGateIntervalSeconds", { healthGateIntervalSeconds: "500" }, /longer than healthGateTimeoutSeconds/],
    ["test", "backupRetentionDays", { backupRetentionDays: "-1" }, /integer >= 1/],
    ["test", "lockTimeout", { lockTimeout: "-1s" }, /positive PostgreSQL duration/],
    ["test", "statementTimeout", { statementTimeout: "0" }, /positive PostgreSQL duration/],
    ["test", "migrationTimeout", { migrationTimeout: "soon" }, /positive PostgreSQL duration/],
    ["test", "migrationTimeout", { migrationTimeout: "10min" }, /10min is shorter than statementTimeout 30min/],
    ["test", "migrationMode", { migrationMode: "flyway" }, /one of alembic, sql/],
    ["test", "sqlDir", { migrationMode: "sql" }, /required when migrationMode is sql/],
    ["test", "sqlDir", { sqlDir: "/nonexistent/sql", migrationMode: "sql" }, /not a folder holding at least one <revision>\.up\.sql/],
    ["test", "sqlDir", { sqlDir: "app/migrations/versions", migrationMode: "sql" }, /not a folder holding at least one <revision>\.up\.sql/],
    ["test", "upCommand", { upCommand: "./up.sh {rev}", migrationMode: "sql", sqlDir: "app/migrations/sql" }, /only applies when migrationMode is alembic/],
    ["test", "targetRevision", { targetRevision: "001; rm -rf /" }, /alembic revision id/],
    ["test", "revisionIdTypes", { revisionIdTypes: '["0000_initial=int"]' }, /not revision=integer or revision=uuid/],
    ["test", "revisionIdTypes", { revisionIdTypes: "[]" }, /non-empty list/],
    ["test", "targetRevision", { targetRevision: "002_unknown" }, /not one of revisionIdTypes/],
    ["test", "databaseSslRootCert", { databaseSslRootCert: "/nonexistent/rds-bundle.pem" }, /does not exist/],
    ["test", "tables", { tables: "[]" }, /non-empty list/],
    ["test", "tables", { tables: '["users; drop"]' }, /non-empty list/],
    ["test", "tables", { tables: '["users", "users"]' }, /distinct/],
    ["test", "idDefault", { idDefault: "gen_random_uuid(); DROP TABLE users" }, /one SQL expression such as gen_random_uuid\(\), or none/],
    ["test", "uuidVersion", { uuidVersion: "5" }, /one of 4, 7, any/],
    ["test", "rollbackStrategy", { rollbackStrategy: "rename" }, /one of swap, restore/],
    ["test", "acceptRenumberedIds", { acceptRenumberedIds: "maybe" }, /true or false/],
    ["test", "appUrl", { appUrl: "localhost:8000" }, /http\(s\) URL/],
    ["test", "appDir", { appDir: "/nonexistent/app" }, /cannot be read/],
    ["test", "minFreeSpaceRatio", { minFreeSpaceRatio: "lots" }, /positive number/],
    ["test", "rdsInstanceIdentifier", { rdsInstanceIdentifier: undefined }, /exactly one of/],
    ["test", "rdsInstanceIdentifier", { rdsInstanceIdentifier: "vibes--test" }, /not an RDS identifier/],
    ["test", "rdsInstanceIdentifier", { rdsClusterIdentifier: "vibes-test-cluster" }, /set together with rdsClusterIdentifier/],
    ["test", "backupKmsKeyId", { backupEncryption: "AES256", backupKmsKeyId: "alias/backups" }, /not aws:kms/],
    ["test", "backupEncryption", { backupEncryption: "none" }, /one of aws:kms, AES256/],
    ["test", "aws:region", { "aws:region": undefined }, /required for the S3 backup vault/],
    ["test", "restartSshHost", { restartSshHost: "host; reboot" }, /host or user@host/],
  ];
  for (const [stack, key, overrides, expected] of cases) {
    it(`${stack}: ${key} = ${JSON.stringify(Object.values(overrides)[0])} fails naming ${key}`, () => {
      assert.match(problemLine(errorFor(stack, overrides), key), expected);
    });
  }

  it("rejects a password inside the database URL without echoing it", () => {
    const message = errorFor("test", { databaseUrl: "postgresql://vibes:hunter2-in-url@db:5432/vibes" });
    assert.match(problemLine(message, "databaseUrl"), /holds a password.*databasePassword/);
    assert.ok(!message.includes("hunter2-in-url"), message);
  });

  it("rejects a secret stored in plain text in the stack file, without echoing it", () => {
    const source = sourceFor("test");
    const message = (() => {
      try {
        loadConfig({ ...source, isSecret: () => false }, "test");
      } catch (err) {
        return (err as Error).message;
      }
      return assert.fail("expected an error");
    })();
    assert.match(problemLine(message, "databasePassword"), /plain text.*--secret/);
    assert.match(problemLine(message, "adminToken"), /plain text.*--secret/);
    assert.ok(!message.includes(TEST_SECRETS.databasePassword) && !message.includes(TEST_SECRETS.adminToken));
  });

  it("reports every problem in one error", () => {
    const message = errorFor("prod", { backupTarget: "ftp", snapshotEnabled: "false", lockTimeout: "soon" });
    for (const key of ["backupTarget", "snapshotEnabled", "lockTimeout"]) problemLine(message, key);
    assert.match(message, /^invalid configuration for stack prod \(\d+ problems\)/);
  });

  it("fails the program before any resource is registered", async () => {
    const run = runProgram("test", { overrides: { backupBucketName: "Bad_Bucket" } });
    await assert.rejects(run, /backupBucketName/);
  });

  it("checks S3 bucket names against S3's rules", () => {
    for (const ok of ["vibes-backups-prod-eu-west-1", "a.b-c", "abc"]) assert.equal(s3BucketNameProblem(ok), undefined, ok);
    for (const bad of ["ab", "a".repeat(64), "UPPER", "under_score", "ends-", "a..b", "10.0.0.1", "sthree-x", "x--ol-s3"]) {
      assert.ok(s3BucketNameProblem(bad), bad);
    }
  });

  it("names the snapshot after the target revision within RDS's rules", () => {
    assert.equal(snapshotIdentifier("prod", "001_uuid_schema_migration", 255), "vibes-prod-pre-001-uuid-schema-migration");
    assert.equal(snapshotIdentifier("prod", "A__b--c_", 255), "vibes-prod-pre-a-b-c");
    const short = snapshotIdentifier("prod", "x".repeat(56) + "_y", 63);
    assert.ok(short.length <= 63 && !short.endsWith("-") && /^[a-z][a-z0-9-]*$/.test(short), short);
  });

  describe("Pulumi.yaml and the stack files", () => {
    const project = yaml.load(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as {
      name: string;
      config: Record<string, { type?: string; description?: string; default?: unknown; value?: unknown; secret?: boolean }>;
    };

    it("declares exactly the keys the program reads, each with a type and a description", () => {
      const read = new Set<string>();
      loadConfig(sourceFor("prod", {}, read), "prod");
      const projectKeys = [...read].filter((k) => !k.includes(":")).sort();
      assert.deepEqual(Object.keys(project.config).sort(), projectKeys);
      assert.equal(project.name, PROJECT);
      for (const [key, decl] of Object.entries(project.config)) {
        assert.ok(decl.type && decl.description, `${key} needs type and description`);
        assert.ok(!(decl.default !== undefined && decl.value !== undefined), `${key} has both default and value`);
      }
    });

    for (const stack of ["dev", "test", "prod"]) {
      it(`${stack}: every key is declared, and secrets are never plain`, () => {
        const file = yaml.load(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, unknown> };
        for (const [key, value] of Object.entries(file.config)) {
          if (key === "aws:region") {
            assert.notEqual(stack, "dev", "no AWS settings on dev");
            continue;
          }
          const name = key.replace(`${PROJECT}:`, "");
          assert.ok(key.startsWith(`${PROJECT}:`) && project.config[name], `${stack}: ${key} is not declared in Pulumi.yaml`);
          if (name === "databasePassword" || name === "adminToken") {
            assert.ok(typeof value === "object" && value !== null && "secure" in value, `${stack}: ${key} must be secure:`);
          }
        }
        // Required keys (no default) must be in every stack file, or the CLI refuses to run.
        for (const [name, decl] of Object.entries(project.config)) {
          if (decl.default === undefined) assert.ok(`${PROJECT}:${name}` in file.config, `${stack} lacks required ${name}`);
        }
      });
    }
  });
});
