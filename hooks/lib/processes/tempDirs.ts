// Private temporary folders for what must never outlive the hook: passfiles, and dumps fetched
// from S3 (the database's data). Removed by their step, and on any exit too: a hook ended by a
// signal (process.exit, hooks/cli.ts) skips the steps' finally blocks.
import { mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const live = new Set<string>();
process.once("exit", () => {
  for (const dir of live) rmSync(dir, { recursive: true, force: true });
});

/** A new folder (mode 0700) under the system's temporary folder. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  live.add(dir);
  return dir;
}

/** makeTempDir, for callers that cannot wait (the tests' stand-in tools and secret files). */
export function makeTempDirSync(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  live.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  live.delete(dir);
}
