// The steps' contracts (hooks/contracts.ts) against the steps themselves: each step parses exactly
// what its contract declares, its --help says all of it, and the window guard follows it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CONTRACTS, synopsis, windowRule, type StepContract, type StepName } from "../../hooks/contracts";
import { parseStep } from "../../hooks/lib/args";
import { REPO_ROOT, runHooks } from "../support/hooks";

const steps = Object.keys(CONTRACTS) as StepName[];
const contract = (step: StepName): StepContract => CONTRACTS[step];

/** An argument list that uses every flag the contract declares, and its first positional word. */
function everyFlag(step: StepName): string[] {
  const c = contract(step);
  const words = c.positionals ? [c.positionals.choices[0]] : [];
  return [...words, ...Object.entries(c.flags).flatMap(([name, f]) => (f.type === "boolean" ? [`--${name}`] : [`--${name}`, "x"]))];
}

/** An hour-long window three hours from now: closed. */
function closedWindow(): string {
  const hhmm = (h: number) => {
    const d = new Date(Date.now() + h * 3_600_000);
    return `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
  };
  return JSON.stringify({ days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: hhmm(2), end: hhmm(4) });
}

describe("step contracts", function () {
  this.timeout(120_000);

  it("each step's module parses its arguments by its own contract, and nothing else", () => {
    for (const step of steps) {
      const source = readFileSync(join(REPO_ROOT, "hooks", `${contract(step).module.replace("./", "")}.ts`), "utf8");
      assert.match(source, new RegExp(`parseStep\\("${step}", args\\)`), `${step} parses by its contract`);
      assert.doesNotMatch(source, /parseFlags\(|parseArgs\(/, `${step} has a parser of its own`);
    }
  });

  it("every declared flag parses, as its declared type; an undeclared one is refused", () => {
    for (const step of steps) {
      const { values } = parseStep(step, everyFlag(step));
      for (const [name, f] of Object.entries(contract(step).flags)) {
        const value = (values as Record<string, unknown>)[name];
        if (f.type === "boolean") assert.equal(value, true, `${step} --${name}`);
        else assert.deepEqual(value, f.multiple ? ["x"] : "x", `${step} --${name}`);
      }
      assert.throws(() => parseStep(step, [...everyFlag(step), "--no-such-flag"]), /Unknown option '--no-such-flag'/, step);
    }
  });

  it("positional words are checked against the declared choices", () => {
    assert.throws(() => parseStep("maintenance", []), /maintenance: name one mode: on, off/);
    assert.throws(() => parseStep("maintenance", ["on", "off"]), /name one mode/);
    assert.throws(() => parseStep("validate", ["schema", "speed"]), /validate: unknown part speed/);
    assert.deepEqual(parseStep("validate", []).positionals, []);
    assert.throws(() => parseStep("smoke", ["now"]), /Unexpected argument 'now'/);
  });

  it("--help per step lists every flag with its description, and the top-level usage every step", async () => {
    const top = await runHooks("--help", [], {});
    assert.equal(top.code, 0);
    for (const step of steps) {
      assert.match(top.stderr, new RegExp(`^  ${step} +${contract(step).summary.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"), step);
      const help = await runHooks(step, ["--help"], {});
      assert.equal(help.code, 0, `${step} --help: ${help.stderr}`);
      assert.ok(help.stderr.startsWith(`usage: vibes-hooks ${synopsis(step)}\n`), help.stderr);
      for (const [name, f] of Object.entries(contract(step).flags)) {
        assert.ok(help.stderr.includes(`--${name}`) && help.stderr.includes(f.description), `${step} --help names --${name}`);
      }
    }
    // A usage error prints that step's help, not the whole list.
    const bad = await runHooks("migrate", ["--no-such-flag"], {});
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /usage: vibes-hooks migrate .*\[--accept-renumbered-ids\]/);
  });

  it("every step whose contract says it changes things refuses outside the window before doing anything; the others do not", async () => {
    const env = { VIBES_MAINTENANCE_WINDOW: closedWindow(), VIBES_APP_URL: "http://127.0.0.1:9", DATABASE_URL: "postgresql://nobody@127.0.0.1:9/none" };
    // Every flag given "x": a step the guard lets through fails at once on its values or its connection.
    const calls: [StepName, string[]][] = steps.flatMap((step): [StepName, string[]][] => {
      const c = contract(step);
      return typeof c.window === "string" ? [[step, everyFlag(step)]] : c.positionals!.choices.map((w) => [step, [w]]);
    });
    await Promise.all(calls.map(async ([step, args]) => {
      const res = await runHooks(step, args, env, { timeoutMs: 30_000 });
      const refused = /outside maintenance window/.test(res.json?.error ?? "");
      assert.equal(refused, windowRule(step, contract(step).positionals ? [args[0]] : []) !== "none", `${step} ${args.join(" ")}: ${res.json?.error}`);
    }));
  });
});
