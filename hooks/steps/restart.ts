// `restart [--timeout-seconds N] [--health-timeout-seconds N [--health-interval-seconds N]]`: the
// guide's "Restart Application Services". Runs the configured restart command
// (VIBES_RESTART_COMMAND) here, or on VIBES_RESTART_HOST over ssh; with --health-timeout-seconds
// it then waits for the app's /health (VIBES_APP_URL) as `health-gate` does, in the same process:
// the guide's "Verify application startup", one step start fewer inside the maintenance window.
// As a hook step it gets what every step gets: the maintenance-window guard and a failure notification.
import { runRestartCommand, waitHealthy } from "../lib/app/appRestart";
import { parseStep, positiveSeconds } from "../lib/args";
import { StepError, UsageError } from "../lib/errors";
import { appUrlFromEnv } from "../lib/app/http";
import { progress } from "../lib/progress";

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseStep("restart", args);
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
  const log = progress("restart");
  const restarted = await runRestartCommand(env, timeoutSeconds, log);
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
