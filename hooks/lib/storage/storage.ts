import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { PassThrough, Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { S3Client } from "@aws-sdk/client-s3";
import { StepError } from "../errors";

/**
 * Where dumps and manifests live: a local folder (file:///abs/path) or an S3 bucket
 * (s3://bucket/key). Writes are all-or-nothing: a failed put leaves no object behind.
 */
export interface BackupStore {
  readonly target: "local" | "s3";
  /** The URI an object of this name gets. */
  uriFor(name: string): string;
  /** Streams body to the object; on any error nothing is left under the name. */
  put(name: string, body: Readable, contentType?: string): Promise<{ uri: string; bytes: number }>;
  /** Reads any file:// or s3:// URI (not only this store's). Errors arrive on the stream. */
  get(uri: string): Readable;
  putJson(name: string, value: unknown): Promise<string>;
  getJson(uri: string): Promise<unknown>;
  /** Size in bytes, or null when the object does not exist. */
  size(uri: string): Promise<number | null>;
  remove(uri: string): Promise<void>;
}

const DEFAULT_PREFIX = "pre-uuid-migration/";
const MIB = 1024 * 1024;

export function openBackupStore(env: NodeJS.ProcessEnv = process.env): BackupStore {
  const target = env.VIBES_BACKUP_TARGET;
  if (target === "local") {
    const dir = env.VIBES_BACKUP_DIR;
    if (!dir) throw new StepError("VIBES_BACKUP_DIR is not set", "set VIBES_BACKUP_DIR to the folder for dumps and manifests");
    return new Store("local", env, { dir: resolve(dir) });
  }
  if (target === "s3") {
    const bucket = env.VIBES_BACKUP_BUCKET;
    if (!bucket) throw new StepError("VIBES_BACKUP_BUCKET is not set", "set VIBES_BACKUP_BUCKET to the backup bucket's name");
    let prefix = env.VIBES_BACKUP_PREFIX ?? DEFAULT_PREFIX;
    if (prefix && !prefix.endsWith("/")) prefix += "/";
    return new Store("s3", env, { bucket, prefix: prefix.replace(/^\//, "") });
  }
  throw new StepError(`VIBES_BACKUP_TARGET is ${target ? `"${target}"` : "not set"}`,
    "set VIBES_BACKUP_TARGET to local (with VIBES_BACKUP_DIR) or s3 (with VIBES_BACKUP_BUCKET)");
}

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m) throw new StepError(`not an s3://bucket/key URI: ${uri}`, "pass the uri printed by the backup step");
  return { bucket: m[1], key: m[2] };
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, "r");
  await fh.sync().finally(() => fh.close());
}

/**
 * fsync of a folder, making the entries made in it durable. Like PostgreSQL's fsync_fname, it
 * passes over file systems that cannot sync a folder (EINVAL, EBADF) and a folder it may write
 * but not read (EACCES).
 */
async function fsyncFolder(path: string): Promise<void> {
  try {
    await fsyncPath(path);
  } catch (err) {
    if (!["EINVAL", "EBADF", "EACCES"].includes((err as NodeJS.ErrnoException).code ?? "")) throw err;
  }
}

function localPath(uri: string): string {
  if (uri.startsWith("file://")) return fileURLToPath(uri);
  if (isAbsolute(uri)) return uri;
  throw new StepError(`unsupported backup URI: ${uri}`, "pass a file:///abs/path or s3://bucket/key URI printed by the backup step");
}

// The AWS SDK is loaded on the first s3:// access only: requiring it costs every step's start-up
// (local backups, reads of file:// URIs) time and memory for code it never runs.
const s3Sdk = () => import("@aws-sdk/client-s3");

let s3Client: S3Client | undefined;

/** One client per process. VIBES_S3_ENDPOINT (s3rver, MinIO) implies path-style addressing. */
export async function s3ClientFromEnv(env: NodeJS.ProcessEnv): Promise<S3Client> {
  if (s3Client) return s3Client;
  const endpoint = env.VIBES_S3_ENDPOINT || undefined;
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || (endpoint ? "us-east-1" : undefined);
  if (!region) throw new StepError("AWS_REGION is not set", "set AWS_REGION to the backup bucket's region");
  const { S3Client } = await s3Sdk();
  s3Client ??= new S3Client({ region, endpoint, forcePathStyle: Boolean(endpoint), maxAttempts: 4 });
  return s3Client;
}

function s3Error(what: string, err: unknown): StepError {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode ? ` (HTTP ${e.$metadata.httpStatusCode})` : "";
  return new StepError(`${what} failed: ${e.name ?? "Error"}: ${e.message ?? String(err)}${status}`,
    "check the bucket, AWS credentials/region and VIBES_S3_ENDPOINT, then rerun", { cause: err });
}

class Store implements BackupStore {
  constructor(
    readonly target: "local" | "s3",
    private readonly env: NodeJS.ProcessEnv,
    private readonly where: { dir?: string; bucket?: string; prefix?: string },
  ) {}

  uriFor(name: string): string {
    if (this.target === "local") return pathToFileURL(join(this.where.dir!, name)).href;
    return `s3://${this.where.bucket}/${this.where.prefix}${name}`;
  }

  async put(name: string, body: Readable, contentType = "application/octet-stream"): Promise<{ uri: string; bytes: number }> {
    const uri = this.uriFor(name);
    let bytes = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        cb(null, chunk);
      },
    });
    body.on("error", (err) => counted.destroy(err));
    // The writer below is attached only after an await: an error before then (pg_dump refusing
    // the server at once) must reach it, not crash the process as an unhandled 'error' event.
    counted.on("error", () => undefined);
    body.pipe(counted);
    if (this.target === "local") {
      const path = localPath(uri);
      // Written under a temporary name and renamed when complete, so a failure never leaves a
      // file under the real name. The rename (and a folder made here) is durable only once its
      // folder is synced: a crash must not lose a backup that was reported as made.
      const tmp = `${path}.partial-${randomBytes(4).toString("hex")}`;
      let renamed = false;
      try {
        const made = await mkdir(dirname(path), { recursive: true });
        if (made !== undefined) await fsyncFolder(dirname(made));
        await pipeline(counted, createWriteStream(tmp, { mode: 0o600 }));
        await fsyncPath(tmp);
        await rename(tmp, path);
        renamed = true;
        await fsyncFolder(dirname(path));
      } catch (err) {
        await rm(renamed ? path : tmp, { force: true }).catch(() => undefined);
        if (err instanceof StepError) throw err;
        throw new StepError(`writing ${path} failed: ${(err as Error).message}`,
          "check VIBES_BACKUP_DIR (exists, writable, free space), then rerun", { cause: err });
      }
      return { uri, bytes };
    }
    const { bucket, key } = parseS3Uri(uri);
    const partMiB = Number(this.env.VIBES_S3_PART_SIZE_MIB || 16);
    if (!Number.isFinite(partMiB) || partMiB < 5) {
      throw new StepError("VIBES_S3_PART_SIZE_MIB must be a number >= 5", "unset it or set it to 5 or more");
    }
    // lib-storage buffers each part, so the SDK can retry a failed part; on failure it aborts
    // the multipart upload (leavePartsOnError false), leaving no object.
    try {
      const [client, { Upload }] = await Promise.all([s3ClientFromEnv(this.env), import("@aws-sdk/lib-storage")]);
      const upload = new Upload({
        client,
        params: { Bucket: bucket, Key: key, Body: counted, ContentType: contentType },
        partSize: partMiB * MIB,
        queueSize: 4,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (err) {
      // A single-part PutObject may have landed before a later failure was noticed.
      await this.remove(uri).catch(() => undefined);
      if (err instanceof StepError) throw err;
      throw s3Error(`upload to ${uri}`, err);
    }
    return { uri, bytes };
  }

  get(uri: string): Readable {
    if (!uri.startsWith("s3://")) return createReadStream(localPath(uri));
    const out = new PassThrough();
    const { bucket, key } = parseS3Uri(uri);
    Promise.all([s3ClientFromEnv(this.env), s3Sdk()])
      .then(([client, { GetObjectCommand }]) => client.send(new GetObjectCommand({ Bucket: bucket, Key: key })))
      .then((res) => {
        const body = res.Body as Readable;
        body.on("error", (err) => out.destroy(s3Error(`download of ${uri}`, err)));
        body.pipe(out);
      })
      .catch((err) => out.destroy(err instanceof StepError ? err : s3Error(`download of ${uri}`, err)));
    return out;
  }

  async putJson(name: string, value: unknown): Promise<string> {
    const text = `${JSON.stringify(value, null, 2)}\n`;
    if (this.target === "local") {
      const src = new PassThrough();
      src.end(text);
      return (await this.put(name, src, "application/json")).uri;
    }
    const uri = this.uriFor(name);
    const { bucket, key } = parseS3Uri(uri);
    const [client, { PutObjectCommand }] = await Promise.all([s3ClientFromEnv(this.env), s3Sdk()]);
    try {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: text, ContentType: "application/json" }));
    } catch (err) {
      throw s3Error(`upload to ${uri}`, err);
    }
    return uri;
  }

  async getJson(uri: string): Promise<unknown> {
    let text: string;
    if (uri.startsWith("s3://")) {
      const chunks: Buffer[] = [];
      for await (const c of this.get(uri)) chunks.push(c as Buffer);
      text = Buffer.concat(chunks).toString("utf8");
    } else {
      try {
        text = await readFile(localPath(uri), "utf8");
      } catch (err) {
        throw new StepError(`cannot read ${uri}: ${(err as Error).message}`, "check the URI (as printed by the backup step)", { cause: err });
      }
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new StepError(`${uri} is not valid JSON`, "the file is damaged: use another backup");
    }
  }

  async size(uri: string): Promise<number | null> {
    if (!uri.startsWith("s3://")) {
      try {
        return (await stat(localPath(uri))).size;
      } catch {
        return null;
      }
    }
    const { bucket, key } = parseS3Uri(uri);
    const [client, { HeadObjectCommand }] = await Promise.all([s3ClientFromEnv(this.env), s3Sdk()]);
    try {
      const res = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return res.ContentLength ?? null;
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404) return null;
      throw s3Error(`HEAD ${uri}`, err);
    }
  }

  async remove(uri: string): Promise<void> {
    if (!uri.startsWith("s3://")) {
      await rm(localPath(uri), { force: true });
      return;
    }
    const { bucket, key } = parseS3Uri(uri);
    const [client, { DeleteObjectCommand }] = await Promise.all([s3ClientFromEnv(this.env), s3Sdk()]);
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      throw s3Error(`delete of ${uri}`, err);
    }
  }
}

/**
 * A store for reading URIs only (verify-restore, restore, validate): needs no target settings,
 * since the URI says where the object is.
 */
export function openReader(env: NodeJS.ProcessEnv = process.env): BackupStore {
  return new Store("local", env, { dir: "/" });
}
