// Reads a Pulumi project and one of its stacks the way the engine would, for a run under mocks:
// under setMocks the SDK reads config only from PULUMI_CONFIG, so Pulumi.yaml defaults and the
// stack file have to be applied here.
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";

export interface ProjectConfig {
    project: string;
    root: string;
    /** Absolute path of the program's entry point (Pulumi.yaml `main`, default the root folder). */
    main: string;
    /** Full config map, `<namespace>:<key>` -> string as the engine hands it to the program. */
    config: Record<string, string>;
    secretKeys: string[];
    /** Environment variables a secret was read from: the runner keeps them from the commands. */
    secretEnv: string[];
}

interface DeclaredKey {
    type?: string;
    default?: unknown;
    value?: unknown;
    secret?: boolean;
}

/** Thrown for anything the engine would reject before the program runs. */
export class ConfigError extends Error {}

/**
 * The engine's rule for a config value: strings stay as they are, anything structured becomes JSON
 * (what `pulumi config set --path` stores and `Config.requireObject` parses).
 */
function asConfigString(v: unknown): string {
    return typeof v === "string" ? v : JSON.stringify(v);
}

/**
 * The environment variable that carries a secret config key under rehearsal, e.g. `dbPassword` ->
 * `VIBES_DB_PASSWORD` (and `VIBES_DB_PASSWORD_FILE` for a file holding it). Stack files hold
 * secrets as `secure:` ciphertext that only the Pulumi CLI can decrypt.
 */
export function secretEnvName(key: string): string {
    const bare = key.includes(":") ? key.slice(key.indexOf(":") + 1) : key;
    return "VIBES_" + bare.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/[^A-Za-z0-9]+/g, "_").toUpperCase();
}

function secretFromEnv(key: string, env: NodeJS.ProcessEnv, used: Set<string>): string | undefined {
    const name = secretEnvName(key);
    if (env[name] !== undefined) {
        used.add(name);
        return env[name];
    }
    const file = env[`${name}_FILE`];
    if (file === undefined) return undefined;
    try {
        return fs.readFileSync(file, "utf8").replace(/\r?\n$/, "");
    } catch (e) {
        throw new ConfigError(`secret config ${key}: cannot read ${name}_FILE (${(e as Error).message})`);
    }
}

function fullKey(project: string, key: string): string {
    return key.includes(":") ? key : `${project}:${key}`;
}

export function loadProject(root: string, stack: string, overrides: Record<string, string>, env: NodeJS.ProcessEnv): ProjectConfig {
    const projectFile = path.join(root, "Pulumi.yaml");
    if (!fs.existsSync(projectFile)) throw new ConfigError(`no Pulumi.yaml in ${root}`);
    const doc = (yaml.load(fs.readFileSync(projectFile, "utf8")) ?? {}) as Record<string, unknown>;
    const project = doc.name;
    if (typeof project !== "string" || !project) throw new ConfigError(`${projectFile}: missing name`);
    const main = path.resolve(root, typeof doc.main === "string" ? doc.main : ".");

    const declared = new Map<string, DeclaredKey>();
    const config: Record<string, string> = {};
    const secret = new Set<string>();
    const used = new Set<string>();
    for (const [key, spec] of Object.entries((doc.config ?? {}) as Record<string, unknown>)) {
        const k = fullKey(project, key);
        // A bare value in the project's config block is shorthand for its default.
        const d: DeclaredKey = spec !== null && typeof spec === "object" && !Array.isArray(spec) ? (spec as DeclaredKey) : { default: spec };
        declared.set(k, d);
        if (d.secret) secret.add(k);
        const v = d.value !== undefined ? d.value : d.default;
        if (v !== undefined) config[k] = asConfigString(v);
    }

    const stackFile = path.join(root, `Pulumi.${stack}.yaml`);
    if (!fs.existsSync(stackFile)) throw new ConfigError(`no stack file ${path.basename(stackFile)} in ${root}`);
    const stackDoc = (yaml.load(fs.readFileSync(stackFile, "utf8")) ?? {}) as Record<string, unknown>;
    for (const [key, value] of Object.entries((stackDoc.config ?? {}) as Record<string, unknown>)) {
        const k = fullKey(project, key);
        const isSecure = value !== null && typeof value === "object" && "secure" in (value as object);
        if (isSecure) {
            secret.add(k);
            const plain = secretFromEnv(k, env, used);
            if (plain === undefined) {
                throw new ConfigError(
                    `${k} is a secure value in ${path.basename(stackFile)}, which only the Pulumi CLI can decrypt; ` +
                        `set ${secretEnvName(k)} or ${secretEnvName(k)}_FILE for the rehearsal`,
                );
            }
            config[k] = plain;
        } else {
            if (declared.get(k)?.secret) throw new ConfigError(`${k} is declared secret: a plain value in ${path.basename(stackFile)} is an error`);
            config[k] = asConfigString(value);
        }
    }

    for (const [key, value] of Object.entries(overrides)) {
        const k = fullKey(project, key);
        // Command-line arguments are visible to every user of the machine: secrets come from env only.
        if (secret.has(k)) throw new ConfigError(`${k} is secret: pass it through ${secretEnvName(k)} or ${secretEnvName(k)}_FILE, not --config`);
        config[k] = value;
    }

    // Secret keys without a stack value may still come from the environment (e.g. the dev password file).
    for (const k of secret) {
        const plain = secretFromEnv(k, env, used);
        if (plain !== undefined) config[k] = plain;
    }

    for (const [k, d] of declared) {
        if (d.type && config[k] === undefined) {
            throw new ConfigError(`missing required configuration variable '${k}' (no default in Pulumi.yaml, no value in ${path.basename(stackFile)})`);
        }
    }
    return { project, root, main, config, secretKeys: [...secret], secretEnv: [...used] };
}
