// Proving a backup: restored into a scratch database (or kept as the copy a swap rolls back to)
// and compared with its manifest. verify-restore runs it before the window, migrate for a backup
// it takes again inside it, restore and the swap after putting a backup in place.
import type { Client } from "pg";
import { withClient, type ConnectionSettings } from "../database/connection";
import { dropCopy, sealCopy, swapObstacles } from "../database/databaseSwap";
import { errorMessage, StepError } from "../errors";
import type { Check } from "../../../common/types";
import { isCurrent, legacyChecks, manifestUriFor, type LegacyManifest, type Manifest } from "./manifest";
import { prove } from "./proof";
import { currentRevision } from "../database/revision";
import { withRestoredScratch } from "../database/scratchRestore";
import { quoteIdent } from "../database/tables";

/** Restores the backup at `uri` into a scratch database and compares it with its manifest;
 * throws unless it matches. migrate uses it for a backup it takes again inside the window. */
export async function verifyBackup(
  settings: ConnectionSettings,
  uri: string,
  env: NodeJS.ProcessEnv,
  opts: { scratchDatabase?: string; keepCopy?: boolean; log: (msg: string) => void },
): Promise<Record<string, unknown>> {
  const obstacles = opts.keepCopy ? await withClient(settings, "verify-restore", (client) => swapObstacles(client, env, settings.database)) : [];
  if (opts.keepCopy && obstacles.length > 0) opts.log(`not keeping a copy to swap in (the rollback will restore instead): ${obstacles.join("; ")}`);
  if (opts.keepCopy && obstacles.length === 0) {
    try {
      return await verifyInScratch(settings, uri, env, opts, true, obstacles);
    } catch (err) {
      // Owners or grants the catalog did not show as out of reach: the backup is then proven the
      // plain way, and only a failure there means it is unusable.
      opts.log(`the copy could not be restored and proven exactly (${errorMessage(err)}); verifying without keeping it`);
      obstacles.push(`the exact copy failed: ${errorMessage(err)}`);
    }
  }
  if (opts.keepCopy) {
    // A copy kept by an earlier run must not be swapped in where this one found a swap inexact.
    const dropped = await withClient(settings, "verify-restore", (client) => dropCopy(client, settings.database)).catch(() => null);
    if (dropped) opts.log(`dropped the earlier copy ${dropped}`);
  }
  return verifyInScratch(settings, uri, env, opts, false, obstacles);
}

/** verifyBackup's restore and proof, with owners and grants and kept when `keep`. */
async function verifyInScratch(
  settings: ConnectionSettings,
  uri: string,
  env: NodeJS.ProcessEnv,
  opts: { scratchDatabase?: string; keepCopy?: boolean; log: (msg: string) => void },
  keep: boolean,
  obstacles: string[],
): Promise<Record<string, unknown>> {
  const result = await withRestoredScratch(settings, uri, env, { ...opts, purpose: "verify", keep }, async (client, dump, scratch) => {
    const checks = await compareWithManifest(client, dump.manifest, { privileges: keep });
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
      ...(opts.keepCopy ? { keptCopy: keep ? scratch : null, swapObstacles: obstacles } : {}),
    };
  });
  if (keep) {
    const copy = result.scratchDatabase as string;
    const marker = { copyOf: settings.database, sha256: result.sha256 as string, uri, manifestUri: manifestUriFor(uri), provenAt: new Date().toISOString() };
    try {
      await withClient(settings, "verify-restore", (client) => sealCopy(client, copy, marker));
      opts.log(`kept the proven copy as ${copy} (closed to connections) for a rollback by swap`);
    } catch (err) {
      // Unmarked, it would be no one's: dropped, and the rollback restores instead.
      await withClient(settings, "verify-restore", (client) => client.query(`DROP DATABASE IF EXISTS ${quoteIdent(copy)} WITH (FORCE)`)).catch(() => undefined);
      opts.log(`warning: could not keep the copy ${copy} (${errorMessage(err)}); the rollback will restore instead`);
      return { ...result, keptCopy: null, swapObstacles: [`the copy could not be marked: ${errorMessage(err)}`] };
    }
  }
  return result;
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
  // At the manifest's revision the proof compares exactly; the id settings do not apply. The
  // database is a restore of the dump: pg_dump does not carry internal triggers' enabled state.
  const proof = await prove(client, manifest, { idType: "uuid", idDefault: null, uuidVersion: null, privileges: opts.privileges, restored: true });
  return [revisionCheck, ...proof.checks];
}
