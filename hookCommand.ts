// Builds the local.Command that runs one `bin/vibes-hooks` step (docs/architecture.md) and
// parses its JSON result. Settings and secrets reach the step only through its environment.
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { local } from "@pulumi/command";
import { DeployConfig } from "./config";
import { notifyEnvironment } from "./safety/config";
import { CONTRACTS, type EnvGroup, type SecretName, type StepContract, type StepName, type StepResults, type StepWord } from "./hooks/contracts";
import { shellWord } from "./common/text";

/** Relative on purpose: the engine runs commands in the project folder, and an absolute
 * path (or `dir`) would differ per machine and re-run every command. */
export const HOOK_CLI = "bin/vibes-hooks";

/** Flag values as a component gives them: a boolean flag true or false, a repeated one a list,
 * any other a string, or undefined (resolved at deploy time: the flag is left out). */
type FlagInput<F> = F extends { type: "boolean" } ? boolean
  : F extends { multiple: true } ? readonly pulumi.Input<string>[]
  : pulumi.Input<string | undefined>;
export type StepFlagInputs<S extends StepName> = { [K in keyof (typeof CONTRACTS)[S]["flags"]]?: FlagInput<(typeof CONTRACTS)[S]["flags"][K]> };

/** One step, as a component asks for it: what it is told, by its contract's names. Which settings
 * and secrets it gets comes from its contract (hooks/contracts.ts), the values from the config
 * the StepRunner holds. */
export interface HookCommandArgs<S extends StepName> {
  /** `preflight`, `backup`, ...: also the `step` the JSON result must name. */
  step: S;
  words?: StepWord<S>[];
  /** In this order on the command line; values are shell-quoted when needed. */
  flags?: StepFlagInputs<S>;
  /** SHA-256 of the verified backup this step follows: a new backup re-runs the step. */
  backupSha256?: pulumi.Input<string>;
  /** Informational only: a delete must never undo work on the database. */
  delete?: string;
  /** A step after the migration inside the window: when it fails, the database goes back to
   * the backup of this manifest (the kept copy swapped in, else restored) and the app is
   * restarted on it (hooks/cli.ts). The step then also gets what the rollback step needs. */
  rollBackOnFailure?: RollBackTo;
}

/** Where a failure after the migration goes back to: the backup of this manifest (offline), or
 * the online swap reversed. */
export type RollBackTo = { manifestUri: pulumi.Input<string> } | "online";

export interface HookResult {
  ok: true;
  step: string;
}

export interface HookCommand<T> {
  command: local.Command;
  /** The step's parsed JSON result (secret when the step got a secret). */
  result: pulumi.Output<T & HookResult>;
}

/** How components build their steps. Built once from the config (index.ts), it is what holds the
 * settings and secrets a step's environment is made of, so that a component sees only the
 * settings its own Args name. */
export interface StepRunner {
  run<S extends StepName>(name: string, args: HookCommandArgs<S>, opts: pulumi.CustomResourceOptions): HookCommand<StepResults[S]>;
}

/** The words after the step: its positional words, then each flag given, in the order given. */
export function stepArguments<S extends StepName>(step: S, words: readonly string[], flags: StepFlagInputs<S>): pulumi.Output<string[]> {
  const declared: StepContract["flags"] = CONTRACTS[step].flags;
  const parts = Object.entries(flags as Record<string, unknown>).map(([name, value]): pulumi.Input<string[]> => {
    if (!Object.hasOwn(declared, name)) throw new Error(`vibes-hooks ${step} has no flag --${name} (hooks/contracts.ts)`);
    if (typeof value === "boolean") return value ? [`--${name}`] : [];
    if (Array.isArray(value)) return pulumi.all(value as pulumi.Input<string>[]).apply((vs) => vs.flatMap((v) => [`--${name}`, v]));
    return pulumi.output(value as pulumi.Input<string | undefined>).apply((v) => (v === undefined ? [] : [`--${name}`, v]));
  });
  return pulumi.all(parts).apply((ps) => [...words, ...ps.flat()]);
}

