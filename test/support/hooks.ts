/**
 * Runs the real CLI (bin/vibes-hooks) as a child process, the way Pulumi commands do.
 *
 *   const res = await runHooks("backup", ["--label", "0000_initial"], env);
 *   assert.equal(res.code, 0, res.stderr); res.json.uri ...
 *   assertSecretAbsent(res, password);
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";

export const REPO_ROOT = join(__dirname, "..", "..");
export const HOOKS_BIN = join(REPO_ROOT, "bin", "vibes-hooks");

export interface HooksResult {
  code: number;
  /** The parsed JSON line from stdout (null when stdout was not exactly one JSON line). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
  stdout: string;
  stderr: string;
  pid: number;
}

export interface RunHooksOptions {
  /** Called with the hook's pid as soon as it started (e.g. to watch /proc). */
  onSpawn?: (pid: number) => void;
  timeoutMs?: number;
}

/** Spawns `bin/vibes-hooks <step> ...args` with exactly `env` (PATH is added when missing). */
export function runHooks(step: string, args: string[], env: NodeJS.ProcessEnv, opts: RunHooksOptions = {}): Promise<HooksResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(HOOKS_BIN, [step, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("error", reject);
    if (child.pid) opts.onSpawn?.(child.pid);
    child.on("close", (code) => {
      clearTimeout(timer);
      const lines = stdout.split("\n").filter((l) => l.trim());
      let json: unknown = null;
      if (lines.length === 1) {
        try {
          json = JSON.parse(lines[0]);
        } catch {
          json = null;
        }
      }
      resolve({ code: code ?? -1, json, stdout, stderr, pid: child.pid ?? -1 });
    });
  });
}

/** Fails when `secret` (or its URL-encoded form) appears in the hook's stdout or stderr. */
export function assertSecretAbsent(res: { stdout?: string; stderr: string; json?: unknown }, secret: string): void {
  assert.ok(secret.length >= 3, "assertSecretAbsent needs a real secret");
  const texts = [res.stdout ?? "", res.stderr, JSON.stringify(res.json ?? null)];
  for (const form of new Set([secret, encodeURIComponent(secret)])) {
    for (const t of texts) assert.ok(!t.includes(form), `secret leaked into output:\n${t}`);
  }
}

/** Asserts the step failed the documented way: exit 1, ok:false JSON with error and next. */
export function assertFailed(res: HooksResult, step: string, errorPattern: RegExp): void {
  assert.equal(res.code, 1, `expected exit 1, got ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  assert.equal(res.json?.ok, false, res.stdout);
  assert.equal(res.json.step, step);
  assert.match(res.json.error, errorPattern);
  assert.ok(res.json.next, "a failure names the next step");
  assert.match(res.stderr, /^error: .+\. next: .+$/m);
}
