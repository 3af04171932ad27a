// Runs the Pulumi program under mocks with a REAL stack file, the way the CLI would feed it:
// Pulumi.yaml defaults merged under Pulumi.<stack>.yaml values, `secure:` values replaced by
// test secrets. Every registration is captured as the engine would receive it (dependencies,
// protect, retainOnDelete, inputs with their secret markers), so tests see what mocks hide.
import * as fs from "node:fs";
import * as path from "node:path";
import * as yaml from "js-yaml";
import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../../config";
import type { ConfigSource } from "../../configSource";
import { migrationFilesSha256 } from "../../common/migrationFiles";
import { makeTempDirSync } from "../../hooks/lib/processes/tempDirs";
import { acceptErrorHooks } from "../../rehearsal/mocks";

export const ROOT = path.resolve(__dirname, "../..");
export const TEST_SECRETS = { databasePassword: "pw-T3st-9f2c41d7", adminToken: "tok-T3st-b8e05a6c", monitoringRolePassword: "mon-T3st-4e7a19c2" };
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

export interface Registration {
  type: string;
  name: string;
  urn: string;
  parent: string;
  custom: boolean;
  dependencies: string[];
  protect: boolean;
  retainOnDelete: boolean;
  /** URN of the resource whose deletion deletes this one ("" when none). */
  deletedWith: string;
  /** Names of the error hooks bound to the resource (`hooks: { onError }`). */
  onError: string[];
  /** Inputs as serialized for the engine: secrets still wrapped in their marker object. */
  wire: Record<string, unknown>;
  /** Inputs as the mock sees them (plain). */
  inputs: Record<string, unknown>;
}

export interface ProgramRun {
  registrations: Registration[];
  /** Names of the error hooks the program registered with the engine. */
  errorHooks: string[];
  outputs: Record<string, pulumi.Output<unknown> | string>;
  resolved: Record<string, unknown>;
}

type Raw = Record<string, string>;

