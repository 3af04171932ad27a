import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { durationSetting } from "../args";
import { withPassfile } from "../database/childEnv";
import type { ConnectionSettings } from "../database/connection";
import { StepError } from "../errors";
import { isCurrent, loadManifest, MANIFEST_FORMAT, manifestUriFor, type LegacyManifest, type Manifest } from "../proof/manifest";
import { pgTool } from "../database/pgTools";
import { formatBytes } from "../../../common/text";
import { assertSucceeded, runChild } from "../processes/run";
import { openReader } from "./storage";
import { makeTempDir, removeTempDir } from "../processes/tempDirs";

export interface VerifiedDump {
  /** A local file holding the dump (the original for file:// URIs, else a downloaded copy). */
  path: string;
  sha256: string;
  bytes: number;
  manifest: Manifest | LegacyManifest;
  /** Removes the downloaded copy, if any. */
  cleanup(): Promise<void>;
}

/**
 * Loads the dump's manifest, brings the dump to a local file and checks its SHA-256 and size
 * against the manifest before anything else may use it. Backups of earlier manifest formats are
 * accepted: their fingerprints are not compared (see compareWithManifest), the rest is.
 */
export async function fetchVerified(uri: string, env: NodeJS.ProcessEnv, log: (m: string) => void): Promise<VerifiedDump> {
  const manifest = await loadManifest(manifestUriFor(uri), env, { olderFormats: true });
  if (!isCurrent(manifest)) {
    log(`the manifest is format ${manifest.format}: row counts, constraint and index names and the revision are compared, its fingerprints and schema (format ${MANIFEST_FORMAT} here) are not`);
  }
  const hash = createHash("sha256");
  let bytes = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  let path: string;
  let tmp: string | undefined;
  try {
    if (uri.startsWith("s3://")) {
      tmp = await makeTempDir("vibes-dump-");
      path = join(tmp, "backup.dump");
      log(`downloading ${uri}`);
      await pipeline(openReader(env).get(uri), hashing, createWriteStream(path, { mode: 0o600 }));
    } else {
      path = uri.startsWith("file://") ? fileURLToPath(uri) : uri;
      for await (const chunk of createReadStream(path)) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
    }
  } catch (err) {
    if (tmp) await removeTempDir(tmp);
    if (err instanceof StepError) throw err;
    throw new StepError(`cannot read ${uri}: ${(err as Error).message}`, "check the URI (as printed by the backup step) and access to it", { cause: err });
  }
  const sha256 = hash.digest("hex");
  const cleanup = async () => {
    if (tmp) await removeTempDir(tmp);
  };
  if (sha256 !== manifest.dump.sha256 || bytes !== manifest.dump.bytes) {
    await cleanup();
    throw new StepError(
      `checksum mismatch for ${uri}: sha256 ${sha256} (${bytes} bytes), the manifest says ${manifest.dump.sha256} (${manifest.dump.bytes} bytes)`,
      "the dump is corrupt or was changed after the backup: do not use it; take a new backup or use another one",
    );
  }
  log(`checksum ok: ${formatBytes(bytes)} sha256 ${sha256.slice(0, 12)}...`);
  return { path, sha256, bytes, manifest, cleanup };
}

/**
 * pg_restore of a verified dump into `settings.database` (password through the passfile).
 * `extraArgs` e.g. ["--clean", "--if-exists", "--single-transaction"].
 */
export async function pgRestoreInto(
  settings: ConnectionSettings,
  path: string,
  env: NodeJS.ProcessEnv,
  extraArgs: string[],
  next: string,
): Promise<void> {
  const tool = pgTool("pg_restore", env);
  // A hung restore must not hold the migration lock (the automatic rollback restores) forever.
  const limit = durationSetting(env, "VIBES_RESTORE_TIMEOUT", "6h");
  // Bounded lock waits: a restore queued behind a reader would block everyone behind it (0 would
  // wait forever).
  const lockTimeout = durationSetting(env, "VIBES_LOCK_TIMEOUT", "60s");
  await withPassfile(settings, async (childEnv) => {
    childEnv.PGOPTIONS = `${childEnv.PGOPTIONS ?? ""} -c lock_timeout=${lockTimeout.text}`.trim();
    const res = await runChild(tool, ["--exit-on-error", "--no-password", `--dbname=${settings.database}`, ...extraArgs, path],
      { env: childEnv, label: "pg_restore", timeoutMs: limit.ms });
    if (res.timedOut) {
      throw new StepError(`pg_restore into ${settings.database} timed out after ${limit.text} (VIBES_RESTORE_TIMEOUT) and was stopped`,
        "raise VIBES_RESTORE_TIMEOUT for a database this size, then rerun");
    }
    assertSucceeded(res, `pg_restore into ${settings.database}`, next);
  }, env);
}
