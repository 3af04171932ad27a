// The fingerprint of the alembic versions folder that a deployment is planned with. The Pulumi
// program computes it at preview time and `migrate --files-sha256` refuses to run when the folder
// changed since, so what runs is what was reviewed. Alembic itself stores no checksum.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** SHA-256 (hex) over the `*.py` files directly in `versionsDir`, in byte order of their names:
 * for each file `name NUL byteLength NUL content`, so renames and moved bytes change the hash. */
export function migrationFilesSha256(versionsDir: string): string {
  const names = readdirSync(versionsDir, { withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".py"))
    .map((entry) => entry.name)
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const hash = createHash("sha256");
  for (const name of names) {
    const content = readFileSync(join(versionsDir, name));
    hash.update(`${name}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest("hex");
}
