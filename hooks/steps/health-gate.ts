// `health-gate`: after a release, wait until /health answers 200 {"status":"ok"} or a deadline.
// The deployment runs it inside the restart step (`restart --health-timeout-seconds N`: one process
// fewer in the window); on its own it is for checking an app by hand.
import { parseFlags, positiveSeconds } from "../lib/args";
import { StepError } from "../lib/errors";
import { appUrlFromEnv, HttpUnreachable, request } from "../lib/http";
import { progress } from "../lib/progress";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface Health {
  healthy: true;
  attempts: number;
  elapsedMs: number;
}

/** Polls `base`/health every `intervalMs` until it is healthy; a StepError after `timeoutMs`. */
export async function waitHealthy(base: string, timeoutMs: number, intervalMs: number, log: (m: string) => void): Promise<Health> {
  const started = Date.now();
  let attempts = 0;
  let last = "";
  for (;;) {
    attempts++;
    const remaining = timeoutMs - (Date.now() - started);
    try {
      const res = await request(base, "/health", { timeoutMs: Math.max(100, Math.min(10_000, remaining)) });
      const status = (res.body as { status?: unknown } | null)?.status;
      if (res.status === 200 && status === "ok") {
        const elapsedMs = Date.now() - started;
        log(`healthy after ${attempts} attempt(s)`);
        return { healthy: true, attempts, elapsedMs };
      }
      last = `HTTP ${res.status}${res.body ? ` ${JSON.stringify(res.body)}` : ""}`;
    } catch (err) {
      if (!(err instanceof HttpUnreachable)) throw err;
      last = err.message;
    }
    log(`attempt ${attempts}: not healthy yet (${last})`);
    const left = timeoutMs - (Date.now() - started);
    if (left <= 0) break;
    await sleep(Math.min(intervalMs, left));
  }
  throw new StepError(`the app was not healthy within ${timeoutMs / 1000}s (${attempts} attempts); last answer: ${last}`,
    "read the app's log (VIBES_RUN_DIR, default app/.run), fix the cause, restart it and re-run health-gate",
    { details: { healthy: false, attempts, elapsedMs: Date.now() - started } });
}

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseFlags("health-gate", args, {
    "timeout-seconds": { type: "string" },
    "interval-seconds": { type: "string" },
  });
  const timeoutMs = positiveSeconds("health-gate", values["timeout-seconds"], "--timeout-seconds", 120) * 1000;
  const intervalMs = positiveSeconds("health-gate", values["interval-seconds"], "--interval-seconds", 2) * 1000;
  return { ...(await waitHealthy(appUrlFromEnv(env), timeoutMs, intervalMs, progress("health-gate"))) };
}
