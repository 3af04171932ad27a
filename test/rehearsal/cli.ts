// Runs the rehearsal CLI in a child process, as `npm run rehearse` does: every run gets a fresh
// Pulumi runtime, and what it prints can be checked for leaked secrets.
import { spawn } from "child_process";
import * as path from "path";
import type { RehearsalSummary } from "../../rehearsal/run";
import { REPO_ROOT } from "../support/hooks";

export interface RehearsalRun {
    code: number;
    /** Everything the run printed (progress on stderr with --json, the JSON summary on stdout). */
    output: string;
    summary: RehearsalSummary;
}

export function runRehearsal(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 300_000): Promise<RehearsalRun> {
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ["--no-experimental-strip-types", "-r", "ts-node/register/transpile-only", path.join(REPO_ROOT, "rehearsal/run.ts"), "--json", ...args], {
            cwd: REPO_ROOT,
            env,
            stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.on("error", reject);
        child.on("close", (code) => {
            clearTimeout(timer);
            const last = stdout.trim().split("\n").pop() ?? "";
            try {
                resolve({ code: code ?? -1, output: stderr + stdout, summary: JSON.parse(last) as RehearsalSummary });
            } catch {
                reject(new Error(`rehearsal printed no JSON summary (exit ${code}):\n${stderr}\n${stdout}`));
            }
        });
    });
}
