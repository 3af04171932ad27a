// `vibes-hooks window-check --window JSON [--override JSON]`: the first deploy-time stage on
// stacks with a maintenance window. It runs when `pulumi up` executes (not at preview), so a
// plan made inside the window cannot be applied after it closes. The steps that change things
// check the window again themselves (hooks/cli.ts, VIBES_MAINTENANCE_WINDOW): a failed `up`
// retried later re-runs them, but not this stage.
import { parseStep, requireFlag } from "../lib/args";
import { StepError, UsageError } from "../lib/errors";
import { progress } from "../lib/progress";
import { checkWindow, parseWindow } from "../../safety/maintenanceWindow";
import { describeOverride, parseOverride } from "../../safety/override";

function parseJsonFlag(flag: string, raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new UsageError(`window-check: ${flag} is not JSON`, `pass ${flag} '{"days":["sat"],"start":"22:00","end":"02:00"}'`);
  }
}

export async function run(args: string[], _env: NodeJS.ProcessEnv = process.env, now: Date = new Date()): Promise<Record<string, unknown>> {
  const { values } = parseStep("window-check", args);
  const rawWindow = requireFlag("window-check", values.window, "--window", `'{"days":["sat","sun"],"start":"22:00","end":"02:00"}'`);
  return enforceWindow(rawWindow, values.override, now, progress("window-check"), { starting: true });
}

/**
 * Fails (nothing changed) outside the window unless an audited override is given; `starting`
 * (what begins a deployment: this stage and maintenance on) also fails inside it when less than
 * its minRemaining is left.
 */
export function enforceWindow(rawWindow: string, rawOverride: string | undefined, now: Date, log: (msg: string) => void,
  opts: { starting: boolean }): Record<string, unknown> {
  let window;
  let override;
  try {
    window = parseWindow(parseJsonFlag("--window", rawWindow), "maintenanceWindow");
    override = rawOverride === undefined ? undefined : parseOverride(parseJsonFlag("--override", rawOverride), "maintenanceWindowOverride");
  } catch (err) {
    if (err instanceof StepError) throw err;
    throw new UsageError(`window-check: ${(err as Error).message}`);
  }
  const decision = checkWindow(window, now);
  const tooLate = opts.starting ? decision.startRefusal : undefined;
  const refused = !decision.inside || tooLate !== undefined;
  const message = tooLate ?? decision.message;
  if (refused && !override) {
    throw new StepError(
      `${message}; nothing was changed`,
      `run pulumi up again after ${decision.nextOpening}, or set config maintenanceWindowOverride {reason, approvedBy, ticket} for an emergency`,
      { details: { inside: decision.inside, nextOpening: decision.nextOpening } },
    );
  }
  if (refused) log(`OVERRIDDEN (${describeOverride(override!)}): ${message}`);
  else log(message);
  return { inside: decision.inside, overridden: refused, nextOpening: decision.nextOpening ?? null, closesAt: decision.closesAt ?? null, message };
}
