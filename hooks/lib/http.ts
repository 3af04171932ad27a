// The app's HTTP API as the steps use it: every call has a timeout, only idempotent reads are
// retried, and the admin token travels only in the X-Admin-Token header (never in URLs, logs
// or error messages).
import { StepError } from "./errors";

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
export class HttpUnreachable extends Error {}

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

function describeFailure(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return `no answer within ${timeoutMs} ms`;
  }
  const cause = error instanceof Error ? (error.cause as { code?: string; message?: string } | undefined) : undefined;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
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

  let lastFailure = "";
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) await sleep(options.retryDelayMs ?? 500);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: options.json === undefined ? undefined : JSON.stringify(options.json),
        signal: AbortSignal.timeout(timeoutMs),
        // A redirect could carry the admin token header to another origin: report it instead.
        redirect: "manual",
      });
    } catch (error) {
      lastFailure = describeFailure(error, timeoutMs);
      continue;
    }
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (response.status >= 500 && attempt < attempts) {
      lastFailure = `HTTP ${response.status}`;
      continue;
    }
    return { status: response.status, body };
  }
  throw new HttpUnreachable(`${method} ${url}: ${lastFailure}`);
}
