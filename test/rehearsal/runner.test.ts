// The runner itself, on a tiny fixture program (test/rehearsal/fixture): ordering follows the
// graph, a failed command stops its dependents and the run, secrets reach commands but never the
// output, config comes from Pulumi.yaml defaults, the stack file and overrides.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runRehearsal } from "./cli";

const FIXTURE = path.join(__dirname, "fixture");
const TOKEN = "tok-7f3a9c1e55d2b0aa";

describe("rehearsal runner (fixture program)", function () {
    this.timeout(60_000);
    let dir: string;
    let logFile: string;
    const env = { ...process.env, VIBES_TOKEN: TOKEN };
    const run = (...extra: string[]) => runRehearsal(["--root", FIXTURE, "--stack", "test", "--config", `log=${logFile}`, ...extra], env);
    const logLines = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").trim().split("\n").filter(Boolean) : []);

    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "rehearsal-fixture-"));
        logFile = path.join(dir, "order.log");
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("runs each command after the resources it depends on, and reports stages and outputs", async () => {
        const r = await run();
        assert.equal(r.code, 0, r.output);
        assert.equal(r.summary.ok, true);
        // a sleeps 0.6 s: b (dependsOn a) and c (reads b's stdout) must still come after it.
        const lines = logLines();
        assert.deepEqual(lines.filter((l) => ["a", "b", "c saw b-out"].includes(l)), ["a", "b", "c saw b-out"]);
        assert.ok(lines.indexOf("slow") < lines.indexOf("e"), lines.join(","));
        assert.equal(lines.length, 5);

        const stages = Object.fromEntries(r.summary.stages.map((s) => [s.name, s]));
        assert.deepEqual(Object.keys(stages).sort(), ["first", "second", "third"]);
        for (const s of r.summary.stages) assert.equal(s.status, "ok", s.name);
        assert.deepEqual(stages.second.resources.map((x) => x.name), ["b", "c"]);
        assert.ok(stages.second.startedMs! >= stages.first.startedMs! + stages.first.durationMs!, "second started before first ended");
        assert.ok(stages.first.durationMs! >= 500, `first took ${stages.first.durationMs} ms; a sleeps 0.6 s`);
        assert.match(r.output, /▶ Stage "first"[\s\S]*▷ a[\s\S]*✓ Stage "first" \(\d+\.\ds\)/);
        // A stage ends once, after its last resource: not when the quick command beside `a` is done.
        assert.equal(r.output.match(/✓ Stage "first"/g)?.length, 1, r.output);
        assert.match(r.output, /✓ a \([\d.]+s\)[\s\S]*✓ Stage "first"/);

        const o = r.summary.outputs!;
        assert.equal(o.greeting, "from-the-stack-file", "stack file value wins over the Pulumi.yaml default");
        assert.equal(o.mode, "default-mode", "Pulumi.yaml default applied");
        assert.equal(o.eOut, `${FIXTURE}\nfrom-stdin`, "dir defaults to the project root; stdin is fed");
        assert.equal(o.tokenOut, "[secret]");
        assert.equal(o.aOut, "[secret]", "stdout of a command with a secret input is secret, as in the provider");
        assert.match(String(o.bucketArn), /^arn:aws:s3:::vault-[0-9a-f]{8}$/);
        assert.equal(o.dbAddress, "vibes-prod.abcdefghijkl.eu-west-1.rds.amazonaws.com", "aws:region from Pulumi.yaml reaches the mocks");

        assert.equal(r.summary.stateWritten, false);
        assert.match(r.output, /Pulumi state is NOT written/);
        // The command got the plain secret; nothing printed contains it.
        assert.equal(fs.readFileSync(`${logFile}.token`, "utf8"), TOKEN);
        assert.equal(fs.readFileSync(`${logFile}.inherited`, "utf8"), "absent\n", "the runner's secret variable reached a command");
        assert.ok(!r.output.includes(TOKEN), "secret leaked into the output");
        assert.match(r.output, /using token \[secret\]/);
        // Only the secret itself is masked, not the plain values beside it in the same environment.
        assert.ok(r.output.includes(`logging to ${logFile}`), "a plain env value was masked");
    });

    it("a failed command stops the run: dependents through dependsOn and through outputs never run", async () => {
        const r = await run("--config", "failAt=a");
        assert.equal(r.code, 1);
        assert.equal(r.summary.ok, false);
        assert.equal(r.summary.failedStage, "first");
        assert.match(r.summary.error!, /stage Stage "first" failed: a: command exited with code 3: error: a broke with token \[secret\]\. next: fix a/);
        assert.ok(!r.output.includes(TOKEN), "secret leaked into the failure message");
        // slow was already running (independent of a) and may finish; nothing starts after the failure.
        assert.deepEqual(logLines(), ["slow"]);
        const status = Object.fromEntries(r.summary.stages.flatMap((s) => s.resources.map((x) => [x.name, x.status])));
        // quick and vault are independent of a: started at once, they finish, or never start.
        assert.deepEqual(status, { a: "failed", b: "not-run", c: "not-run", slow: "ok", e: "not-run", vault: status.vault, quick: status.quick });
        assert.ok(["ok", "not-run"].includes(status.quick) && ["ok", "not-run"].includes(status.vault), JSON.stringify(status));
        assert.equal(r.summary.outputs, undefined);
    });

    it("a failure in a later stage keeps what ran before it and skips what reads its output", async () => {
        const r = await run("--config", "failAt=b");
        assert.equal(r.code, 1);
        assert.equal(r.summary.failedStage, "second");
        assert.deepEqual(logLines(), ["a", "slow"]);
        const second = r.summary.stages.find((s) => s.name === "second")!;
        assert.deepEqual(second.resources.map((x) => [x.name, x.status]), [["b", "failed"], ["c", "not-run"]]);
        assert.equal(r.summary.stages.find((s) => s.name === "first")!.status, "ok");
        assert.match(r.output, /rehearsal FAILED: stage Stage "second" failed/);
    });

    it("config: a secure value needs its env var, secrets are refused on the command line, --config overrides", async () => {
        const noSecret = await runRehearsal(["--root", FIXTURE, "--stack", "test", "--config", `log=${logFile}`], { ...process.env, VIBES_TOKEN: undefined });
        assert.equal(noSecret.code, 2);
        assert.match(noSecret.summary.error!, /rehearsal-fixture:token is a secure value .* set VIBES_TOKEN or VIBES_TOKEN_FILE/);
        assert.deepEqual(logLines(), [], "nothing ran");

        const onArgv = await run("--config", "token=plain");
        assert.equal(onArgv.code, 2);
        assert.match(onArgv.summary.error!, /token is secret: pass it through VIBES_TOKEN/);

        const tokenFile = path.join(dir, "token");
        fs.writeFileSync(tokenFile, `${TOKEN}\n`);
        const fromFile = await runRehearsal(
            ["--root", FIXTURE, "--stack", "test", "--config", `log=${logFile}`, "--config", "greeting=from-argv"],
            { ...process.env, VIBES_TOKEN: undefined, VIBES_TOKEN_FILE: tokenFile },
        );
        assert.equal(fromFile.code, 0, fromFile.output);
        assert.equal(fromFile.summary.outputs!.greeting, "from-argv");
        assert.equal(fs.readFileSync(`${logFile}.token`, "utf8"), TOKEN, "file value without its trailing newline");

        const missing = await runRehearsal(["--root", FIXTURE, "--stack", "test"], env);
        assert.equal(missing.code, 2);
        assert.match(missing.summary.error!, /missing required configuration variable 'rehearsal-fixture:log'/);
    });
});