/** What a step of this contract gets: its groups and secrets, and where it starts the app here,
 * what the app's scripts need too. */
function reads(contract: StepContract, config: DeployConfig): { groups: EnvGroup[]; secrets: SecretName[] } {
  const local = contract.startsTheApp === true && !config.app.restartSshHost;
  return {
    groups: [...contract.env, ...(local ? ["database" as const] : [])],
    secrets: [...contract.secrets, ...(local ? ["databasePassword" as const, "adminToken" as const] : [])],
  };
}

export function stepRunner(config: DeployConfig): StepRunner {
  // Taken once: the same Output in every step's environment.
  const digest = deploymentDigest(config);
  return {
    run<S extends StepName>(name: string, args: HookCommandArgs<S>, opts: pulumi.CustomResourceOptions): HookCommand<StepResults[S]> {
      const create = stepArguments(args.step, (args.words ?? []) as readonly string[], args.flags ?? {})
        .apply((words) => [HOOK_CLI, args.step, ...words.map(shellWord)].join(" "));
      const own = reads(CONTRACTS[args.step], config);
      const rollback = args.rollBackOnFailure ? reads(CONTRACTS.rollback, config) : { groups: [], secrets: [] };
      const environment = {
        ...hookEnvironment(config, digest, [...new Set([...own.groups, ...rollback.groups])], [...new Set([...own.secrets, ...rollback.secrets])], args.backupSha256),
        ...(args.rollBackOnFailure ? {
          VIBES_HEALTH_TIMEOUT_SECONDS: String(config.app.healthGateTimeoutSeconds),
          // Online, the app kept writing since the backup: the swap is reversed instead (no write lost).
          ...(args.rollBackOnFailure === "online"
            ? { VIBES_ROLLBACK_ON_FAILURE: "online", VIBES_ID_DEFAULT: config.migration.idDefault }
            : { VIBES_ROLLBACK_ON_FAILURE: "1", VIBES_ROLLBACK_MANIFEST: args.rollBackOnFailure.manifestUri }),
        } : {}),
      };
      const command = new local.Command(
        name,
        {
          create,
          delete: args.delete,
          environment,
          // Progress (stderr) is shown; the JSON result (stdout) is captured, not echoed.
          logging: "stderr",
          // The previous run's output is of no use to a step, and a long backup's progress would
          // outgrow the kernel's limit for one environment variable (128 KiB): the re-run could not start.
          addPreviousOutputInEnv: false,
        },
        opts,
      );
      return { command, result: command.stdout.apply((stdout) => parseHookResult<StepResults[S]>(args.step, stdout)) };
    },
  };
}

/** The environment of a step. Every step's inputs hold the chain digest, the target revision
 * and the migration files' checksum: changing any setting re-runs the whole chain, as an
 * in-place update (not a replacement), from the gates and maintenance mode on, never a part of it. */
