import { parseArgs, type ParseArgsConfig } from "node:util";
import { CONTRACTS, type FlagSpec, type StepContract, type StepFlags, type StepName, type StepWord } from "../contracts";
import { StepError, UsageError } from "./errors";
import { pgDurationMs } from "../../common/text";

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * node:util parseArgs in strict mode, with its errors turned into UsageError (exit code 2)
 * so every step reports a bad flag the same way.
 */
export function parseFlags<O extends Options>(step: string, args: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError(`${step}: ${(err as Error).message}`);
  }
}


/**
 * A step's arguments parsed by its contract (hooks/contracts.ts): the flags it declares, typed as
 * declared, and its positional words checked against their choices. A boolean flag without a
 * default is false when absent.
 */
export function parseStep<S extends StepName>(step: S, args: string[]): { values: StepFlags<S>; positionals: StepWord<S>[] } {
  const contract: StepContract = CONTRACTS[step];
  const options = Object.fromEntries(Object.entries(contract.flags).map(([name, f]: [string, FlagSpec]) => [name, {
    type: f.type,
    ...(f.multiple ? { multiple: true } : {}),
    ...(f.default !== undefined ? { default: f.default } : f.type === "boolean" ? { default: false } : {}),
  }])) as Options;
  const { values, positionals } = parseFlags(step, args, options, contract.positionals !== undefined);
  const p = contract.positionals;
  if (p) {
    const bad = positionals.filter((w) => !p.choices.includes(w));
    if (p.many ? bad.length > 0 : positionals.length !== 1 || bad.length > 0) {
      throw new UsageError(`${step}: ${p.many ? `unknown ${p.what} ${bad.join(", ")}` : `name one ${p.what}: ${p.choices.join(", ")}`}`,
        p.many ? `name any of ${p.choices.join(", ")} (none = all)` : `run e.g. \`vibes-hooks ${step} ${p.choices[0]}\``);
    }
  }
  return { values: values as StepFlags<S>, positionals: positionals as StepWord<S>[] };
}

/** A flag giving a positive number of seconds (fractions allowed); `fallback` when absent. */
export function positiveSeconds(step: string, value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${step}: ${flag} must be a positive number of seconds, not "${value}"`, `pass ${flag} ${fallback}`);
  return n;
}

/** A flag that must be present. */
export function requireFlag(step: string, value: string | undefined, flag: string, example: string): string {
  if (!value) throw new UsageError(`${step}: ${flag} is required`, `pass ${flag} ${example}`);
  return value;
}

/** A PostgreSQL duration setting from the environment, checked (it may go into PGOPTIONS) and in
 * milliseconds. */
export function durationSetting(env: NodeJS.ProcessEnv, name: string, fallback: string): { text: string; ms: number } {
  const text = (env[name] || fallback).trim();
  const ms = pgDurationMs(text);
  if (ms === undefined) {
    throw new StepError(`${name} "${text}" is not a positive PostgreSQL duration (at most 24 days)`, `set ${name} to a value such as 5s, 500ms or 30min`);
  }
  return { text, ms };
}
