// A scratch database holding a backup: verify-restore proves the backup with it, locate reads
// the backup's rows from it.
import { randomBytes } from "node:crypto";
import type { Client } from "pg";
import { fetchVerified, pgRestoreInto, type VerifiedDump } from "../storage/backupFile";
import { connect, type ConnectionSettings } from "./connection";
import { StepError, UsageError } from "../errors";
import { createDatabaseLike, copyNameFor, dropCopy } from "./databaseSwap";
import { assertToolCanHandle, pgTool } from "./pgTools";
import { quoteIdent } from "./tables";

/**
 * Runs `use` on a scratch database holding the backup at `uri` (its checksum verified first):
 * created here and dropped afterwards, or the configured one (`scratchDatabase`, cleaned and left
 * in place). `sections` restores only those pg_restore sections (the data without its indexes,
 * for a look at the rows). `keep`: the scratch database is the copy a swap rolls back to
 * (hooks/lib/database/databaseSwap.ts): restored with its owners and privileges, exact, and kept when `use`
 * succeeds (a previous copy is dropped first).
 */
export async function withRestoredScratch<T>(
  settings: ConnectionSettings,
  uri: string,
  env: NodeJS.ProcessEnv,
  opts: { scratchDatabase?: string; log: (msg: string) => void; purpose: "verify" | "locate"; sections?: string[]; keep?: boolean },
  use: (client: Client, dump: VerifiedDump, scratch: string) => Promise<T>,
): Promise<T> {
  const { log } = opts;
  const configured = opts.scratchDatabase;
  const scratch = opts.keep ? copyNameFor(settings.database) : configured ?? `vibes_${opts.purpose}_${randomBytes(6).toString("hex")}`;
  if (scratch === settings.database) {
    throw new UsageError(`verify-restore: --scratch-database is the target database ${scratch}`, "name a separate scratch database");
  }

  const dump = await fetchVerified(uri, env, log);
  let admin: Client;
  try {
    admin = await connect(settings, { applicationName: `vibes-hooks ${opts.purpose}` });
  } catch (err) {
    await dump.cleanup(); // a dump fetched from S3 is the database's data: never left in /tmp
    throw err;
  }
  let created = false;
  let kept = false;
  try {
    await assertToolCanHandle(pgTool("pg_restore", env), env, admin);
    if (configured) {
      const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [scratch]);
      if (exists.rowCount === 0) throw new StepError(`scratch database ${scratch} does not exist`, `create it (CREATE DATABASE ${scratch}) or leave out --scratch-database`);
    } else {
      if (opts.keep && (await dropCopy(admin, settings.database))) log(`dropped the previous copy ${scratch}`);
      try {
        // Like the target (encoding, locale, tablespace): a copy that may become it must sort and compare alike.
        await createDatabaseLike(admin, scratch, settings.database);
      } catch (err) {
        throw new StepError(`cannot create the scratch database ${scratch}: ${(err as Error).message}`,
          `grant CREATEDB to ${settings.user}, or create a scratch database and pass --scratch-database NAME`, { cause: err });
      }
      created = true;
    }
    log(`restoring into ${scratch}`);
    const scratchSettings = { ...settings, database: scratch };
    // --no-owner/--no-privileges: the point is the data; owners may not exist or be ours to set. A
    // kept copy may become the database: it gets them (swapObstacles checked they can be set).
    const extra = [...(opts.keep ? [] : ["--no-owner", "--no-privileges"]), ...(configured ? ["--clean", "--if-exists"] : []), ...(opts.sections ?? []).map((s) => `--section=${s}`)];
    await pgRestoreInto(scratchSettings, dump.path, env, extra, "the dump does not restore: do not migrate; take a new backup and check pg_restore's error");
    const client = await connect(scratchSettings, { applicationName: `vibes-hooks ${opts.purpose}` });
    try {
      const result = await use(client, dump, scratch);
      kept = opts.keep === true;
      return result;
    } finally {
      await client.end().catch(() => undefined);
    }
  } finally {
    if (created && !kept) {
      await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(scratch)} WITH (FORCE)`).catch((err) =>
        log(`could not drop scratch database ${scratch}: ${(err as Error).message}; drop it by hand`));
    }
    await admin.end().catch(() => undefined);
    await dump.cleanup();
  }
}

