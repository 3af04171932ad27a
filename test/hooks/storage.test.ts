import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { StepError } from "../../hooks/lib/errors";
import { openBackupStore } from "../../hooks/lib/storage/storage";

// The local backup store (the dev stack's, and any VIBES_BACKUP_TARGET=local): what a put leaves
// behind when it succeeds and when it fails. The S3 store is tested against s3rver in backup.test.ts.
describe("hooks lib: the local backup store", () => {
  let root: string;
  beforeEach(() => (root = mkdtempSync(join(tmpdir(), "vibes-store-"))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("creates a missing backup folder and stores the bytes under the name only, readable by its owner alone", async () => {
    const dir = join(root, "backups", "dev");
    const store = openBackupStore({ VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: dir });
    const { uri, bytes } = await store.put("a.dump", Readable.from([Buffer.from("PGDMP"), Buffer.from("-rest")]));
    assert.equal(bytes, 10);
    assert.equal(uri, store.uriFor("a.dump"));
    assert.deepEqual(readdirSync(dir), ["a.dump"], "no temporary file is left");
    assert.equal(readFileSync(join(dir, "a.dump"), "utf8"), "PGDMP-rest");
    assert.equal(statSync(join(dir, "a.dump")).mode & 0o777, 0o600);
  });

  it("a stream failing part way leaves nothing under the name and no temporary file", async () => {
    const store = openBackupStore({ VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: root });
    const failing = new Readable({ read() {} });
    failing.push(Buffer.alloc(64 * 1024, 1));
    setTimeout(() => failing.destroy(new Error("pg_dump died")), 20);
    await assert.rejects(store.put("b.dump", failing), /pg_dump died/);
    assert.deepEqual(readdirSync(root), []);
  });

  it("a backup folder that cannot be made fails with the setting to check, leaving nothing", async () => {
    writeFileSync(join(root, "file"), "not a folder");
    const store = openBackupStore({ VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: join(root, "file", "backups") });
    await assert.rejects(store.put("c.dump", Readable.from([Buffer.from("x")])), (err: unknown) => {
      assert.ok(err instanceof StepError, String(err));
      assert.match(err.message, /writing .*c\.dump failed: ENOTDIR/);
      assert.match(err.next, /VIBES_BACKUP_DIR/);
      return true;
    });
    assert.deepEqual(readdirSync(root), ["file"]);
  });
});