/** The stack's config as the CLI would hand it to the program: `<project>:<key>` -> string. */
export function stackConfig(stack: string, overrides: Record<string, string | undefined> = {}): { config: Raw; secretKeys: string[] } {
  const project = yaml.load(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as { config: Record<string, { default?: unknown }> };
  const stackFile = yaml.load(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config?: Record<string, unknown> };
  const config: Raw = {};
  const secretKeys: string[] = [];
  const asString = (v: unknown) => (typeof v === "object" ? JSON.stringify(v) : String(v));
  for (const [key, decl] of Object.entries(project.config)) {
    if (decl.default !== undefined) config[`${PROJECT}:${key}`] = asString(decl.default);
  }
  for (const [key, value] of Object.entries(stackFile.config ?? {})) {
    const fullKey = key.includes(":") ? key : `${PROJECT}:${key}`;
    if (value !== null && typeof value === "object" && "secure" in value) {
      const name = fullKey.split(":")[1] as keyof typeof TEST_SECRETS;
      if (!(name in TEST_SECRETS)) throw new Error(`harness: no test value for secure key ${fullKey}`);
      config[fullKey] = TEST_SECRETS[name];
      secretKeys.push(fullKey);
    } else {
      config[fullKey] = asString(value);
    }
  }
  // Tests ask for the preview-time database read explicitly.
  config[`${PROJECT}:planSummary`] = "false";
  // The CA bundle lives on the deploying machine (config.ts checks that it exists): a stand-in.
  if (config[`${PROJECT}:databaseSslRootCert`]) config[`${PROJECT}:databaseSslRootCert`] = path.join(ROOT, "test", "program", "rds-ca-stand-in.pem");
  for (const [key, value] of Object.entries(overrides)) {
    const fullKey = key.includes(":") ? key : `${PROJECT}:${key}`;
    if (value === undefined) delete config[fullKey];
    else config[fullKey] = value;
  }
  return { config, secretKeys };
}

/** The stack's config as loadConfig reads it (dev with its secret files); `read` collects the keys asked for. */
export function sourceFor(stack: string, overrides: Record<string, string | undefined> = {}, read?: Set<string>): ConfigSource {
  const { config, secretKeys } = stackConfig(stack, { ...(stack === "dev" ? devSecretFiles() : {}), ...overrides });
  const full = (key: string) => (key.includes(":") ? key : `${PROJECT}:${key}`);
  return {
    get: (key) => {
      read?.add(key);
      return config[full(key)];
    },
    isSecret: (key) => secretKeys.includes(full(key)),
  };
}

/** The dev stack reads its secrets from files that dev-env.sh writes; tests write their own. */
export function devSecretFiles(): Record<string, string> {
  const dir = makeTempDirSync("vibes-dev-secrets-"); // removed when the test process exits
  fs.writeFileSync(path.join(dir, "db-password"), `${TEST_SECRETS.databasePassword}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, "admin-token"), `${TEST_SECRETS.adminToken}\n`, { mode: 0o600 });
  return { databasePasswordFile: path.join(dir, "db-password"), adminTokenFile: path.join(dir, "admin-token") };
}

/** What a hook step prints on stdout, by step (docs/architecture.md). */
function hookStdout(create: string, env: Record<string, string>): string {
  const words = create.split(/\s+/);
  if (words[0] !== "bin/vibes-hooks") return "";
  const step = words[1];
  const flag = (name: string) => words[words.indexOf(name) + 1];
  const store = env.VIBES_BACKUP_TARGET === "s3"
    ? `s3://${env.VIBES_BACKUP_BUCKET}/${env.VIBES_BACKUP_PREFIX}`
    : `${env.VIBES_BACKUP_DIR}/`;
  const dump = `${store}vibes-pre-${flag("--label")}-20261130T120000Z.dump`;
  const results: Record<string, object> = {
    preflight: { revision: "0000_initial", serverMajor: 15, pgDumpMajor: 15, tables: {}, databaseBytes: 1, freeBytes: null },
    backup: { uri: dump, manifestUri: `${dump}.manifest.json`, sha256: "ab".repeat(32), bytes: 4096, createdAt: "2026-11-30T12:00:00Z", revision: "0000_initial", tables: {} },
    "verify-restore": { uri: flag("--uri"), sha256: "ab".repeat(32), matches: true },
    maintenance: { enabled: words[2] === "on", changed: true },
    migrate: {
      revisionBefore: "0000_initial", revisionAfter: flag("--to"), changed: true, rolledBack: false, filesSha256: flag("--files-sha256"),
      backup: { uri: flag("--manifest").replace(/\.manifest\.json$/, ""), manifestUri: flag("--manifest"), sha256: "ab".repeat(32), bytes: 4096, revision: "0000_initial", retaken: false },
    },
    validate: { checks: [{ name: "ids are uuid", ok: true, detail: "" }], summary: "12/12 checks passed", idType: "uuid" },
    restart: { where: "local", elapsedMs: 700, health: { healthy: true, attempts: 1, elapsedMs: 5 } },
    smoke: { checks: [] },
    "window-check": { inside: true, overridden: false, nextOpening: null, closesAt: null, message: "inside" },
    notify: { event: words[2], sent: [], failed: [] },
  };
  return JSON.stringify({ ok: true, step, ...results[step] });
}

/** What the test stack reports to prod's promotion gate: it validated the current files at the
 * default target revision. Tests change it to see the gate refuse. */
export const testStackOutputs: Record<string, unknown> = {
  schemaRevisionAfter: "001_uuid_schema_migration",
  migrationFilesSha256: migrationFilesSha256(path.join(ROOT, "app", "migrations", "versions")),
  validated: true,
  validationSummary: "12/12 checks passed",
};

const mocks: pulumi.runtime.Mocks = {
  newResource(args) {
    const i = args.inputs;
    const state: Record<string, unknown> = { ...i };
    switch (args.type) {
      case "command:local:Command":
        state.stdout = hookStdout(String(i.create), unwrapSecrets(i.environment ?? {}) as Record<string, string>);
        state.stderr = "";
        break;
      case "aws:s3/bucket:Bucket":
        state.arn = `arn:aws:s3:::${i.bucket}`;
        break;
      case "aws:rds/snapshot:Snapshot":
        state.dbSnapshotArn = `arn:aws:rds:eu-west-1:123456789012:snapshot:${i.dbSnapshotIdentifier}`;
        break;
      case "pulumi:pulumi:StackReference":
        state.outputs = { ...testStackOutputs };
        break;
      case "aws:sns/topic:Topic":
        state.arn = `arn:aws:sns:eu-west-1:123456789012:${i.name}`;
        break;
      case "aws:rds/clusterSnapshot:ClusterSnapshot":
        state.dbClusterSnapshotArn = `arn:aws:rds:eu-west-1:123456789012:cluster-snapshot:${i.dbClusterSnapshotIdentifier}`;
        break;
    }
    return { id: `${args.name}-id`, state };
  },
  call: (args) => (args.token === "aws:rds/getInstance:getInstance" ? { ...args.inputs, allocatedStorage: 100 } : args.inputs),
};

/** Registers the program for `stack` under mocks and waits for every registration. */
export async function runProgram(stack: string, options: { overrides?: Record<string, string | undefined>; preview?: boolean } = {}): Promise<ProgramRun> {
  const overrides = { ...(stack === "dev" ? devSecretFiles() : {}), ...options.overrides };
  const { config, secretKeys } = stackConfig(stack, overrides);
  await pulumi.runtime.setMocks(mocks, PROJECT, stack, options.preview ?? false);
  pulumi.runtime.setAllConfig(config, secretKeys);
  process.env.PULUMI_CONFIG_SECRET_KEYS = JSON.stringify(secretKeys);

  const registrations: Registration[] = [];
  const pending: Promise<void>[] = [];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const settings = require("@pulumi/pulumi/runtime/settings");
  const monitor = settings.getMonitor();
  const errorHooks: string[] = [];
  acceptErrorHooks(monitor, (name) => errorHooks.push(name));
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: RegisterRequest, callback: (err: unknown, resp?: { getUrn(): string }) => void) => {
    pending.push(new Promise<void>((done) => {
      register(req, (err: unknown, resp?: { getUrn(): string }) => {
        const wire = req.getObject()?.toJavaScript() ?? {};
        registrations.push({
          type: req.getType(),
          name: req.getName(),
          urn: resp?.getUrn() ?? "",
          parent: req.getParent(),
          custom: req.getCustom(),
          dependencies: req.getDependenciesList(),
          protect: req.getProtect() === true,
          retainOnDelete: req.getRetainondelete() === true,
          deletedWith: req.getDeletedwith(),
          onError: req.getHooks()?.getOnErrorList() ?? [],
          wire,
          inputs: unwrapSecrets(wire) as Record<string, unknown>,
        });
        callback(err, resp);
        done();
      });
    }));
  };

  for (const file of Object.keys(require.cache)) {
    if (file.startsWith(ROOT) && !file.includes(`${path.sep}node_modules${path.sep}`) && !file.includes(`${path.sep}test${path.sep}`)) {
      delete require.cache[file];
    }
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const program = require(path.join(ROOT, "index.ts")) as () => Promise<Record<string, pulumi.Output<unknown> | string>>;
  const outputs = await program();
  const resolved: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(outputs)) {
    resolved[key] = pulumi.Output.isInstance(value) && !options.preview
      ? await new Promise((resolve) => value.apply(resolve))
      : value;
  }
  // Registrations finish asynchronously; wait until no new ones appear.
  for (let seen = -1; seen !== pending.length;) {
    seen = pending.length;
    await Promise.all(pending);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { registrations, errorHooks, outputs, resolved };
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getDependenciesList(): string[];
  getProtect(): boolean | undefined;
  getRetainondelete(): boolean | undefined;
  getDeletedwith(): string;
  getHooks(): { getOnErrorList(): string[] } | undefined;
  getObject(): { toJavaScript(): Record<string, unknown> } | undefined;
}

export function isSecretWrapper(v: unknown): v is { value: unknown } {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SECRET_SIG] === "1b47061264138c4ac30d75fd1eb44270";
}

function unwrapSecrets(v: unknown): unknown {
  if (isSecretWrapper(v)) return unwrapSecrets(v.value);
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
  return v;
}

/** Paths (like `environment.VIBES_DB_PASSWORD`) where `needle` appears outside a secret wrapper. */
export function plainOccurrences(v: unknown, needle: string, at = ""): string[] {
  if (isSecretWrapper(v)) return [];
  if (typeof v === "string") return v.includes(needle) ? [at] : [];
  if (typeof v === "object" && v !== null) {
    return Object.entries(v).flatMap(([k, x]) => plainOccurrences(x, needle, at ? `${at}.${k}` : k));
  }
  return [];
}

/** Paths of the values wrapped as secrets. */
export function secretPaths(v: unknown, at = ""): string[] {
  if (isSecretWrapper(v)) return [at];
  if (typeof v === "object" && v !== null) {
    return Object.entries(v).flatMap(([k, x]) => secretPaths(x, at ? `${at}.${k}` : k));
  }
  return [];
}
