// The program's commands against the steps' contracts (hooks/contracts.ts): every command line
// parses as its step declares it, and every step gets the secrets its contract names, no others.
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { CONTRACTS, isStep, type StepContract } from "../../hooks/contracts";
import { parseStep } from "../../hooks/lib/args";
import { ProgramRun, runProgram, secretPaths } from "./harness";

const SECRET_VARIABLES = { databasePassword: "VIBES_DB_PASSWORD", adminToken: "VIBES_ADMIN_TOKEN" } as const;

/** A command string split into words as /bin/sh would (the program quotes with shellWord). */
const words = (command: string) => execFileSync("/bin/sh", ["-c", `printf '%s\\0' ${command}`], { encoding: "utf8" }).split("\0").slice(0, -1);

describe("program: command lines and secrets come from the steps' contracts", function () {
  this.timeout(60_000);
  const runs: Record<string, ProgramRun> = {};
  before(async () => {
    for (const stack of ["dev", "prod"]) runs[stack] = await runProgram(stack);
    runs["test-sql"] = await runProgram("test", { overrides: { migrationMode: "sql", sqlDir: "app/migrations/sql" } });
  });

  for (const stack of ["dev", "prod", "test-sql"]) {
    it(`${stack}: every vibes-hooks command parses by its step's contract`, () => {
      const commands = runs[stack].registrations.filter((r) => String(r.inputs.create ?? "").startsWith("bin/vibes-hooks "));
      assert.ok(commands.length >= 12, `only ${commands.length} commands`);
      for (const c of commands) {
        const [, step, ...args] = words(String(c.inputs.create));
        assert.ok(isStep(step), `${c.name}: unknown step ${step}`);
        assert.doesNotThrow(() => parseStep(step, args), `${c.name}: ${c.inputs.create}`);
      }
    });

    it(`${stack}: every step gets exactly the secrets of its contract (a local app start and a rollback add theirs)`, () => {
      for (const c of runs[stack].registrations.filter((r) => String(r.inputs.create ?? "").startsWith("bin/vibes-hooks "))) {
        const step = words(String(c.inputs.create))[1] as keyof typeof CONTRACTS;
        const contract: StepContract = CONTRACTS[step];
        const env = c.inputs.environment as Record<string, unknown>;
        const localStart = stack === "dev" && (contract.startsTheApp || env.VIBES_ROLLBACK_ON_FAILURE === "1");
        const expected = new Set<string>([...contract.secrets, ...(env.VIBES_ROLLBACK_ON_FAILURE === "1" ? CONTRACTS.rollback.secrets : []), ...(localStart ? ["databasePassword", "adminToken"] : [])]);
        const got = secretPaths(c.wire).filter((p) => p !== "environment.VIBES_DEPLOYMENT_DIGEST").sort();
        assert.deepEqual(got, [...expected].map((s) => `environment.${SECRET_VARIABLES[s as keyof typeof SECRET_VARIABLES]}`).sort(), c.name);
      }
    });
  }
});
