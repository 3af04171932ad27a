// Where configuration values come from, and the words of a problem's fix: what config.ts and
// safety/config.ts both need, here so that neither imports the other back.
import * as pulumi from "@pulumi/pulumi";

/** Where raw values come from: the Pulumi config under the engine, a plain map in tests. */
export interface ConfigSource {
  /** Raw string value (arrays as JSON) of a project key, or of a namespaced key like `aws:region`. */
  get(key: string): string | undefined;
  /** True when the stack holds the key encrypted (`secure:`). */
  isSecret(key: string): boolean;
}

/** Records one bad key, what is wrong and its fix; loadConfig reports them all in one error. */
export type Bad = (key: string, problem: string, fix: string) => void;

/** The key's value; an empty string counts as unset. */
export function rawValue(source: ConfigSource, key: string): string | undefined {
  const v = source.get(key);
  return v === undefined || v === "" ? undefined : v;
}

/** The fix that sets the key. */
export function setCommand(stack: string, key: string, example: string, secret = false): string {
  return `set it with: pulumi config set${secret ? " --secret" : ""} ${key} ${example} --stack ${stack}`;
}

/** A secret value from the stack file, which must hold it encrypted. */
export function stackSecret(source: ConfigSource, stack: string, key: string, value: string, bad: Bad): pulumi.Output<string> {
  if (!source.isSecret(key)) bad(key, "is stored in plain text in the stack file", `re-set it encrypted: pulumi config set --secret ${key} <value> --stack ${stack}`);
  return pulumi.secret(value);
}
