// `restart [--timeout-seconds N] [--health-timeout-seconds N [--health-interval-seconds N]]`: the
// guide's "Restart Application Services". Runs the configured restart command
// (VIBES_RESTART_COMMAND) here, or on VIBES_RESTART_HOST over ssh; with --health-timeout-seconds
// it then waits for the app's /health (VIBES_APP_URL) as `health-gate` does, in the same process:
// the guide's "Verify application startup", one step start fewer inside the maintenance window.
// As a hook step it gets what every step gets: the maintenance-window guard and a failure notification.
import { parseFlags, positiveSeconds } from "../lib/args";
import { StepError, UsageError } from "../lib/errors";
import { appUrlFromEnv } from "../lib/http";
import { progress } from "../lib/progress";
import { isSecretName } from "../lib/redact";
import { runChild, runShell, stderrSummary } from "../lib/run";
import { waitHealthy } from "./health-gate";

const HOST = /^([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+$/;

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseFlags("restart", args, {
    "timeout-seconds": { type: "string" },
    "health-timeout-seconds": { type: "string" },
    "health-interval-seconds": { type: "string" },
  });
  const timeoutSeconds = positiveSeconds("restart", values["timeout-seconds"], "--timeout-seconds", 300);
  if (values["health-interval-seconds"] !== undefined && values["health-timeout-seconds"] === undefined) {
    throw new UsageError("restart: --health-interval-seconds needs --health-timeout-seconds", "pass --health-timeout-seconds 120 to wait for /health after the restart");
  }
  // Checked before the restart: a gate that cannot run must not leave the app restarted unverified.
  const gate = values["health-timeout-seconds"] === undefined ? undefined : {
    base: appUrlFromEnv(env),
    timeoutMs: positiveSeconds("restart", values["health-timeout-seconds"], "--health-timeout-seconds", 120) * 1000,
    intervalMs: positiveSeconds("restart", values["health-interval-seconds"], "--health-interval-seconds", 2) * 1000,
  };
  const command = env.VIBES_RESTART_COMMAND;
  if (!command) throw new StepError("VIBES_RESTART_COMMAND is not set", "set it to the command that restarts the app (config restartCommand)");
  const host = env.VIBES_RESTART_HOST || undefined;
  if (host !== undefined && !HOST.test(host)) throw new StepError(`VIBES_RESTART_HOST "${host}" is not host or user@host`, "fix config restartSshHost");

  const log = progress("restart");
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
  const restarted = { where: host ?? "local", elapsedMs: Date.now() - started };
  if (!gate) return restarted;
  try {
    return { ...restarted, health: await waitHealthy(gate.base, gate.timeoutMs, gate.intervalMs, progress("health-gate")) };
  } catch (err) {
    if (!(err instanceof StepError)) throw err;
    throw new StepError(err.message,
      "the database is migrated and the app restarted but not healthy: read the app's log (VIBES_RUN_DIR, default app/.run), fix the cause and run pulumi up again; maintenance mode stays on",
      { details: { ...restarted, health: err.details } });
  }
}
