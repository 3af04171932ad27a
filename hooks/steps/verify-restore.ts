/**
 * verify-restore --uri URI [--scratch-database NAME]: proves a backup restores before anything
 * is migrated. Checks the dump's SHA-256 against its manifest first, restores it into a scratch
 * database (created and dropped here, or the configured one, which is left in place), and
 * proves it against the manifest: revision, the schema snapshot (owners and grants aside: the
 * restore sets neither), and every row, ids included (hooks/lib/proof.ts).
 */
import { parseFlags, requireFlag } from "../lib/args";
import { connectionFromEnv, type ConnectionSettings } from "../lib/connection";
import { StepError, UsageError } from "../lib/errors";
import { isCurrent, legacyChecks, type Check, type LegacyManifest, type Manifest } from "../lib/manifest";
import { prove } from "../lib/proof";
import { progress } from "../lib/progress";
import { currentRevision } from "../lib/revision";
import { withRestoredScratch } from "../lib/scratchRestore";
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
  return verifyBackup(connectionFromEnv(env), uri, env, { scratchDatabase: configured, log: progress("verify-restore") });
}

/** Restores the backup at `uri` into a scratch database and compares it with its manifest;
 * throws unless it matches. migrate uses it for a backup it takes again inside the window. */
export async function verifyBackup(
  settings: ConnectionSettings,
  uri: string,
  env: NodeJS.ProcessEnv,
  opts: { scratchDatabase?: string; log: (msg: string) => void },
): Promise<Record<string, unknown>> {
  return withRestoredScratch(settings, uri, env, { ...opts, purpose: "verify" }, async (client, dump, scratch) => {
    const checks = await compareWithManifest(client, dump.manifest, { privileges: false });
    const failed = checks.filter((c) => !c.ok);
    if (failed.length > 0) {
      throw new StepError(`the restored backup differs from its manifest: ${failed.map((c) => c.name).join(", ")}`,
        "do not migrate: take a new backup (maintenance mode on, so nothing writes) and verify it again", { details: { checks } });
    }
    opts.log(`restored copy matches the manifest (${checks.length} checks)`);
    return {
      uri,
      sha256: dump.sha256,
      scratchDatabase: scratch,
      tables: Object.fromEntries(Object.entries(dump.manifest.tables).map(([t, s]) => [t, { rows: s.rows }])),
      checks,
      matches: true,
      fingerprintsCompared: isCurrent(dump.manifest),
    };
  });
}

/**
 * Revision, schema and data of `client`'s database against a manifest: in full (the schema
 * exactly, the ids too) when it is of this version's format, else row counts and object names.
 * `privileges: false` leaves owners and grants out (a restore made without them).
 */
export async function compareWithManifest(client: Client, manifest: Manifest | LegacyManifest, opts: { privileges: boolean }): Promise<Check[]> {
  const revision = await currentRevision(client);
  const revisionCheck = { name: "revision", ok: revision === manifest.revision, detail: `${revision ?? "(none)"}${revision === manifest.revision ? "" : `, manifest says ${manifest.revision}`}` };
  if (!isCurrent(manifest)) return [revisionCheck, ...(await legacyChecks(client, manifest))];
  // At the manifest's revision the proof compares exactly; the id settings do not apply.
  const proof = await prove(client, manifest, { idType: "uuid", idDefault: null, uuidVersion: null, privileges: opts.privileges });
  return [revisionCheck, ...proof.checks];
}
