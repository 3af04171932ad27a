import { spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { StepError } from "../errors";

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the child (SIGTERM, then SIGKILL after 5 s) when it runs longer. */
  timeoutMs?: number;
  /**
   * A child started ahead, waiting to be told to go: the timeout, and the signals the hook passes
   * on (signalChildren), apply only once this resolves. Before, a signal ends the hook at once, and
   * the waiting child ends by itself when its stdin closes with the hook.
   */
  goes?: Promise<void>;
  stdin?: string | Readable;
  /** Where the child's stdout goes; when omitted it is captured and returned. */
  stdout?: Writable;
  /** Name used in error messages (default: the file). */
  label?: string;
  /** Kills the child (SIGKILL) when aborted, e.g. because the other end of its pipe failed. */
  signal?: AbortSignal;
}

export interface RunResult {
  code: number;
  stdout: string;
  /** The last STDERR_TAIL bytes of stderr. */
  stderr: string;
  timedOut: boolean;
}

const STDERR_TAIL = 16 * 1024;

/** The children running now, by process group: each runs in a group of its own, out of reach of
 * a Ctrl-C meant for the hook, so the hook passes such signals on (hooks/cli.ts). */
const runningGroups = new Set<number>();

/** Signals the process group led by `pid`; false when the group is gone (or was never made). */
function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Sends `signal` to every running child's process group; returns how many there were. */
export function signalChildren(signal: NodeJS.Signals): number {
  for (const pid of runningGroups) signalGroup(pid, signal);
  return runningGroups.size;
}

/**
 * Runs a program without a shell. Resolves with its exit code (128+signal when killed); rejects
 * only when it cannot start or when the stdout destination fails (the child is then killed).
 */
export function runChild(file: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const label = opts.label ?? file;
  return new Promise((resolve, reject) => {
    // Its own process group, so that a timeout or an abort stops what a shell started too
    // (a surviving grandchild would hold the pipes open and the step would hang).
    const child = spawn(file, args, { env: opts.env, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"], detached: true });
    const kill = (signal: NodeJS.Signals) => {
      if (child.pid === undefined || !signalGroup(child.pid, signal)) child.kill(signal);
    };
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      kill("SIGKILL");
      reject(err);
    };
    child.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") {
        fail(new StepError(`${label}: program not found (${file})`, `install it or put it on PATH`, { cause: err }));
      } else {
        fail(new StepError(`${label}: cannot run ${file}: ${err.message}`, "check the program and its permissions", { cause: err }));
      }
    });
    if (opts.stdout) {
      opts.stdout.on("error", fail);
      child.stdout.pipe(opts.stdout);
    } else {
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (d: string) => (stdout += d));
    }
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => {
      stderr = (stderr + d).slice(-STDERR_TAIL);
    });
    // EPIPE when the child exits without reading its input: the exit code tells the story.
    child.stdin.on("error", () => undefined);
    if (typeof opts.stdin === "string") {
      child.stdin.end(opts.stdin);
    } else if (opts.stdin) {
      opts.stdin.on("error", fail);
      opts.stdin.pipe(child.stdin);
    } else {
      child.stdin.end();
    }
    const abort = () => kill("SIGKILL");
    opts.signal?.addEventListener("abort", abort, { once: true });
    let killTimer: NodeJS.Timeout | undefined;
    let timer: NodeJS.Timeout | undefined;
    // Exited or closed (a child that never started closes without exiting): nothing to time or signal.
    let ended = false;
    const going = () => {
      if (ended) return;
      if (child.pid !== undefined) runningGroups.add(child.pid);
      if (!opts.timeoutMs) return; // 0 or none: no timeout
      timer = setTimeout(() => {
        timedOut = true;
        kill("SIGTERM");
        killTimer = setTimeout(() => kill("SIGKILL"), 5000);
      }, opts.timeoutMs);
    };
    if (opts.goes) void opts.goes.then(going);
    else going();
    // At exit, not close (which waits for the pipes): an exited child is not "running" any more.
    child.on("exit", () => {
      ended = true;
      if (child.pid !== undefined) runningGroups.delete(child.pid);
    });
    child.on("close", (code, signal) => {
      ended = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      opts.signal?.removeEventListener("abort", abort);
      if (failed) return;
      const sig = signal ? 128 + (signalNumbers[signal] ?? 0) : 0;
      resolve({ code: code ?? sig, stdout, stderr, timedOut });
    });
  });
}

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGPIPE: 13, SIGTERM: 15 };

/** Runs a command line through /bin/sh -c (for operator-configured commands such as --up). */
export function runShell(command: string, opts: RunOptions): Promise<RunResult> {
  return runChild("/bin/sh", ["-c", command], { label: opts.label ?? command.split(/\s+/)[0], ...opts });
}

/** The last non-empty lines of a child's stderr, for one-line error messages. */
export function stderrSummary(stderr: string, lines = 3): string {
  return stderr.split("\n").map((l) => l.trim()).filter(Boolean).slice(-lines).join(" | ");
}

/** Throws a StepError unless the child exited 0. */
export function assertSucceeded(res: RunResult, label: string, next: string): void {
  if (res.timedOut) throw new StepError(`${label} timed out and was stopped`, next);
  if (res.code !== 0) {
    const why = stderrSummary(res.stderr) || "no error output";
    throw new StepError(`${label} failed (exit ${res.code}): ${why}`, next);
  }
}
