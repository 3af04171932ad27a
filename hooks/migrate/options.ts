// migrate's flags and settings, checked and typed before anything connects.
import type { StepFlags } from "../contracts";
import { durationSetting, requireFlag } from "../lib/args";
import { UsageError } from "../lib/errors";
import { parseLockWait } from "../lib/database/migrationLock";
import { REVISION_RE } from "../lib/migrationSource";
import { proofOptions, type ProofOptions } from "../lib/proof/proof";

export interface MigrateOptions {
  to: string;
  manifestUri: string;
  /** The id type and defaults of the target revision, for the proof after the change. */
  proof: ProofOptions;
  acceptRenumberedIds: boolean;
  lockWaitMs: number;
  /** The files checksum the deployment was planned with; undefined: not given (a warning). */
  expectedFilesSha256?: string;
  mode: "alembic" | "sql";
  /** pg_dump's lock wait when the backup is taken again. */
  lockWaitTimeout: string;
  lockTimeout: { text: string; ms: number };
  statementTimeout: { text: string; ms: number };
  /** The whole command, its statements together (statement_timeout bounds each one alone). */
  migrationTimeout: { text: string; ms: number };
}

export function migrateOptions(values: StepFlags<"migrate">, env: NodeJS.ProcessEnv): MigrateOptions {
  const to = requireFlag("migrate", values.to, "--to", "001_uuid_schema_migration");
  if (!REVISION_RE.test(to)) throw new UsageError(`migrate: --to "${to}" is not an alembic revision id`, "pass --to REV with letters, digits, _ . - only");
  const manifestUri = requireFlag("migrate", values.manifest, "--manifest", "<manifestUri printed by backup>");
  const proof = proofOptions("migrate", values);
  const lockWaitMs = parseLockWait("migrate", values["lock-wait-seconds"]);
  const expectedFilesSha256 = values["files-sha256"]?.toLowerCase();
  if (expectedFilesSha256 !== undefined && !/^[0-9a-f]{64}$/.test(expectedFilesSha256)) {
    throw new UsageError("migrate: --files-sha256 must be 64 hex digits", "pass the migrationFilesSha256 the deployment was planned with");
  }
  return {
    to,
    manifestUri,
    proof,
    acceptRenumberedIds: values["accept-renumbered-ids"],
    lockWaitMs,
    expectedFilesSha256,
    mode: values.mode === "sql" ? "sql" : "alembic",
    lockWaitTimeout: values["lock-wait-timeout"],
    lockTimeout: durationSetting(env, "VIBES_LOCK_TIMEOUT", "5s"),
    statementTimeout: durationSetting(env, "VIBES_STATEMENT_TIMEOUT", "30min"),
    migrationTimeout: durationSetting(env, "VIBES_MIGRATION_TIMEOUT", "1h"),
  };
}
