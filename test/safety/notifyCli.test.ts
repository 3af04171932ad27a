// Through the real CLI (bin/vibes-hooks): a step that fails in the middle of a deployment sends
// the failure message. Needs the dispatcher wiring of docs/safety.md ("CLI wiring").
import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as path from "node:path";
import { startReceiver, type Receiver } from "../support/receiver";

const BIN = path.resolve(__dirname, "../../bin/vibes-hooks");

function hhmm(d: Date): string {
  return d.toISOString().slice(11, 16);
}

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(BIN, args, { env: { PATH: process.env.PATH, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe("vibes-hooks failure notification (CLI)", () => {
  let hook: Receiver;
  let url = "";
  const messages = () => hook.got.map((r) => JSON.parse(r.body) as Record<string, unknown>);
  before(async () => {
    hook = await startReceiver((_req, res) => res.end("{}"));
    url = `${hook.url}/T0K3N`;
  });
  after(() => hook.close());

  it("a failing middle step exits non-zero with its own error and sends one failure message", async () => {
    const now = Date.now();
    // A window that opens in two hours: the check fails now, whatever the day.
    const window = { days: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"], start: hhmm(new Date(now + 2 * 3600_000)), end: hhmm(new Date(now + 3 * 3600_000)) };
    const env = { VIBES_STACK: "prod", VIBES_TARGET_REVISION: "001_uuid_schema_migration", VIBES_NOTIFY_WEBHOOK_URL: url, VIBES_DB_PASSWORD: "pw-never-sent-77" };
    const r = await runCli(["window-check", "--window", JSON.stringify(window)], env);
    assert.equal(r.code, 1, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.deepEqual([result.ok, result.step], [false, "window-check"]);
    assert.match(result.error, /outside maintenance window/);
    const got = messages();
    assert.equal(got.length, 1, "one failure message");
    assert.deepEqual([got[0].event, got[0].stack, got[0].revision, got[0].failedStep], ["failure", "prod", "001_uuid_schema_migration", "window-check"]);
    assert.match(String(got[0].error), /next opening/);
    assert.ok(!JSON.stringify(got[0]).includes("pw-never-sent-77") && !JSON.stringify(got[0]).includes("T0K3N"));
  });

  it("notify start and success run through the CLI", async () => {
    hook.got.length = 0;
    const env = { VIBES_STACK: "test", VIBES_TARGET_REVISION: "001_uuid_schema_migration", VIBES_NOTIFY_WEBHOOK_URL: url };
    const r = await runCli(["notify", "success", "--summary", "12/12 checks passed"], env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true, step: "notify", event: "success", sent: ["webhook"], failed: [] });
    const [got] = messages();
    assert.deepEqual([got.event, got.summary], ["success", "12/12 checks passed"]);
  });
});
