import { parseArgs, type ParseArgsConfig } from "node:util";
import { StepError, UsageError } from "./errors";
import { pgDurationMs } from "./text";

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
