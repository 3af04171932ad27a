/**
 * s3rver (a local S3) on a free port in a temp dir, with one bucket.
 *
 *   const s3 = await startS3();                 // in before()
 *   const env = { ...db.env, ...s3.env() };     // VIBES_BACKUP_TARGET=s3 + endpoint + credentials
 *   await s3.keys();                             // what the bucket holds
 *   await s3.stop();                             // in after()
 *
 * startFaultyProxy() sits between the hooks and s3rver and breaks UploadPart requests, to test
 * uploads that fail part way.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http from "node:http";
import { DeleteObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { freePort } from "./net";

// s3rver ships no types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require("s3rver");

export const S3_CREDENTIALS = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" };

export class TestS3 {
  private constructor(
    private readonly server: { close(): Promise<void> },
    readonly dir: string,
    readonly port: number,
    readonly bucket: string,
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(bucket = "vibes-backups"): Promise<TestS3> {
    const dir = mkdtempSync(join(tmpdir(), "vibes-s3-"));
    const port = await freePort();
    const server = new S3rver({ port, address: "127.0.0.1", directory: dir, silent: true, configureBuckets: [{ name: bucket }] });
    await server.run();
    return new TestS3(server, dir, port, bucket);
  }

  /** Env for hooks writing to this bucket (endpoint may be overridden, e.g. by a proxy). */
  env(endpoint = this.endpoint): NodeJS.ProcessEnv {
    return { ...S3_CREDENTIALS, VIBES_BACKUP_TARGET: "s3", VIBES_BACKUP_BUCKET: this.bucket, VIBES_S3_ENDPOINT: endpoint };
  }

  client(): S3Client {
    return new S3Client({
      region: S3_CREDENTIALS.AWS_REGION,
      endpoint: this.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: S3_CREDENTIALS.AWS_ACCESS_KEY_ID, secretAccessKey: S3_CREDENTIALS.AWS_SECRET_ACCESS_KEY },
    });
  }

  /** Every object key in the bucket. */
  async keys(): Promise<string[]> {
    const client = this.client();
    try {
      const res = await client.send(new ListObjectsV2Command({ Bucket: this.bucket }));
      return (res.Contents ?? []).map((o) => o.Key!).sort();
    } finally {
      client.destroy();
    }
  }

  /** Deletes every object in the bucket. */
  async empty(): Promise<void> {
    const client = this.client();
    try {
      for (const Key of await this.keys()) await client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } finally {
      client.destroy();
    }
  }

  async stop(): Promise<void> {
    await this.server.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface FaultyProxy {
  endpoint: string;
  /** UploadPart requests seen (including the failed ones). */
  partRequests: number;
  close(): Promise<void>;
}

/**
 * An HTTP proxy to `target` that cuts the connection of UploadPart requests whose number
 * (counting from 1) satisfies `fail`; everything else passes through.
 */
export async function startFaultyProxy(target: string, fail: (partRequest: number) => boolean): Promise<FaultyProxy> {
  const to = new URL(target);
  const state = { partRequests: 0 };
  const server = http.createServer((req, res) => {
    const isPart = req.method === "PUT" && /[?&]partNumber=/.test(req.url ?? "");
    if (isPart && fail(++state.partRequests)) {
      req.socket.destroy();
      return;
    }
    const up = http.request(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on("error", () => req.socket.destroy());
    req.pipe(up);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get partRequests() {
      return state.partRequests;
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export function startS3(bucket?: string): Promise<TestS3> {
  return TestS3.start(bucket);
}
