// `health-gate`: after a release, wait until /health answers 200 {"status":"ok"} or a deadline.
// The deployment runs it inside the restart step (`restart --health-timeout-seconds N`: one process
// fewer in the window); on its own it is for checking an app by hand.
import { parseStep, positiveSeconds } from "../lib/args";
import { waitHealthy } from "../lib/app/appRestart";
import { appUrlFromEnv } from "../lib/app/http";
import { progress } from "../lib/progress";

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseStep("health-gate", args);
  const timeoutMs = positiveSeconds("health-gate", values["timeout-seconds"], "--timeout-seconds", 120) * 1000;
  const intervalMs = positiveSeconds("health-gate", values["interval-seconds"], "--interval-seconds", 2) * 1000;
  return { ...(await waitHealthy(appUrlFromEnv(env), timeoutMs, intervalMs, progress("health-gate"))) };
}