function hookEnvironment(
  config: DeployConfig,
  digest: pulumi.Output<string>,
  groups: EnvGroup[],
  secrets: SecretName[],
  backupSha256?: pulumi.Input<string>,
): Record<string, pulumi.Input<string>> {
  const window = config.safety.maintenanceWindow;
  const windowOverride = config.safety.maintenanceWindowOverride;
  const env: Record<string, pulumi.Input<string> | undefined> = {
    // Any failing step reports itself to the stack's notification channels.
    ...notifyEnvironment(config.stack, config.safety),
    VIBES_DEPLOYMENT_DIGEST: digest,
    // The steps that change things check the window themselves (a retried `up` skips window-check).
    VIBES_MAINTENANCE_WINDOW: window ? JSON.stringify(window) : undefined,
    VIBES_MAINTENANCE_WINDOW_OVERRIDE: windowOverride ? JSON.stringify(windowOverride) : undefined,
    VIBES_TARGET_REVISION: config.migration.targetRevision,
    VIBES_MIGRATION_FILES_SHA256: config.migration.filesSha256,
    VIBES_BACKUP_SHA256: backupSha256,
  };
  if (groups.includes("database")) {
    env.DATABASE_URL = config.database.url;
    env.PGSSLROOTCERT = config.database.sslRootCert;
    env.VIBES_TABLES = config.tables.join(",");
    env.VIBES_ROLLBACK = config.migration.rollbackStrategy;
  }
  if (groups.includes("app")) env.VIBES_APP_URL = config.app.url;
  if (groups.includes("backup")) {
    const b = config.backup;
    env.VIBES_BACKUP_TARGET = b.target;
    if (b.target === "local") env.VIBES_BACKUP_DIR = b.dir;
    else {
      env.VIBES_BACKUP_BUCKET = b.bucketName;
      env.VIBES_BACKUP_PREFIX = b.prefix;
      env.VIBES_S3_ENDPOINT = b.s3Endpoint;
      env.AWS_REGION = config.awsRegion;
    }
  }
  if (groups.includes("restart")) {
    env.VIBES_RESTART_COMMAND = config.app.restartCommand;
    env.VIBES_RESTART_HOST = config.app.restartSshHost;
  }
  if (groups.includes("migration")) {
    env.VIBES_APP_DIR = config.app.dir;
    env.VIBES_LOCK_TIMEOUT = config.migration.lockTimeout;
    env.VIBES_STATEMENT_TIMEOUT = config.migration.statementTimeout;
    env.VIBES_MIGRATION_TIMEOUT = config.migration.migrationTimeout;
  }
  // Secrets stay pulumi secrets: encrypted in state, masked in logs, and they make the
  // command's stdout/stderr secret too.
  if (secrets.includes("databasePassword")) env.VIBES_DB_PASSWORD = pulumi.secret(config.database.password);
  if (secrets.includes("adminToken")) env.VIBES_ADMIN_TOKEN = pulumi.secret(config.adminToken);
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, pulumi.Input<string>] => e[1] !== undefined));
}

/** Keys to leave out (`true`), or nested rules for a group's keys. */
type ExcludedKeys<T> = { [K in keyof T]?: true | ExcludedKeys<NonNullable<T[K]>> };

/** What must not re-run the chain, and why. Everything else in DeployConfig goes into the
 * digest, so that a group or key added later re-runs the chain unless it is named here. */
const OUTSIDE_THE_CHAIN = {
  // Read at preview only, for the plan summary.
  planSummary: true,
  // Inputs of their own resources, not of a step: the RDS snapshot (named after each backup) and
  // the alarms; preflight gets the instance's storage as an argument of its own.
  rds: true,
  snapshot: true,
  safety: {
    // The promotion gate decides before the chain, from the test stack's outputs.
    promotion: true,
    // The alarms and the monitoring role: resources beside the chain.
    monitoring: true,
  },
} satisfies ExcludedKeys<DeployConfig>;

/** SHA-256 over every setting and secret of the config but those OUTSIDE_THE_CHAIN: one value
 * in every step, so that any change re-runs all of them. Secret, as it is derived from the secrets. */
export function deploymentDigest(config: DeployConfig): pulumi.Output<string> {
  const chain = without(config, OUTSIDE_THE_CHAIN);
  return pulumi.secret(pulumi.output(chain).apply((all) => createHash("sha256").update(JSON.stringify(all)).digest("hex")));
}

/** A copy of `value` without the keys `excluded` leaves out. */
function without(value: object, excluded: object): Record<string, unknown> {
  const rules = excluded as Record<string, true | object | undefined>;
  return Object.fromEntries(Object.entries(value).flatMap(([key, v]) => {
    const rule = rules[key];
    if (rule === true) return [];
    return [[key, rule && v ? without(v, rule) : v]];
  }));
}

/** Parses the one JSON object a step prints on stdout. */
export function parseHookResult<T>(step: string, stdout: string): T & HookResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout.trim());
  } catch {
    throw new Error(`vibes-hooks ${step}: stdout is not one JSON object (see docs/architecture.md); run the step by hand to see its output`);
  }
  const result = parsed as Partial<HookResult> | null;
  if (!result || result.ok !== true || result.step !== step) {
    throw new Error(`vibes-hooks ${step}: result is not {"ok": true, "step": "${step}", ...}`);
  }
  return parsed as T & HookResult;
}
