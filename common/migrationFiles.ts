// The fingerprint of the migration files that a deployment is planned with. The Pulumi program
// computes it at preview time and `migrate --files-sha256` refuses to run when the files changed
// since, so what runs is what was reviewed. Alembic itself stores no checksum.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** SHA-256 (hex) over the `*.py` files directly in `versionsDir` (alembic mode). */
export function migrationFilesSha256(versionsDir: string): string {
  return folderSha256(versionsDir, ".py");
}

export type MigrationFilesSpec = { mode: "alembic"; appDir: string } | { mode: "sql"; sqlDir: string };

/** The folder holding a mode's migration files. */
export function migrationFilesDir(spec: MigrationFilesSpec): string {
  return spec.mode === "sql" ? spec.sqlDir : join(spec.appDir, "migrations", "versions");
}

/** The SHA-256 of a mode's migration files: the one computation the program (at plan time) and
 * `migrate` (before running) share, so both agree on what was reviewed. */
export function plannedMigrationFilesSha256(spec: MigrationFilesSpec): string {
  const dir = migrationFilesDir(spec);
  return spec.mode === "sql" ? folderSha256(dir, ".sql") : migrationFilesSha256(dir);
}

/** The files ending in `suffix` directly in `dir`, in byte order of their names: for each file
 * `name NUL byteLength NUL content`, so renames and moved bytes change the hash. */
function folderSha256(dir: string, suffix: string): string {
  const names = readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(suffix))
    .map((entry) => entry.name)
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const hash = createHash("sha256");
  for (const name of names) {
    const content = readFileSync(join(dir, name));
    hash.update(`${name}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest("hex");
}
