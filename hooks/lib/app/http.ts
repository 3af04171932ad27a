// The app's HTTP API as the steps use it: every call has a timeout, only idempotent reads are
// retried, and the admin token travels only in the X-Admin-Token header (never in URLs, logs
// or error messages).
import * as http from "node:http";
import { StepError } from "../errors";

export interface HttpResponse {
  status: number;
  /** Parsed JSON body, or null when the body is empty or not JSON. */
  body: unknown;
}

export interface RequestOptions {
  method?: "GET" | "POST" | "DELETE";
  json?: unknown;
  bearer?: string;
  /** Sends X-Admin-Token: admin endpoints, and the app's maintenance bypass for writes. */
  adminToken?: string;
  timeoutMs?: number;
  /** Extra attempts after a network error or a 5xx; ignored for non-GET requests. */
  retries?: number;
  retryDelayMs?: number;
}

/** A request that got no HTTP answer (refused, timed out, reset). */
export class HttpUnreachable extends Error {
  /** Why, without the URL (a webhook's URL is itself a secret). */
  constructor(message: string, readonly reason: string) {
    super(message);
  }
}

/** VIBES_APP_URL, checked, without a trailing slash. */
export function appUrlFromEnv(env: NodeJS.ProcessEnv): string {
  const raw = env.VIBES_APP_URL?.trim();
  if (!raw) {
    throw new StepError("VIBES_APP_URL is not set", "set VIBES_APP_URL to the app's base URL, e.g. http://127.0.0.1:8000");
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new StepError("VIBES_APP_URL is not a URL", "set VIBES_APP_URL to the app's base URL, e.g. http://127.0.0.1:8000");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new StepError(`VIBES_APP_URL must be http or https, not ${url.protocol}`, "set VIBES_APP_URL to the app's base URL, e.g. https://vibes.example.com");
  }
  if (url.username || url.password) {
    throw new StepError("VIBES_APP_URL must not carry credentials", "remove user:password@ from VIBES_APP_URL; the admin token goes in VIBES_ADMIN_TOKEN");
  }
  return url.toString().replace(/\/+$/, "");
}

export function adminTokenFromEnv(env: NodeJS.ProcessEnv): string {
  const token = env.VIBES_ADMIN_TOKEN;
  if (!token) {
    throw new StepError("VIBES_ADMIN_TOKEN is not set", "set VIBES_ADMIN_TOKEN to the token the app expects in X-Admin-Token");
  }
  return token;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class HttpTimeout extends Error {}

/** One exchange with node:http(s): fetch would load undici, ~35 ms of every step's start-up.
 * Redirects are not followed (one could carry the admin token header to another origin). */
async function exchange(url: URL, method: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<{ status: number; text: string }> {
  // node:https (with tls) costs ~9 ms to load: only for an https URL.
  const transport = url.protocol === "https:" ? await import("node:https") : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(url, { method, headers: body === undefined ? headers : { ...headers, "content-length": String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    // The whole exchange, not each socket read, is bounded.
    const timer = setTimeout(() => req.destroy(new HttpTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on("close", () => clearTimeout(timer));
    req.on("error", reject);
    req.end(body);
  });
}

function describeFailure(error: unknown): string {
  if (error instanceof HttpTimeout) return error.message;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code ?? (error instanceof Error ? error.message : String(error));
}

export async function request(baseUrl: string, path: string, options: RequestOptions = {}): Promise<HttpResponse> {
  const method = options.method ?? "GET";
  const timeoutMs = options.timeoutMs ?? 10_000;
  const attempts = method === "GET" ? 1 + (options.retries ?? 0) : 1;
  const headers: Record<string, string> = { accept: "application/json" };
  if (options.json !== undefined) headers["content-type"] = "application/json";
  if (options.bearer) headers.authorization = `Bearer ${options.bearer}`;
  if (options.adminToken) headers["x-admin-token"] = options.adminToken;
  const url = baseUrl + path;
  const body = options.json === undefined ? undefined : JSON.stringify(options.json);

  let lastFailure = "";
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) await sleep(options.retryDelayMs ?? 500);
    let response: { status: number; text: string };
    try {
      response = await exchange(new URL(url), method, headers, body, timeoutMs);
    } catch (error) {
      lastFailure = describeFailure(error);
      continue;
    }
    let parsed: unknown = null;
    try {
      parsed = response.text ? JSON.parse(response.text) : null;
    } catch {
      parsed = null;
    }
    if (response.status >= 500 && attempt < attempts) {
      lastFailure = `HTTP ${response.status}`;
      continue;
    }
    return { status: response.status, body: parsed };
  }
  throw new HttpUnreachable(`${method} ${url}: ${lastFailure}`, lastFailure);
}
