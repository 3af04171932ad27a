// Each vibes-hooks step's contract, declared once: its flags (type, description, default), its
// positional words, the settings and secrets it reads, and how the maintenance-window guard
// applies. The CLI's usage and per-step --help, the flag parsers, the window guard, and the
// program's command lines and environments (hookCommand.ts) all come from here. Pure data: the
// CLI loads it at every start, the program at plan time, neither loads a step's code with it.

/** Groups of settings the program passes to a step (hookCommand.ts builds each from the config). */
export type EnvGroup = "database" | "app" | "backup" | "migration" | "restart";
export type SecretName = "databasePassword" | "adminToken";

export interface FlagSpec {
  type: "string" | "boolean";
  description: string;
  /** What a value looks like, for the usage line (REV, URI, N). */
  value?: string;
  default?: string | boolean;
  multiple?: boolean;
}

/**
 * How the maintenance-window guard applies (with VIBES_MAINTENANCE_WINDOW set): `changes`: the
 * step changes the database or the app and refuses to run outside the window; `starting`: it also
 * begins a deployment, so it refuses when less than the window's minRemaining is left; `none`:
 * read-only, or (maintenance off) it brings the app back and is never held back.
 */
export type WindowRule = "changes" | "starting" | "none";

export interface StepContract {
  module: string;
  summary: string;
  /** Positional words: one of `choices` (a subcommand), or with `many` any number of them. */
  positionals?: { what: string; choices: readonly string[]; many?: boolean; description: string };
  flags: Readonly<Record<string, FlagSpec>>;
  /** Settings groups and secrets it reads from the environment. */
  env: readonly EnvGroup[];
  secrets: readonly SecretName[];
  /** Per positional word where it matters (maintenance on/off), else for the step. */
  window: WindowRule | Readonly<Record<string, WindowRule>>;
  /** It runs the app's restart command: a local one starts the app with the deployment's settings
   * (the database and both secrets); over ssh the app host keeps its own. */
  startsTheApp?: boolean;
}

/** A flag, its literal types kept (the parsed values' types derive from them). */
function flag<const T extends FlagSpec["type"], const E extends Omit<FlagSpec, "type" | "description">>(type: T, description: string, extra?: E): { type: T; description: string } & E {
  return { type, description, ...(extra ?? ({} as E)) };
}

/** The id settings of the target revision: migrate's proof after the change, validate's checks. */
const PROOF = {
  "id-type": flag("string", "the key columns' type at the target revision: uuid or integer", { value: "TYPE", default: "uuid" }),
  "id-default": flag("string", "the uuid ids' default expression, or none (ids made by the app)", { value: "EXPR", default: "gen_random_uuid()" }),
  "uuid-version": flag("string", "the version every uuid id must have: 4, 7 or any", { value: "V", default: "4" }),
} as const;

/** Where the migration files are (migrate's and preflight's): alembic's history, or SQL files. */
const FILES = {
  mode: flag("string", "alembic (default: VIBES_APP_DIR's history) or sql", { value: "MODE" }),
  "sql-dir": flag("string", "sql mode: the folder of <revision>.up.sql / <revision>.down.sql", { value: "DIR" }),
} as const;

const LOCK_WAIT = flag("string", "how long to wait for the migration lock another migrate or restore holds (default 60)", { value: "N" });

