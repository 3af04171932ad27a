// The one place configuration is read and validated. Every key is declared (with its default)
// in Pulumi.yaml; the CLI merges those defaults into the stack's values before the program runs.
// Every problem is collected and reported in ONE error, before any resource is registered.
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { DatabaseUrlError, parseDatabaseUrl } from "./common/databaseUrl";
import { TABLE_NAME } from "./common/tables";
import { plannedMigrationFilesSha256 } from "./common/migrationFiles";
import { pgDurationMs } from "./common/text";
import type { IdType } from "./common/types";
import { loadSafetyConfig, SafetyConfig } from "./safety/config";
import { Bad, ConfigSource, rawValue, setCommand, stackSecret } from "./configSource";

export const PROJECT = "vibes-db-deploy";
const DEV_STACK = "dev";

export type BackupTarget = "local" | "s3";
export type MigrationMode = "alembic" | "sql";

export interface DeployConfig {
  stack: string;
  database: {
    /** postgresql://user@host:port/db[?sslmode=..], never with a password in it. */
    url: string;
    password: pulumi.Output<string>;
    /** CA bundle for verify-ca / verify-full (PGSSLROOTCERT for the hooks). */
    sslRootCert?: string;
  };
  adminToken: pulumi.Output<string>;
  tables: string[];
  app: {
    url: string;
    dir: string;
    /** Local shell command, or the remote command when `sshHost` is set. */
    restartCommand: string;
    restartSshHost?: string;
    healthGateTimeoutSeconds: number;
    healthGateIntervalSeconds: number;
  };
  migration: {
    /** Every revision the database may be at before a run (revisionIdTypes). */
    knownRevisions: string[];
    targetRevision: string;
    /** The id type the covered tables have at targetRevision. */
    expectedIdType: IdType;
    /** uuid ids' default after the migration: an expression, or "none" (ids made by the app). */
    idDefault: string;
    /** "4", "7" or "any". */
    uuidVersion: string;
    /** A rollback that renumbered the integer ids is accepted instead of restoring the backup. */
    acceptRenumberedIds: boolean;
    mode: MigrationMode;
    /** sql mode: folder of <revision>.up.sql / <revision>.down.sql files. */
    sqlDir?: string;
    /** Overrides for `migrate --up/--down` (alembic mode); undefined = alembic itself. */
    upCommand?: string;
    downCommand?: string;
    lockTimeout: string;
    statementTimeout: string;
    /** The whole migration command's limit (VIBES_MIGRATION_TIMEOUT). */
    migrationTimeout: string;
    /** How a failure inside the window goes back to the backup (VIBES_ROLLBACK). */
    rollbackStrategy: "swap" | "restore";
    /** offline: the guide's migration in the window; online: with writes going on (docs/online.md). */
    strategy: "offline" | "online";
    online: { contract: boolean; batchSize: number; pauseMs: number };
    /** SHA-256 over the mode's files (<appDir>/migrations/versions/*.py, or <sqlDir>/*.sql), computed at plan time. */
    filesSha256: string;
  };
  preflight: { minFreeSpaceRatio: number };
  backup: {
    target: BackupTarget;
    /** Local target: folder for dumps and manifests. */
    dir: string;
    bucketName?: string;
    prefix: string;
    retentionDays: number;
    encryption: "aws:kms" | "AES256";
    kmsKeyId?: string;
    s3Endpoint?: string;
    /** protect + retainOnDelete on what holds backups (prod). */
    protect: boolean;
  };
  /** The RDS instance or Aurora cluster behind databaseUrl (AWS stacks). */
  rds?: { kind: "instance" | "cluster"; identifier: string };
  snapshot?: {
    kind: "instance" | "cluster";
    /** The RDS instance or Aurora cluster to snapshot. */
    sourceIdentifier: string;
    /** Start of the snapshot's name, from the stack and the target revision; RdsSnapshot adds
     * the backup's checksum, so every deployment (a re-deploy after a rollback too) gets its own. */
    identifierPrefix: string;
  };
  /** Promotion and maintenance-window gates, notifications, monitoring (docs/safety.md). */
  safety: SafetyConfig;
  awsRegion?: string;
  /** Read the database during preview to log a plan summary. */
  planSummary: boolean;
}

const REVISION = /^[A-Za-z0-9_]+$/;
const RDS_ID = /^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,62}(?<!-)$/;

