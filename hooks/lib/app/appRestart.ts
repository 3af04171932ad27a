// The app's restart command (VIBES_RESTART_COMMAND, here or over ssh on VIBES_RESTART_HOST) and
// its health gate: the restart step runs them for a release, the rollback after a failure past
// the migration to bring the app back on the database swapped in.
import { StepError } from "../errors";
import { HttpUnreachable, request } from "./http";
import { isSecretName } from "../../../common/redact";
import { runChild, runShell, stderrSummary } from "../processes/run";

const HOST = /^([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+$/;

/** Runs the configured restart command, its output as progress; a StepError when it fails. */
export async function runRestartCommand(env: NodeJS.ProcessEnv, timeoutSeconds: number, log: (m: string) => void): Promise<{ where: string; elapsedMs: number }> {
  const command = env.VIBES_RESTART_COMMAND;
  if (!command) throw new StepError("VIBES_RESTART_COMMAND is not set", "set it to the command that restarts the app (config restartCommand)");
  const host = env.VIBES_RESTART_HOST || undefined;
  if (host !== undefined && !HOST.test(host)) throw new StepError(`VIBES_RESTART_HOST "${host}" is not host or user@host`, "fix config restartSshHost");
  const started = Date.now();
  // The command's own output is progress: stderr, never the JSON channel.
  const opts = { timeoutMs: timeoutSeconds * 1000, stdout: process.stderr, label: "restart" };
  let res;
  if (host) {
    log(`on ${host}: ${command}`);
    // The app host keeps its own settings: no secret of ours travels to it.
    const env0 = Object.fromEntries(Object.entries(env).filter(([name]) => !isSecretName(name)));
    res = await runChild("ssh", ["-o", "BatchMode=yes", "--", host, command], { ...opts, env: env0 });
  } else {
    log(command);
    // Local scripts start the app with the deployment's settings (app/scripts/start.sh moves
    // the password into a private passfile).
    res = await runShell(command, { ...opts, env });
  }
  for (const line of res.stderr.split("\n").filter((l) => l.trim())) log(`  ${line}`);
  if (res.timedOut || res.code !== 0) {
    throw new StepError(`the restart ${res.timedOut ? `timed out after ${timeoutSeconds}s` : `failed (exit ${res.code})`}: ${stderrSummary(res.stderr) || "no error output"}`,
      "the database is migrated but the app may be down: fix the restart (see its output above) and run pulumi up again; maintenance mode stays on");
  }
  return { where: host ?? "local", elapsedMs: Date.now() - started };
}

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