export const CONTRACTS = {
  preflight: {
    module: "./steps/preflight",
    summary: "checks before anything changes",
    flags: {
      "expect-revision": flag("string", "a revision the database may be at (repeat for several)", { value: "REV", multiple: true }),
      "min-free-ratio": flag("string", "free disk space must be at least this times the database (default 1.5)", { value: "N" }),
      // Where the step cannot see the disk (RDS), the operator passes e.g. CloudWatch FreeStorageSpace,
      "data-dir-free-bytes": flag("string", "the server's free disk space, where the step cannot see it", { value: "N" }),
      // or the program passes the instance's allocated storage (free = storage - every database).
      "storage-bytes": flag("string", "the allocated storage (RDS): free space is it less every database", { value: "N" }),
      // The migration files the deployment will run (migrate's flags): one head, the target in it.
      target: flag("string", "the deployment's target revision: the migration files must hold it, with one head", { value: "REV" }),
      ...FILES,
    },
    env: ["database", "app", "migration"],
    secrets: ["databasePassword"],
    window: "none",
  },
  backup: {
    module: "./steps/backup",
    summary: "pg_dump -Fc to the backup store, verified, with a manifest",
    flags: {
      label: flag("string", "what the backup is for, in its name", { value: "WHAT", default: "manual" }),
      "lock-wait-timeout": flag("string", "pg_dump's wait for its table locks", { value: "DURATION", default: "60s" }),
    },
    env: ["database", "backup"],
    secrets: ["databasePassword"],
    window: "none",
  },
  "verify-restore": {
    module: "./steps/verify-restore",
    summary: "restore into a scratch database and compare with the manifest",
    flags: {
      uri: flag("string", "the backup (the uri printed by backup)", { value: "URI" }),
      "scratch-database": flag("string", "restore into this existing database (cleaned, left in place)", { value: "NAME" }),
      "keep-copy": flag("boolean", "keep the proven copy (<db>_vibes_copy) for a rollback by swap", { default: false }),
    },
    env: ["database", "backup"],
    secrets: ["databasePassword"],
    window: "none",
  },
  maintenance: {
    module: "./steps/maintenance",
    summary: "the app's maintenance mode",
    positionals: { what: "mode", choices: ["on", "off"], description: "turn it on or off" },
    flags: {},
    env: ["app"],
    secrets: ["adminToken"],
    // On begins a deployment. Off brings the app back, also after a run that overran.
    window: { on: "starting", off: "none" },
  },
  migrate: {
    module: "./steps/migrate",
    summary: "the schema change, proven, or rolled back",
    flags: {
      to: flag("string", "the target revision", { value: "REV" }),
      manifest: flag("string", "the verified backup's manifest (the manifestUri printed by backup)", { value: "URI" }),
      "files-sha256": flag("string", "the migration files' checksum the deployment was planned with", { value: "HEX" }),
      ...FILES,
      up: flag("string", "alembic mode: the upgrade command ({rev} is the revision)", { value: "CMD" }),
      down: flag("string", "alembic mode: the downgrade command ({rev} is the revision)", { value: "CMD" }),
      "lock-wait-seconds": LOCK_WAIT,
      ...PROOF,
      "accept-renumbered-ids": flag("boolean", "a rollback that renumbered the ids (same rows and links) is accepted, and said so", { default: false }),
      "lock-wait-timeout": flag("string", "pg_dump's wait for its table locks when the backup is taken again", { value: "DURATION", default: "60s" }),
    },
    env: ["database", "backup", "migration"],
    secrets: ["databasePassword"],
    // Not `starting`: the backup before it may have used the time, and stopping there would leave
    // the app in maintenance mode.
    window: "changes",
  },
  validate: {
    module: "./steps/validate",
    summary: "checks after the migration",
    positionals: { what: "part", choices: ["schema", "data", "performance"], many: true, description: "what to check (none: all three)" },
    flags: {
      manifest: flag("string", "the backup's manifest", { value: "URI" }),
      revision: flag("string", "the revision the database must be at (the deployment's target)", { value: "REV" }),
      "use-recorded": flag("boolean", "report the proof migrate recorded for this backup, if any, instead of running it again", { default: false }),
      ...PROOF,
      "max-ms": flag("string", "performance: the longest any checked query may run", { value: "N" }),
    },
    env: ["database", "backup"],
    secrets: ["databasePassword"],
    window: "none",
  },
  "health-gate": {
    module: "./steps/health-gate",
    summary: "wait for /health",
    flags: {
      "timeout-seconds": flag("string", "give up after this long (default 120)", { value: "N" }),
      "interval-seconds": flag("string", "between attempts (default 2)", { value: "N" }),
    },
    env: ["app"],
    secrets: [],
    window: "none",
  },
  smoke: {
    module: "./steps/smoke",
    summary: "the guide's API checks",
    flags: {
      "expect-id-type": flag("string", "the id type the API must hand out: uuid or integer (default uuid)", { value: "TYPE" }),
    },
    env: ["app"],
    secrets: ["adminToken"],
    window: "none",
  },
  report: {
    module: "./steps/report",
    summary: "database reports",
    positionals: { what: "report", choices: ["slow-queries", "unused-indexes", "invalid-ids"], description: "which report" },
    flags: {
      "min-mean-ms": flag("string", "slow-queries: the least mean time to list", { value: "N" }),
      limit: flag("string", "at most this many rows", { value: "N" }),
    },
    env: ["database"],
    secrets: ["databasePassword"],
    window: "none",
  },
  restore: {
    module: "./steps/restore",
    summary: "restore a backup into the target database",
    flags: {
      uri: flag("string", "the backup (the uri printed by backup)", { value: "URI" }),
      force: flag("boolean", "replace what the database holds (a fresh copy swapped in, or in place)", { default: false }),
      "lock-wait-seconds": LOCK_WAIT,
    },
    env: ["database", "backup"],
    secrets: ["databasePassword"],
    window: "changes",
  },
  rollback: {
    module: "./steps/rollback",
    summary: "swap in the kept copy of the backup (or restore it), prove it, restart the app",
    flags: {
      manifest: flag("string", "the backup to go back to, where no copy of it is kept (default VIBES_ROLLBACK_MANIFEST)", { value: "URI" }),
    },
    env: ["database", "backup", "restart", "app"],
    secrets: ["databasePassword"],
    window: "changes",
    startsTheApp: true,
  },
  online: {
    module: "./steps/online",
    summary: "the id change with writes going on, one phase at a time (migrationStrategy online)",
    positionals: {
      what: "phase",
      choices: ["status", "expand", "backfill", "constraints", "swap", "swap-back", "rollback", "contract"],
      description: "status: where the database stands; expand: new uuid columns and the triggers that keep them right; backfill: the rows before it, resumable; " +
        "constraints: unique indexes, NOT NULL checks and foreign keys without long locks; swap: proven, then the uuid columns take the ids' names in one short transaction; " +
        "swap-back: the swap reversed (no write lost); rollback: before the swap, drop what expand added; contract: drop the integer columns and the triggers",
    },
    flags: {
      // The same values as migrate's, said for what they do here. Every phase gets the same id default.
      "id-default": flag("string", "the new ids' default after the swap, which the triggers and the backfill use before it; none: ids made by the app after the swap (gen_random_uuid() before it)",
        { value: "EXPR", default: PROOF["id-default"].default }),
      "uuid-version": flag("string", "swap: the version every new id must have in the proof before it: 4, 7 or any", { value: "V", default: PROOF["uuid-version"].default }),
      revision: flag("string", "swap: the revision the swapped schema is (the target), recorded in the version table; a swap-back records the one before again", { value: "REV" }),
      "batch-size": flag("string", "backfill: keys per batch (default 1000)", { value: "N" }),
      "pause-ms": flag("string", "backfill: pause between batches (default 0); it backs off further while the app waits on locks", { value: "N" }),
      "lock-timeout-ms": flag("string", "the longest one lock wait may take before it is rolled back and retried with backoff (default 1000 for a DDL, 2000 for a backfill batch, " +
        "200 for the one ACCESS EXCLUSIVE transaction of swap, swap-back, rollback and contract: the app's queries queue behind it)", { value: "N" }),
      "lock-attempts": flag("string", "how many times a lock wait is tried before the phase stops, the statement waiting rolled back, what came before it kept for a re-run (default 10; 21 for a backfill batch)", { value: "N" }),
    },
    env: ["database"],
    secrets: ["databasePassword"],
    window: { status: "none", expand: "changes", backfill: "changes", constraints: "changes", swap: "changes", "swap-back": "changes", rollback: "changes", contract: "changes" },
  },
  copy: {
    module: "./steps/copy",
    summary: "the verified copy kept for a rollback by swap",
    positionals: { what: "action", choices: ["status", "drop"], description: "show it, or drop it" },
    flags: {},
    env: ["database"],
    secrets: ["databasePassword"],
    window: "none",
  },
  restart: {
    module: "./steps/restart",
    summary: "the app's restart (VIBES_RESTART_COMMAND, over ssh to VIBES_RESTART_HOST when set), then its health gate",
    flags: {
      "timeout-seconds": flag("string", "the restart command's limit (default 300)", { value: "N" }),
      "health-timeout-seconds": flag("string", "then wait this long for /health (the health gate)", { value: "N" }),
      "health-interval-seconds": flag("string", "between health attempts (default 2)", { value: "N" }),
    },
    env: ["restart", "app"],
    secrets: [],
    window: "changes",
    startsTheApp: true,
  },
  notify: {
    module: "./steps/notify",
    summary: "deployment messages (docs/safety.md)",
    positionals: { what: "message", choices: ["start", "success"], description: "which message" },
    flags: { summary: flag("string", "the message's summary", { value: "TEXT" }) },
    env: [],
    secrets: [],
    window: "none",
  },
  "window-check": {
    module: "./steps/window-check",
    summary: "refuse outside the maintenance window",
    flags: {
      window: flag("string", "the maintenance window", { value: "JSON" }),
      override: flag("string", "an audited override", { value: "JSON" }),
    },
    env: [],
    secrets: [],
    window: "none",
  },
} as const satisfies Record<string, StepContract>;

