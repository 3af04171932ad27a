/**
 * vibes-hooks: the deploy-time CLI (see docs/architecture.md). Dispatches to hooks/steps/<step>.ts,
 * prints exactly one JSON line on stdout and a one-line error on stderr when the step fails.
 */
import { constants as osConstants } from "node:os";
import { CONTRACTS, isStep, stepHelp, usage, windowRule, type StepName } from "./contracts";
import { parseStep } from "./lib/args";
import { StepError, UsageError, errorMessage } from "./lib/errors";
import { notifyFailure } from "./lib/app/notify";
import { progress } from "./lib/progress";
import { redact, secretsIn } from "../common/redact";
import { signalChildren } from "./lib/processes/run";
import { enforceWindow } from "./steps/window-check";

export type StepRun = (args: string[], env: NodeJS.ProcessEnv) => Promise<Record<string, unknown>>;

function loadStep(name: StepName): StepRun {
  const path = CONTRACTS[name].module;
  let mod: { run?: StepRun };
  try {
    // Lazy: a step whose module is missing or broken must not take the other steps down.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "MODULE_NOT_FOUND" && e.message.includes(path.slice(2))) {
      throw new StepError(`step ${name} is not available (hooks/${path.slice(2)}.ts is missing)`, "update vibes-hooks to a version that has it");
    }
    throw err;
  }
  if (typeof mod.run !== "function") throw new StepError(`step ${name} has no run()`, "fix hooks/" + path.slice(2) + ".ts");
  return mod.run;
}

/** Replaces stdout/stderr writes with redacting ones: the last line of defence for secrets. */
function redactOutput(secrets: string[]): void {
  if (secrets.length === 0) return;
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const text = typeof chunk === "string" ? chunk : Buffer.isBuffer(chunk) ? chunk.toString("utf8") : chunk;
      return write(typeof text === "string" ? redact(text, secrets) : text, ...rest);
    }) as typeof stream.write;
  }
}

/**
 * Ctrl-C, SIGTERM or SIGHUP: the children (pg_dump, alembic, psql...) run in process groups of
 * their own and would go on alone, so the signal is passed on to them. The step then fails the
 * usual way, as if the child had failed: migrate rolls back, every step removes what it wrote,
 * ends its sessions and its passfile. With no child running, or on a second signal, the hook
 * exits at once (its passfile is removed on exit; a re-run resumes: docs/operations.md).
 */
function passSignalsToChildren(step: string): void {
  let interrupted = false;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      const code = 128 + osConstants.signals[signal];
      if (interrupted) {
        // Not leaving them to go on alone, without the hook (and the migration lock it held).
        signalChildren("SIGKILL");
        process.stderr.write(`[${step}] ${signal} again: exiting now\n`);
        process.exit(code);
      }
      interrupted = true;
      const children = signalChildren("SIGTERM");
      if (children === 0) {
        process.stderr.write(`[${step}] ${signal}: exiting\n`);
        process.exit(code);
      }
      process.stderr.write(`[${step}] ${signal}: stopping ${children} child process(es); the step fails and cleans up (a second signal exits at once)\n`);
    });
  }
}

/**
 * The steps after the migration inside the window: when one fails in a deployment
 * (VIBES_ROLLBACK_ON_FAILURE, set by the program), the database goes back to the verified backup
 * (the kept copy swapped in, else restored) and the app is restarted on it. migrate rolls back
 * itself; the performance checks run beside the release and leave that to it.
 */
const ROLLS_BACK_ON_FAILURE = new Set(["validate", "restart", "smoke"]);

/** The step's failure, followed by the rollback and what it did (or why it could not). */
async function rolledBackAfter(step: string, err: unknown, env: NodeJS.ProcessEnv): Promise<StepError> {
  const failure = `${errorMessage(err).replace(/\.$/, "")}`;
  const log = progress(step);
  log(`FAILED: ${failure}; rolling the deployment back`);
  try {
    // Loaded only here: every step's start-up stays as small as it was.
    const { describe: describeRollback, rollBackAfterFailure } = await import("./lib/rollback");
    const back = await rollBackAfterFailure(env, log);
    const app = back.app ? `; the app was restarted on it${back.app.health ? " and is healthy" : ""}` : "";
    return new StepError(`${failure}. The ${step} step failed after the migration, so the deployment was ${describeRollback(back)}${app}`,
      "maintenance mode is still on: turn it off to serve the old version (vibes-hooks maintenance off) or keep it on; fix the cause above and deploy again",
      { details: { ...(err instanceof StepError ? err.details : {}), rollback: back } });
  } catch (rollbackErr) {
    return new StepError(`${failure}. Rolling the deployment back failed too: ${errorMessage(rollbackErr)}`,
      rollbackErr instanceof StepError ? rollbackErr.next : "keep maintenance mode on; restore the backup by hand (vibes-hooks restore --uri <backupObjectUri> --force)",
      { details: { ...(err instanceof StepError ? err.details : {}), ...(rollbackErr instanceof StepError ? rollbackErr.details : {}), rollback: null } });
  }
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  redactOutput(secretsIn(env));
  const [step, ...args] = argv;
  if (!step || step === "--help" || step === "-h" || step === "help") {
    process.stderr.write(usage());
    return step ? 0 : 2;
  }
  if (isStep(step) && (args.includes("--help") || args.includes("-h"))) {
    process.stderr.write(stepHelp(step));
    return 0;
  }
  let code = 0;
  let result: Record<string, unknown>;
  try {
    if (!isStep(step)) throw new UsageError(`unknown step "${step}"`);
    // The steps that change the database or the app refuse to run outside the window, also when a
    // failed `pulumi up` is retried without window-check (hooks/contracts.ts: WindowRule).
    const rule = windowRule(step, parseStep(step, args).positionals);
    if (rule !== "none" && env.VIBES_MAINTENANCE_WINDOW) {
      enforceWindow(env.VIBES_MAINTENANCE_WINDOW, env.VIBES_MAINTENANCE_WINDOW_OVERRIDE || undefined, new Date(), progress(step), { starting: rule === "starting" });
    }
    const out = await loadStep(step)(args, env);
    result = { ok: true, step, ...out };
  } catch (caught) {
    let err = caught;
    if (env.VIBES_ROLLBACK_ON_FAILURE && ROLLS_BACK_ON_FAILURE.has(step)) err = await rolledBackAfter(step, err, env);
    const next = err instanceof StepError ? err.next : "read the progress lines above, fix the cause and rerun the step";
    const cause = errorMessage(err).replace(/\s+/g, " ").replace(/\.$/, "");
    code = caught instanceof UsageError ? 2 : 1;
    result = { ok: false, step, error: cause, next, ...(err instanceof StepError ? err.details : {}) };
    if (!(err instanceof StepError) && env.VIBES_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    process.stderr.write(`error: ${cause}. next: ${next}\n`);
    if (code === 2) process.stderr.write(isStep(step) ? stepHelp(step) : usage());
    if (isStep(step)) await notifyFailure(step, err, env);
  }
  await new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(result)}\n`, () => resolve()));
  return code;
}

if (require.main === module) {
  passSignalsToChildren(process.argv[2] ?? "vibes-hooks");
  main(process.argv.slice(2), process.env).then(
    // Exit explicitly: a step that left a socket open must not keep the deploy waiting.
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`error: ${errorMessage(err)}. next: report this as a bug in vibes-hooks\n`);
      process.exit(1);
    },
  );
}
