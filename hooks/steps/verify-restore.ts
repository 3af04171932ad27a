/**
 * verify-restore --uri URI [--scratch-database NAME]: proves a backup restores before anything
 * is migrated. Checks the dump's SHA-256 against its manifest first, restores it into a scratch
 * database (created and dropped here, or the configured one, which is left in place), and
 * compares row counts, fingerprints, constraints, indexes and revision with the manifest.
 */
import { randomBytes } from "node:crypto";
import { parseFlags, requireFlag } from "../lib/args";
import { fetchVerified, pgRestoreInto } from "../lib/backupFile";
import { connect, connectionFromEnv } from "../lib/connection";
import { StepError, UsageError } from "../lib/errors";
import {
  captureState, compareRowCounts, compareState, MANIFEST_FORMAT, quoteIdent, readSchema, schemaObjectChecks, type Check, type DatabaseState, type Manifest,
} from "../lib/manifest";
import { assertToolCanHandle, pgTool } from "../lib/pgTools";
import { progress } from "../lib/progress";
import { currentRevision } from "../lib/revision";
import type { Client } from "pg";

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseFlags("verify-restore", args, {
    uri: { type: "string" },
    "scratch-database": { type: "string" },
  });
  const uri = requireFlag("verify-restore", values.uri, "--uri", "URI (the uri printed by backup)");
  const configured = values["scratch-database"];
  if (configured !== undefined && !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(configured)) {
    throw new UsageError(`verify-restore: --scratch-database "${configured}" is not a plain database name`, "use letters, digits and _");
  }
  const log = progress("verify-restore");
  const settings = connectionFromEnv(env);
  const scratch = configured ?? `vibes_verify_${randomBytes(6).toString("hex")}`;
  if (scratch === settings.database) {
    throw new UsageError(`verify-restore: --scratch-database is the target database ${scratch}`, "name a separate scratch database");
  }

  const dump = await fetchVerified(uri, env, log);
  let admin: Client;
  try {
    admin = await connect(settings, { applicationName: "vibes-hooks verify-restore" });
  } catch (err) {
    await dump.cleanup(); // a dump fetched from S3 is the database's data: never left in /tmp
    throw err;
  }
  let created = false;
  try {
    await assertToolCanHandle(pgTool("pg_restore", env), env, admin);
    if (configured) {
      const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [scratch]);
      if (exists.rowCount === 0) throw new StepError(`scratch database ${scratch} does not exist`, `create it (CREATE DATABASE ${scratch}) or leave out --scratch-database`);
    } else {
      try {
        await admin.query(`CREATE DATABASE ${quoteIdent(scratch)}`);
      } catch (err) {
        throw new StepError(`cannot create the scratch database ${scratch}: ${(err as Error).message}`,
          `grant CREATEDB to ${settings.user}, or create a scratch database and pass --scratch-database NAME`, { cause: err });
      }
      created = true;
    }
    log(`restoring into ${scratch}`);
    const scratchSettings = { ...settings, database: scratch };
    // --no-owner/--no-privileges: the point is the data; owners may not exist or be ours to set.
    const extra = ["--no-owner", "--no-privileges", ...(configured ? ["--clean", "--if-exists"] : [])];
    await pgRestoreInto(scratchSettings, dump.path, env, extra, "the dump does not restore: do not migrate; take a new backup and check pg_restore's error");
    const client = await connect(scratchSettings, { applicationName: "vibes-hooks verify-restore" });
    let checks: Check[];
    try {
      checks = await compareWithManifest(client, dump.manifest);
    } finally {
      await client.end().catch(() => undefined);
    }
    const failed = checks.filter((c) => !c.ok);
    if (failed.length > 0) {
      throw new StepError(`the restored backup differs from its manifest: ${failed.map((c) => c.name).join(", ")}`,
        "do not migrate: take a new backup (maintenance mode on, so nothing writes) and verify it again", { details: { checks } });
    }
    log(`restored copy matches the manifest (${checks.length} checks)`);
    return {
      uri,
      sha256: dump.sha256,
      scratchDatabase: scratch,
      tables: Object.fromEntries(Object.entries(dump.manifest.tables).map(([t, s]) => [t, { rows: s.rows }])),
      checks,
      matches: true,
      fingerprintsCompared: dump.manifest.format === MANIFEST_FORMAT,
    };
  } finally {
    if (created) {
      await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(scratch)} WITH (FORCE)`).catch((err) =>
        log(`could not drop scratch database ${scratch}: ${(err as Error).message}; drop it by hand`));
    }
    await admin.end().catch(() => undefined);
    await dump.cleanup();
  }
}

/**
 * Counts, fingerprints, constraints, indexes and revision of `client`'s database against a
 * manifest; the fingerprints only when the manifest is of this version's format.
 */
export async function compareWithManifest(client: Client, manifest: Manifest): Promise<Check[]> {
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  try {
    const tables = Object.keys(manifest.tables);
    const revision = await currentRevision(client);
    let data: Check[];
    let schema: DatabaseState["schema"];
    if (manifest.format === MANIFEST_FORMAT) {
      const state = await captureState(client, tables, manifest);
      data = compareState(manifest, state);
      schema = state.schema;
    } else {
      data = await compareRowCounts(client, manifest);
      schema = await readSchema(client, tables);
    }
    return [
      { name: "revision", ok: revision === manifest.revision, detail: `${revision ?? "(none)"}${revision === manifest.revision ? "" : `, manifest says ${manifest.revision}`}` },
      ...data,
      ...schemaObjectChecks(manifest.schema, schema),
    ];
  } finally {
    await client.query("COMMIT").catch(() => undefined);
  }
}