export type StepName = keyof typeof CONTRACTS;

/** The parsed value of a flag as declared: a string (several with `multiple`) or a boolean, present when it has a default. */
type FlagValue<F> = F extends { type: "boolean" } ? boolean
  : F extends { multiple: true } ? string[] | undefined
  : F extends { default: string } ? string
  : string | undefined;
type Flags<S extends StepName> = (typeof CONTRACTS)[S]["flags"];
export type StepFlags<S extends StepName> = { [K in keyof Flags<S>]: FlagValue<Flags<S>[K]> };
/** A step's positional words: its declared choices. */
export type StepWord<S extends StepName> = (typeof CONTRACTS)[S] extends { positionals: { choices: readonly (infer C)[] } } ? C : never;

/** What the program reads of each step's JSON result (besides ok and step); docs/architecture.md has it all. */
export interface StepResults {
  preflight: { serverVersion: string; serverMajor: number; pgDumpMajor: number; revision: string; tables: Record<string, { rows: number; bytes: number }>; databaseBytes: number; freeBytes: number | null };
  backup: { uri: string; manifestUri: string; sha256: string; bytes: number; createdAt: string; revision: string };
  "verify-restore": { sha256: string; matches: boolean; keptCopy?: string | null };
  maintenance: { enabled: boolean; changed: boolean };
  migrate: {
    revisionBefore: string;
    revisionAfter: string;
    changed: boolean;
    filesSha256: string | null;
    /** The backup the run relied on: the given one, or the one it took again inside the window. */
    backup: { uri: string; manifestUri: string; sha256: string; bytes: number; retaken: boolean };
  };
  validate: { checks: { name: string; ok: boolean; detail: string }[]; summary: string };
  restart: { health: { healthy: boolean; attempts: number; elapsedMs: number } };
  smoke: { checks: { name: string; ok: boolean; status: number }[] };
  copy: { dropped?: string | null };
  notify: { event: string };
  "window-check": { inside: boolean; overridden: boolean };
  "health-gate": { healthy: boolean };
  report: { rows: unknown[] };
  restore: { uri: string; how: string };
  rollback: { how: string };
  online: {
    /** Where the change stands after the run (status: now). */
    phase: "initial" | "expanded" | "swapped" | "contracted";
    /** Where it stood before (not with status). */
    phaseBefore?: "initial" | "expanded" | "swapped" | "contracted";
    /** What the run did, in a line ("nothing: ..." when the database was already past the phase). */
    did?: string;
    /** The longest ACCESS EXCLUSIVE hold of this run's phase, ms (swap, swap-back, rollback, contract; absent when it did nothing). */
    holdMs?: number;
  };
}

