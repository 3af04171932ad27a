import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./errors";

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

/** A flag that must be present. */
export function requireFlag(step: string, value: string | undefined, flag: string, example: string): string {
  if (!value) throw new UsageError(`${step}: ${flag} is required`, `pass ${flag} ${example}`);
  return value;
}
