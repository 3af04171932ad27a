// migrate, apart from its CLI (hooks/steps/migrate.ts): the schema change run exactly once, under
// a session advisory lock, proven, or rolled back to the backup. The rooms: options.ts (flags and
// settings), run.ts (one run's state), unchanged.ts (the check that opens the window), change.ts
// (the change and its proof, an interrupted run resumed), rollback.ts (back to the backup).
import { hostname } from "node:os";
import { withPassfile } from "../lib/database/childEnv";
import { connect, connectionFromEnv } from "../lib/database/connection";
import { StepError } from "../lib/errors";
import { loadManifest } from "../lib/proof/manifest";
import { plannedMigrationFilesSha256 } from "../../common/migrationFiles";
import { withMigrationLock } from "../lib/database/migrationLock";
import { sourceFromFlags } from "../lib/migrationSource";
import { progress } from "../lib/progress";
import { migrateLocked } from "./change";
import type { MigrateOptions } from "./options";
import { MigrateRun } from "./run";

export { migrateOptions, type MigrateOptions } from "./options";

/** `flags`: the source's (--mode, --sql-dir, --up, --down), read by sourceFromFlags. */
export async function migrate(opts: MigrateOptions, flags: Parameters<typeof sourceFromFlags>[1], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const source = sourceFromFlags("migrate", flags, env);
  const settings = connectionFromEnv(env);
  const log = progress("migrate");
  const filesSha = plannedMigrationFilesSha256(opts.mode === "sql" ? { mode: "sql", sqlDir: source.dir } : { mode: "alembic", appDir: env.VIBES_APP_DIR! });
  if (opts.expectedFilesSha256 === undefined) {
    log(`warning: no --files-sha256 given; migration files are ${filesSha}`);
  } else if (filesSha !== opts.expectedFilesSha256) {
    throw new StepError(`the migration files in ${source.dir} have SHA-256 ${filesSha}, not the planned ${opts.expectedFilesSha256}`,
      "the migrations changed since the deployment was planned: review the change and run `pulumi preview` / `pulumi up` again");
  }
  const manifest = await loadManifest(opts.manifestUri, env);

  return withPassfile(settings, async (childEnv) => {
    // client_connection_check_interval: a backend whose command was killed notices it and stops
    // (PostgreSQL 14+), instead of running on until its statement ends.
    const pgOptions = `-c lock_timeout=${opts.lockTimeout.text} -c statement_timeout=${opts.statementTimeout.text} -c client_connection_check_interval=2s`;
    childEnv.PGOPTIONS = childEnv.PGOPTIONS ? `${childEnv.PGOPTIONS} ${pgOptions}` : pgOptions;
    const client = await connect(settings, {
      lockTimeout: opts.lockTimeout.text,
      statementTimeout: opts.statementTimeout.text,
      applicationName: `vibes-hooks migrate ${hostname()}:${process.pid}`.slice(0, 63),
    });
    try {
      const run = new MigrateRun(opts, env, settings, source, filesSha, childEnv, client, log, manifest, opts.manifestUri);
      childEnv.PGAPPNAME = run.childApplication;
      return await withMigrationLock(client, opts.lockWaitMs, log, () => migrateLocked(run));
    } finally {
      await client.end().catch(() => undefined);
    }
  }, env);
}