/** Reads the stack's configuration from Pulumi (program entry point). */
export function readConfig(): DeployConfig {
  const project = new pulumi.Config();
  const secretKeys = parseSecretKeys(process.env.PULUMI_CONFIG_SECRET_KEYS);
  return loadConfig(
    {
      get: (key) => {
        const [ns, name] = key.includes(":") ? key.split(":", 2) : [undefined, key];
        return ns ? new pulumi.Config(ns).get(name) : project.get(name);
      },
      // The language host lists the stack's encrypted keys in PULUMI_CONFIG_SECRET_KEYS.
      isSecret: (key) => secretKeys.has(key.includes(":") ? key : `${PROJECT}:${key}`),
    },
    pulumi.getStack(),
  );
}

function parseSecretKeys(raw: string | undefined): Set<string> {
  try {
    const keys: unknown = JSON.parse(raw || "[]");
    return new Set(Array.isArray(keys) ? keys.map(String) : []);
  } catch {
    return new Set();
  }
}

/** Validates raw values into a DeployConfig, or throws one error naming every bad key and its fix. */
export function loadConfig(source: ConfigSource, stack: string): DeployConfig {
  const problems: string[] = [];
  const bad: Bad = (key, problem, fix) => problems.push(`${key}: ${problem}; ${fix}`);
  const setCmd = (key: string, example: string, secret = false) => setCommand(stack, key, example, secret);
  const raw = (key: string) => rawValue(source, key);
  const str = (key: string, example: string): string => {
    const v = raw(key);
    if (v === undefined) bad(key, "is not set", setCmd(key, example));
    return v ?? "";
  };
  const int = (key: string, min: number, example: string): number => {
    const v = raw(key);
    if (v === undefined || !/^-?[0-9]+$/.test(v) || Number(v) < min) {
      bad(key, v === undefined ? "is not set" : `must be an integer >= ${min} (got ${JSON.stringify(v)})`, setCmd(key, example));
      return min;
    }
    return Number(v);
  };
  const bool = (key: string): boolean => {
    const v = raw(key);
    if (v !== "true" && v !== "false") {
      bad(key, `must be true or false (got ${JSON.stringify(v)})`, setCmd(key, "true"));
      return false;
    }
    return v === "true";
  };
  const oneOf = <T extends string>(key: string, allowed: readonly T[]): T => {
    const v = raw(key);
    if (!allowed.includes(v as T)) {
      bad(key, `must be one of ${allowed.join(", ")} (got ${JSON.stringify(v)})`, setCmd(key, allowed[0]));
      return allowed[0];
    }
    return v as T;
  };
  // A secret comes from the encrypted stack value, or (dev only) from a file the dev
  // environment writes: there is no Pulumi CLI here to encrypt a dev value into Pulumi.dev.yaml.
  const secret = (key: string, fileKey: string): pulumi.Output<string> => {
    const value = raw(key);
    const file = raw(fileKey);
    if (value !== undefined && file !== undefined) {
      bad(key, `is set together with ${fileKey}`, `keep one: pulumi config rm ${fileKey} --stack ${stack}`);
    } else if (value !== undefined) {
      return stackSecret(source, stack, key, value, bad);
    } else if (file !== undefined) {
      if (stack !== DEV_STACK) {
        bad(fileKey, `is only allowed on the ${DEV_STACK} stack`, `pulumi config rm ${fileKey} --stack ${stack} && pulumi config set --secret ${key} <value> --stack ${stack}`);
      } else {
        try {
          const content = fs.readFileSync(file, "utf8").replace(/\r?\n$/, "");
          if (content === "") bad(fileKey, `${file} is empty`, "run: npm run dev:env -- start (it writes the dev secrets)");
          return pulumi.secret(content);
        } catch {
          bad(fileKey, `cannot read ${file}`, "run: npm run dev:env -- start (it writes the dev secrets)");
        }
      }
    } else {
      bad(key, "secret is missing", setCmd(key, "<value>", true));
    }
    return pulumi.secret("");
  };

  // --- database and secrets
  const databaseUrl = str("databaseUrl", "postgresql://user@host:5432/db");
  const sslmode = databaseUrl ? checkDatabaseUrl(databaseUrl, (problem, fix) => bad("databaseUrl", problem, fix)) : null;
  const sslRootCert = raw("databaseSslRootCert");
  const bundleFix = setCmd("databaseSslRootCert", "/etc/ssl/rds/global-bundle.pem") + " (download AWS's RDS CA bundle there)";
  if (sslRootCert !== undefined && !fs.existsSync(sslRootCert)) {
    bad("databaseSslRootCert", `${sslRootCert} does not exist`, bundleFix);
  }
  // Verifying needs the CA: RDS's is in neither Node's CA list (the hooks) nor the system's (the
  // postgresql provider), so without it the deployment would fail at its first connection.
  if ((sslmode === "verify-ca" || sslmode === "verify-full") && sslRootCert === undefined) {
    bad("databaseSslRootCert", `is required with sslmode=${sslmode} in databaseUrl`, bundleFix);
  }
  const password = secret("databasePassword", "databasePasswordFile");
  const adminToken = secret("adminToken", "adminTokenFile");

  let tables: string[] = [];
  const tablesRaw = raw("tables");
  try {
    const parsed: unknown = JSON.parse(tablesRaw ?? "null");
    if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((t) => typeof t === "string" && TABLE_NAME.test(t))
      || new Set(parsed).size !== parsed.length) {
      throw new Error("bad");
    }
    tables = parsed as string[];
  } catch {
    bad("tables", `must be a non-empty list of distinct lowercase table names, optionally schema-qualified like public.users (got ${JSON.stringify(tablesRaw)})`,
      `set it with: pulumi config set --path 'tables[0]' users --stack ${stack} (one entry per table)`);
  }

  // --- app
  const appUrl = str("appUrl", "http://127.0.0.1:8000");
  if (appUrl && !/^https?:\/\/[^/\s]+/.test(appUrl)) bad("appUrl", `must be an http(s) URL (got ${JSON.stringify(appUrl)})`, setCmd("appUrl", "http://127.0.0.1:8000"));
  const appDir = str("appDir", "app");
  const restartCommand = str("restartCommand", "'app/scripts/stop.sh && app/scripts/start.sh'");
  const restartSshHost = raw("restartSshHost");
  if (restartSshHost !== undefined && !/^([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+$/.test(restartSshHost)) {
    bad("restartSshHost", `must be host or user@host (got ${JSON.stringify(restartSshHost)})`, setCmd("restartSshHost", "deploy@app-1.internal"));
  }
  const healthGateTimeoutSeconds = int("healthGateTimeoutSeconds", 1, "120");
  const healthGateIntervalSeconds = int("healthGateIntervalSeconds", 1, "2");
  if (healthGateIntervalSeconds > healthGateTimeoutSeconds) {
    bad("healthGateIntervalSeconds", "is longer than healthGateTimeoutSeconds", setCmd("healthGateIntervalSeconds", "2"));
  }

  // --- migration
  const revision = (key: string, example: string) => {
    const v = str(key, example);
    if (v && !REVISION.test(v)) bad(key, `must be an alembic revision id (letters, digits, _; got ${JSON.stringify(v)})`, setCmd(key, example));
    return v;
  };
  const targetRevision = revision("targetRevision", "001_uuid_schema_migration");
  const idTypes = revisionIdTypes(raw("revisionIdTypes"), (problem) =>
    bad("revisionIdTypes", problem, `set it with: pulumi config set --path 'revisionIdTypes[0]' 0000_initial=integer --stack ${stack} (one entry per revision)`));
  const expectedIdType = idTypes.get(targetRevision) ?? "uuid";
  if (idTypes.size > 0 && targetRevision && !idTypes.has(targetRevision)) {
    bad("targetRevision", `${JSON.stringify(targetRevision)} is not one of revisionIdTypes (${[...idTypes.keys()].join(", ")})`,
      `set targetRevision to one of them, or add "${targetRevision}=uuid" to revisionIdTypes`);
  }
  const idDefault = str("idDefault", "'gen_random_uuid()'");
  if (idDefault && /[;\n]/.test(idDefault)) bad("idDefault", `must be one SQL expression such as gen_random_uuid(), or none (got ${JSON.stringify(idDefault)})`, setCmd("idDefault", "'gen_random_uuid()'"));
  const uuidVersion = oneOf("uuidVersion", ["4", "7", "any"] as const);
  const acceptRenumberedIds = bool("acceptRenumberedIds");
  const mode = oneOf("migrationMode", ["alembic", "sql"] as const);
  const sqlDir = raw("sqlDir");
  const sqlFix = setCmd("sqlDir", "app/migrations/sql") + " (the folder of <revision>.up.sql and <revision>.down.sql files)";
  if (mode === "sql" && sqlDir === undefined) bad("sqlDir", "is required when migrationMode is sql", sqlFix);
  const sqlDirOk = mode === "sql" && sqlDir !== undefined && hasUpFile(sqlDir);
  if (mode === "sql" && sqlDir !== undefined && !sqlDirOk) bad("sqlDir", `${sqlDir} is not a folder holding at least one <revision>.up.sql`, sqlFix);
  const upCommand = raw("upCommand");
  const downCommand = raw("downCommand");
  const duration = (key: string, example: string) => {
    const v = str(key, example);
    if (v && pgDurationMs(v) === undefined) bad(key, `must be a positive PostgreSQL duration like ${example} (got ${JSON.stringify(v)})`, setCmd(key, example));
    return v;
  };
  const lockTimeout = duration("lockTimeout", "5s");
  const statementTimeout = duration("statementTimeout", "30min");
  const migrationTimeout = duration("migrationTimeout", "1h");
  const rollbackStrategy = oneOf("rollbackStrategy", ["swap", "restore"] as const);
  const strategy = oneOf("migrationStrategy", ["offline", "online"] as const);
  const online = { contract: bool("onlineContract"), batchSize: int("onlineBatchSize", 1, "1000"), pauseMs: int("onlinePauseMs", 0, "0") };
  if (strategy === "online" && expectedIdType !== "uuid") {
    bad("migrationStrategy", `online changes integer ids to uuid; targetRevision ${targetRevision} has ${expectedIdType} ids`,
      `go back offline: pulumi config set migrationStrategy offline --stack ${stack} (or reverse an online swap by hand: vibes-hooks online swap-back)`);
  }
  if ((pgDurationMs(migrationTimeout) ?? Infinity) < (pgDurationMs(statementTimeout) ?? 0)) {
    bad("migrationTimeout", `${migrationTimeout} is shorter than statementTimeout ${statementTimeout}: one statement could outlast the whole migration`, setCmd("migrationTimeout", "2h"));
  }
  let filesSha256 = "";
  if (sqlDirOk) {
    filesSha256 = plannedMigrationFilesSha256({ mode: "sql", sqlDir: sqlDir! });
  } else if (mode === "alembic" && appDir) {
    try {
      filesSha256 = plannedMigrationFilesSha256({ mode, appDir });
    } catch {
      bad("appDir", `${path.join(appDir, "migrations", "versions")} cannot be read`, setCmd("appDir", "app") + " (the folder holding alembic.ini and migrations/versions/)");
    }
  }
  for (const [key, value] of [["upCommand", upCommand], ["downCommand", downCommand]] as const) {
    if (mode === "sql" && value !== undefined) bad(key, "only applies when migrationMode is alembic (sql mode runs the files in sqlDir)", `remove it: pulumi config rm ${key} --stack ${stack}`);
  }

  const ratioRaw = str("minFreeSpaceRatio", "1.5");
  const minFreeSpaceRatio = Number(ratioRaw);
  if (ratioRaw && !(Number.isFinite(minFreeSpaceRatio) && minFreeSpaceRatio > 0)) {
    bad("minFreeSpaceRatio", `must be a positive number (got ${JSON.stringify(ratioRaw)})`, setCmd("minFreeSpaceRatio", "1.5"));
  }

  // --- backups
  const target = oneOf("backupTarget", ["local", "s3"] as const);
  const backupDir = raw("backupDir") ?? "";
  if (target === "local" && !backupDir) bad("backupDir", "is required when backupTarget is local", setCmd("backupDir", ".dev/backups"));
  const bucketName = raw("backupBucketName");
  if (target === "s3") {
    if (bucketName === undefined) {
      bad("backupBucketName", "is required when backupTarget is s3", setCmd("backupBucketName", `vibes-backups-${stack}-<account>`));
    } else {
      const why = s3BucketNameProblem(bucketName);
      if (why) bad("backupBucketName", `${JSON.stringify(bucketName)} breaks S3 bucket naming rules: ${why}`, setCmd("backupBucketName", `vibes-backups-${stack}-<account>`));
    }
  }
  const prefix = str("backupPrefix", "pre-uuid-migration/");
  if (prefix && (!prefix.endsWith("/") || prefix.startsWith("/"))) bad("backupPrefix", `must end with / and not start with / (got ${JSON.stringify(prefix)})`, setCmd("backupPrefix", "pre-uuid-migration/"));
  const retentionDays = int("backupRetentionDays", 1, "30");
  const encryption = oneOf("backupEncryption", ["aws:kms", "AES256"] as const);
  const kmsKeyId = raw("backupKmsKeyId");
  if (kmsKeyId !== undefined && encryption !== "aws:kms") bad("backupKmsKeyId", "is set but backupEncryption is not aws:kms", setCmd("backupEncryption", "aws:kms"));
  const s3Endpoint = raw("backupS3Endpoint");
  if (s3Endpoint !== undefined && !/^https?:\/\/[^/\s]+/.test(s3Endpoint)) bad("backupS3Endpoint", `must be an http(s) URL (got ${JSON.stringify(s3Endpoint)})`, setCmd("backupS3Endpoint", "http://127.0.0.1:4568"));
  const protect = bool("protectBackups");

  // --- RDS instance (or Aurora cluster): the snapshot and the alarms watch it
  const instanceId = raw("rdsInstanceIdentifier");
  const clusterId = raw("rdsClusterIdentifier");
  let rds: DeployConfig["rds"];
  if (instanceId !== undefined && clusterId !== undefined) {
    bad("rdsInstanceIdentifier", "is set together with rdsClusterIdentifier", `keep one: rdsInstanceIdentifier for RDS, rdsClusterIdentifier for Aurora (pulumi config rm ... --stack ${stack})`);
  } else if (instanceId !== undefined || clusterId !== undefined) {
    const [key, id] = instanceId !== undefined ? ["rdsInstanceIdentifier", instanceId] : ["rdsClusterIdentifier", clusterId as string];
    if (!RDS_ID.test(id)) bad(key, `${JSON.stringify(id)} is not an RDS identifier (letter first, letters/digits/hyphens, no -- or trailing -, <= 63)`, setCmd(key, `vibes-${stack}`));
    else rds = { kind: instanceId !== undefined ? "instance" : "cluster", identifier: id };
  }
  const snapshotEnabled = bool("snapshotEnabled");
  let snapshot: DeployConfig["snapshot"];
  if (snapshotEnabled && instanceId === undefined && clusterId === undefined) {
    bad("rdsInstanceIdentifier", "snapshotEnabled needs exactly one of rdsInstanceIdentifier (RDS) or rdsClusterIdentifier (Aurora)",
      setCmd("rdsInstanceIdentifier", `vibes-${stack}`) + ", or rdsClusterIdentifier for Aurora");
  } else if (snapshotEnabled && rds) {
    snapshot = { kind: rds.kind, sourceIdentifier: rds.identifier, identifierPrefix: snapshotIdentifier(stack, targetRevision, (rds.kind === "cluster" ? 63 : 255) - SNAPSHOT_SUFFIX_LENGTH) };
  }

  const safety = loadSafetyConfig(source, stack, bad);
  if (safety.monitoring && !rds && instanceId === undefined && clusterId === undefined) {
    bad("monitoringEnabled", "the alarms need the database's rdsInstanceIdentifier (RDS) or rdsClusterIdentifier (Aurora)", setCmd("rdsInstanceIdentifier", `vibes-${stack}`));
  }

  const awsRegion = raw("aws:region");
  const usesAws = target === "s3" || snapshotEnabled || safety.monitoring !== undefined;
  if (usesAws && awsRegion === undefined) bad("aws:region", "is required for the S3 backup vault and the RDS snapshot", `set it with: pulumi config set aws:region eu-west-1 --stack ${stack}`);

  // --- rules for the production stack
  if (stack === "prod") {
    if (!snapshotEnabled) bad("snapshotEnabled", "must be true on prod (the migration needs an RDS snapshot to fall back to)", setCmd("snapshotEnabled", "true"));
    if (!protect) bad("protectBackups", "must be true on prod (backups are protected and retained)", setCmd("protectBackups", "true"));
    if (target !== "s3") bad("backupTarget", "must be s3 on prod (backups leave the database host)", setCmd("backupTarget", "s3"));
  }

  const planSummary = bool("planSummary");

  if (problems.length > 0) {
    throw new Error(`invalid configuration for stack ${stack} (${problems.length} problem${problems.length > 1 ? "s" : ""}):\n  - ${problems.join("\n  - ")}`);
  }
  return {
    stack,
    database: { url: databaseUrl, password, sslRootCert },
    adminToken,
    tables,
    app: { url: appUrl.replace(/\/+$/, ""), dir: appDir, restartCommand, restartSshHost, healthGateTimeoutSeconds, healthGateIntervalSeconds },
    migration: { knownRevisions: [...idTypes.keys()], targetRevision, expectedIdType, idDefault, uuidVersion, acceptRenumberedIds, mode, sqlDir: mode === "sql" ? sqlDir : undefined, upCommand, downCommand, lockTimeout, statementTimeout, migrationTimeout, rollbackStrategy, strategy, online, filesSha256 },
    preflight: { minFreeSpaceRatio },
    backup: { target, dir: backupDir, bucketName: target === "s3" ? bucketName : undefined, prefix, retentionDays, encryption, kmsKeyId, s3Endpoint, protect },
    rds,
    snapshot,
    safety,
    awsRegion,
    planSummary,
  };
}

/** True when `dir` is a readable folder with at least one `<revision>.up.sql`. */
function hasUpFile(dir: string): boolean {
  try {
    return fs.readdirSync(dir).some((name) => name.endsWith(".up.sql"));
  } catch {
    return false;
  }
}

/** Parses revisionIdTypes (a JSON list of "revision=integer|uuid") into an ordered map. */
function revisionIdTypes(raw: string | undefined, bad: (problem: string) => void): Map<string, IdType> {
  const types = new Map<string, IdType>();
  let entries: unknown;
  try {
    entries = JSON.parse(raw ?? "null");
  } catch {
    entries = null;
  }
  if (!Array.isArray(entries) || entries.length === 0) {
    bad(`must be a non-empty list of revision=integer|uuid (got ${JSON.stringify(raw)})`);
    return types;
  }
  for (const entry of entries) {
    const m = typeof entry === "string" ? /^([A-Za-z0-9_]+)=(integer|uuid)$/.exec(entry) : null;
    if (!m) bad(`entry ${JSON.stringify(entry)} is not revision=integer or revision=uuid`);
    else types.set(m[1], m[2] as IdType);
  }
  return types;
}

/** Reports what is wrong with the URL; returns its sslmode (null when it has none or is no URL). */
function checkDatabaseUrl(raw: string, bad: (problem: string, fix: string) => void): string | null {
  const example = "postgresql://user@host:5432/db?sslmode=require";
  try {
    const url = parseDatabaseUrl(raw);
    if (url.password) bad("holds a password", "remove it from the URL and set databasePassword with: pulumi config set --secret databasePassword <value>");
    return url.sslmode ?? null;
  } catch (err) {
    if (!(err instanceof DatabaseUrlError)) throw err;
    // The raw value is not echoed: it could hold a password.
    bad(err.problem, `use the form ${example}${err.hint ? `; ${err.hint}` : ""}`);
    return null;
  }
}

/** Why `name` breaks S3's general purpose bucket naming rules, or undefined when it is fine. */
export function s3BucketNameProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return "must be 3 to 63 characters long";
  if (!/^[a-z0-9.-]+$/.test(name)) return "only lowercase letters, digits, dots and hyphens are allowed";
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name)) return "must start and end with a letter or digit";
  if (name.includes("..")) return "must not contain two adjacent dots";
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return "must not look like an IP address";
  const prefix = ["xn--", "sthree-", "amzn-s3-demo-"].find((p) => name.startsWith(p));
  if (prefix) return `must not start with ${prefix}`;
  const suffix = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"].find((s) => name.endsWith(s));
  if (suffix) return `must not end with ${suffix}`;
  return undefined;
}

/** "-" and 8 hex digits of the backup's SHA-256, appended by RdsSnapshot. */
export const SNAPSHOT_SUFFIX_LENGTH = 9;

/** RDS snapshot name for the target revision: letters, digits and single hyphens, letter first. */
export function snapshotIdentifier(stack: string, revision: string, maxLength: number): string {
  return `vibes-${stack}-pre-${revision}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-{2,}/g, "-")
    .slice(0, maxLength)
    .replace(/-+$/, "");
}
