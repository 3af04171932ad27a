// The swap as a rollback: the copy verify-restore kept swapped in (hooks/lib/database/databaseSwap.ts), then
// proven, schema, data and ids, against its manifest. migrate, restore and the rollback after a
// failure past the migration use it.
import { withClient, type ConnectionSettings } from "../database/connection";
import { connectAdmin, failedNameFor, findCopy, swapIn, swapObstacles, type CopyMarker } from "../database/databaseSwap";
import { errorMessage, StepError } from "../errors";
import type { Check } from "../../../common/types";
import { loadManifest } from "../proof/manifest";
import { compareWithManifest } from "../proof/verify";

export interface SwappedIn {
  failedDatabase: string;
  copy: CopyMarker;
  checks: Check[];
  swapMs: number;
  proofMs: number;
  notCarried: string[];
}

/**
 * Swaps in the copy verify-restore kept for settings.database, when it is of the backup with
 * `sha256`, and proves it. `unavailable` (nothing touched) when there is no such copy or a swap
 * cannot be exact; a failure once the swap began is thrown, with where things stand.
 */
export async function swapInCopy(settings: ConnectionSettings, env: NodeJS.ProcessEnv, sha256: string | undefined, log: (m: string) => void): Promise<SwappedIn | { unavailable: string }> {
  let admin;
  try {
    admin = await connectAdmin(settings, env, "swap");
  } catch (err) {
    return { unavailable: errorMessage(err) };
  }
  let swap;
  let copy;
  try {
    // Looking changes nothing: whatever stops the swap here leaves the restore to do it.
    try {
      copy = await findCopy(admin, settings.database);
      if (!copy?.marker) return { unavailable: copy ? `${copy.name} is not a copy vibes-hooks kept` : "no verified copy was kept (verify-restore --keep-copy)" };
      if (sha256 !== undefined && copy.marker.sha256 !== sha256) {
        return { unavailable: `the kept copy is of backup ${copy.marker.sha256.slice(0, 12)}..., not of ${sha256.slice(0, 12)}...` };
      }
      const obstacles = await swapObstacles(admin, env, settings.database);
      if (obstacles.length > 0) return { unavailable: obstacles.join("; ") };
    } catch (err) {
      return { unavailable: errorMessage(err) };
    }
    log(`swapping in ${copy.name}, the proven copy of ${copy.marker.uri}`);
    swap = await swapIn(admin, copy.name, settings.database, failedNameFor(settings.database, new Date()), log);
  } finally {
    await admin.end().catch(() => undefined);
  }
  const proofStarted = Date.now();
  const marker = copy.marker;
  const fail = (why: string) => new StepError(`the copy of ${marker.uri} was swapped in as ${settings.database} but ${why}`,
    `keep maintenance mode on; the database before the swap is kept as ${swap.failedDatabase}; restore the backup by hand (vibes-hooks restore --uri ${marker.uri} --force) and check it (vibes-hooks validate schema data --manifest ${marker.manifestUri})`,
    { details: { failedDatabase: swap.failedDatabase } });
  let checks: Check[];
  try {
    const manifest = await loadManifest(marker.manifestUri, env, { olderFormats: true });
    checks = await withClient(settings, "swap", (client) => compareWithManifest(client, manifest, { privileges: true }));
  } catch (err) {
    throw fail(`it could not be proven: ${errorMessage(err)}`);
  }
  const failed = checks.filter((c) => !c.ok);
  if (failed.length > 0) throw fail(`it does not match the backup: ${failed.map((c) => `${c.name}: ${c.detail}`).join("; ")}`);
  const proofMs = Date.now() - proofStarted;
  log(`swapped in (${swap.swapMs} ms) and proven (${checks.length} checks, ${proofMs} ms); the database before is kept as ${swap.failedDatabase}`);
  return { failedDatabase: swap.failedDatabase, copy: marker, checks, swapMs: swap.swapMs, proofMs, notCarried: swap.notCarried };
}