export const isStep = (name: string): name is StepName => Object.hasOwn(CONTRACTS, name);

/** The window rule for `step` called with `positionals`. */
export function windowRule(step: StepName, positionals: readonly string[]): WindowRule {
  const rule: StepContract["window"] = CONTRACTS[step].window;
  return typeof rule === "string" ? rule : rule[positionals[0]] ?? "none";
}

/** One line per flag: how it is written, what it is for, its default. */
function flagLines(contract: StepContract): string[] {
  return Object.entries(contract.flags).map(([name, f]) => {
    const written = `--${name}${f.type === "string" ? ` ${f.value ?? "VALUE"}` : ""}${f.multiple ? " ..." : ""}`;
    const fallback = f.default !== undefined && f.type === "string" ? ` (default ${f.default})` : "";
    return `  ${written.padEnd(30)} ${f.description}${fallback}`;
  });
}

/** The one-line synopsis of a step: positionals, then its flags in brackets. */
export function synopsis(step: StepName): string {
  const contract: StepContract = CONTRACTS[step];
  const p = contract.positionals;
  const words = p ? [p.many ? `[${p.choices.join("|")}]...` : p.choices.join("|")] : [];
  const flags = Object.entries(contract.flags).map(([name, f]) => `[--${name}${f.type === "string" ? ` ${f.value ?? "VALUE"}` : ""}]`);
  return [step, ...words, ...flags].join(" ");
}

/** `vibes-hooks <step> --help`. */
export function stepHelp(step: StepName): string {
  const contract: StepContract = CONTRACTS[step];
  const lines = [`usage: vibes-hooks ${synopsis(step)}`, "", contract.summary];
  if (contract.positionals) lines.push("", `${contract.positionals.choices.join("|")}: ${contract.positionals.description}`);
  if (Object.keys(contract.flags).length > 0) lines.push("", "flags:", ...flagLines(contract));
  const reads = [...contract.env.map((g) => `${g} settings`), ...contract.secrets];
  lines.push("", `reads: ${reads.length > 0 ? reads.join(", ") : "nothing from the environment"} (docs/architecture.md)`);
  if (windowRule(step, []) !== "none" || typeof contract.window !== "string") lines.push("refuses to run outside VIBES_MAINTENANCE_WINDOW (when set)");
  return `${lines.join("\n")}\n`;
}

/** `vibes-hooks --help`. */
export function usage(): string {
  const lines = Object.entries(CONTRACTS).map(([name, c]) => `  ${name.padEnd(15)} ${c.summary}`);
  return `usage: vibes-hooks <step> [flags]   (vibes-hooks <step> --help for its flags)\n\nsteps:\n${lines.join("\n")}\n\nSettings come from the environment: see docs/architecture.md.\n`;
}
