// The rehearsal: runs the Pulumi program for real under pulumi.runtime.setMocks, without the CLI.
//   node -r ts-node/register/transpile-only rehearsal/run.ts --stack dev [--json] [--config key=value ...]
// Pulumi state is NOT written: there is no stack and no checkpoint, so every run executes every
// command as on a first `pulumi up`. See docs/rehearsal.md.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, loadProject } from "./project";
import { acceptErrorHooks, CommandResult, RehearsalListener, RehearsalMocks, redact } from "./mocks";

export const STATE_NOTICE = "Pulumi state is NOT written (no stack, no checkpoint): every command runs as on a first `pulumi up`.";

export interface RehearsalOptions {
    root: string;
    stack: string;
    overrides?: Record<string, string>;
    env?: NodeJS.ProcessEnv;
    /** Human-readable progress; defaults to nothing. */
    log?: (line: string) => void;
}

export interface ResourceSummary {
    name: string;
    type: string;
    /** running: started, not finished (only while the rehearsal is under way). */
    status: "running" | "ok" | "failed" | "not-run";
    startedMs?: number;
    durationMs?: number;
    exitCode?: number;
    error?: string;
    /** Commands: their `delete`, which Pulumi runs on destroy (never run by the rehearsal). */
    delete?: string;
}

export interface StageSummary {
    name: string;
    type: string;
    /** incomplete: some of its resources ran, the deployment stopped before the others. */
    status: "ok" | "failed" | "incomplete" | "not-run" | "empty";
    startedMs?: number;
    durationMs?: number;
    resources: ResourceSummary[];
}

export interface RehearsalSummary {
    ok: boolean;
    project: string;
    stack: string;
    stateWritten: false;
    failedStage?: string;
    error?: string;
    durationMs: number;
    stages: StageSummary[];
    /** What an operator must know after a failure (e.g. maintenance mode left on). */
    notes: string[];
    /** Resolved stack outputs; secrets are "[secret]". Absent when the program failed. */
    outputs?: Record<string, unknown>;
}

interface Node {
    urn: string;
    type: string;
    name: string;
    stage?: Node;
    custom: boolean;
    result?: ResourceSummary;
}

/** The part of the SDK's RegisterResourceRequest the runner reads. */
interface RegisterRequest {
    getType(): string;
    getName(): string;
    getObject(): { toJavaScript(): unknown } | undefined;
}

const STACK_TYPE = "pulumi:pulumi:Stack";
const MAINTENANCE_TYPE = "vibes:maintenance:MaintenanceMode";
const isStage = (type: string) => type.startsWith("vibes:");
const typeLabel = (type: string) => type.split(":").pop() ?? type;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

function stageLabel(n: Node): string {
    return `${typeLabel(n.type)} "${n.name}"`;
}

/** Resolved value of an Output; `promise()` is the SDK's own accessor (not in its typings). */
function settle(o: pulumi.Output<unknown>): Promise<unknown> {
    return (o as unknown as { promise(): Promise<unknown> }).promise();
}

async function resolveOutputs(raw: Record<string, unknown>): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw)) {
        const o = pulumi.output(v);
        out[k] = (await pulumi.isSecret(o)) ? "[secret]" : await settle(o);
    }
    return out;
}

interface CliArgs {
    stack: string;
    json: boolean;
    root: string;
    overrides: Record<string, string>;
}

function parseArgs(argv: string[]): CliArgs {
    let stack = "";
    let root = path.resolve(__dirname, "..");
    let json = false;
    const overrides: Record<string, string> = {};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--stack" || a === "-s") stack = argv[++i] ?? "";
        else if (a.startsWith("--stack=")) stack = a.slice("--stack=".length);
        else if (a === "--json") json = true;
        else if (a === "--root") root = path.resolve(argv[++i] ?? ".");
        else if (a === "--config" || a === "-c" || a.startsWith("--config=")) {
            const kv = a.startsWith("--config=") ? a.slice("--config=".length) : (argv[++i] ?? "");
            const eq = kv.indexOf("=");
            if (eq <= 0) throw new ConfigError(`--config expects key=value, got "${kv}"`);
            overrides[kv.slice(0, eq)] = kv.slice(eq + 1);
        } else throw new ConfigError(`unknown argument ${a}; usage: rehearse --stack NAME [--json] [--config key=value ...] [--root PROJECT_DIR]`);
    }
    if (!stack) throw new ConfigError("--stack is required");
    return { stack, json, root, overrides };
}

export async function rehearse(opts: RehearsalOptions): Promise<RehearsalSummary> {
    const log = opts.log ?? (() => undefined);
    const started = Date.now();
    const at = () => `[${secs(Date.now() - started).padStart(6)}]`;
    const env = opts.env ?? process.env;
    const cfg = loadProject(opts.root, opts.stack, opts.overrides ?? {}, env);
    log(`rehearsal of ${cfg.project}, stack ${opts.stack}. ${STATE_NOTICE}`);

    pulumi.runtime.setAllConfig(cfg.config, cfg.secretKeys);
    // The language host also hands config to the program in these variables (some programs read them).
    process.env.PULUMI_CONFIG = JSON.stringify(cfg.config);
    process.env.PULUMI_CONFIG_SECRET_KEYS = JSON.stringify(cfg.secretKeys);
    // Commands inherit this process's environment: a secret passed to the runner stays out of it.
    for (const name of cfg.secretEnv) delete process.env[name];
    const region = cfg.config["aws:region"] ?? "us-east-1";

    const nodes = new Map<string, Node>();
    const byObject = new WeakMap<pulumi.Resource, Node>();
    const stageOrder: Node[] = [];
    const stageStart = new Map<Node, number>();
    const membersOf = (stage: Node) => [...nodes.values()].filter((n) => n.custom && n.stage === stage);

    const maybeFinishStage = (stage: Node | undefined) => {
        if (!stage) return;
        const members = membersOf(stage);
        if (members.some((m) => !m.result || m.result.status !== "ok")) return;
        log(`${at()} ✓ ${stageLabel(stage)} (${secs(Date.now() - (stageStart.get(stage) ?? started))})`);
    };

    const listener: RehearsalListener = {
        resourceStarted(urn) {
            const n = nodes.get(urn);
            if (!n || !n.custom) return;
            if (n.stage && !stageStart.has(n.stage)) {
                stageStart.set(n.stage, Date.now());
                stageOrder.push(n.stage);
                log(`${at()} ▶ ${stageLabel(n.stage)}`);
            }
            n.result = { name: n.name, type: n.type, status: "running", startedMs: Date.now() - started };
        },
        commandStarted(ev) {
            log(`${at()}   ▷ ${ev.name}`);
        },
        commandOutput(_ev, line) {
            log(`            │ ${line}`);
        },
        commandFinished(ev, r: CommandResult, error?: string) {
            const n = nodes.get(ev.urn);
            if (n?.result) {
                n.result.exitCode = r.exitCode;
                if (ev.deleteCommand) n.result.delete = ev.deleteCommand;
                if (error) {
                    n.result.status = "failed";
                    n.result.error = error;
                }
            }
            log(`${at()}   ${error ? "✗" : "✓"} ${ev.name} (${secs(r.ms)}${error ? `, exit ${r.exitCode}` : ""})`);
        },
        resourceFinished(urn) {
            const n = nodes.get(urn);
            if (!n?.result) return;
            n.result.durationMs = Date.now() - started - (n.result.startedMs ?? 0);
            if (n.result.status === "running") n.result.status = "ok";
            if (n.result.status === "failed" && n.stage) log(`${at()} ✗ ${stageLabel(n.stage)} failed: ${n.result.error}`);
            else maybeFinishStage(n.stage);
        },
        resourceSkipped(urn) {
            const n = nodes.get(urn);
            if (n) n.result = { name: n.name, type: n.type, status: "not-run", error: "the deployment stopped before it" };
        },
    };
    const mocks = new RehearsalMocks(opts.root, region, listener);
    const safe = (s: string) => redact(s, mocks.knownSecrets());
    await pulumi.runtime.setMocks(mocks, cfg.project, opts.stack, false);
    const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource(req: RegisterRequest, cb: unknown): unknown };
    acceptErrorHooks(monitor);
    const registerResource = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req, cb) => {
        mocks.noteRawInputs(req.getType(), req.getName(), req.getObject()?.toJavaScript());
        return registerResource(req, cb);
    };

    const stackUrn = `urn:pulumi:${opts.stack}::${cfg.project}::${STACK_TYPE}::${cfg.project}-${opts.stack}`;
    // Mocks are not told parents or which resources the program declares: a stack transformation
    // sees every resource as it is constructed, with its parent.
    const track: pulumi.ResourceTransformation = (a) => {
        const parent = a.opts.parent ? byObject.get(a.opts.parent) : undefined;
        const parentUrn = parent?.urn ?? stackUrn;
        const parentType = parent?.type ?? STACK_TYPE;
        const urn = `urn:pulumi:${opts.stack}::${cfg.project}::${parentType.split("$").pop()}$${a.type}::${a.name}`;
        // instanceof, not CustomResource.isInstance: the flag it reads is set after this runs.
        const custom = a.resource instanceof pulumi.CustomResource;
        const n: Node = { urn, type: a.type, name: a.name, custom, stage: isStage(a.type) ? undefined : (parent && isStage(parent.type) ? parent : parent?.stage) };
        nodes.set(urn, n);
        byObject.set(a.resource, n);
        mocks.noteParent(a.type, a.name, parentUrn);
        return undefined;
    };

    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    const cwd = process.cwd();
    // The engine runs the program from its project folder.
    process.chdir(opts.root);
    let programError: unknown;
    let rawOutputs: Record<string, unknown> | undefined;
    try {
        // As the language host does; the exports are kept as Outputs because the resolved stack
        // outputs it returns have lost which values are secret.
        await pulumi.runtime.runInPulumiStack(async () => {
            pulumi.runtime.registerStackTransformation(track);
            delete require.cache[require.resolve(cfg.main)];
            // eslint-disable-next-line @typescript-eslint/no-require-imports -- the program's path is only known at run time, as in the language host
            const exported = require(cfg.main);
            rawOutputs = await (exported instanceof Function ? exported() : exported);
            return rawOutputs;
        });
    } catch (e) {
        programError = e;
    }
    // Wait for every registration still in flight (the engine also lets started steps finish).
    await pulumi.runtime.disconnect();
    process.chdir(cwd);

    let outputs: Record<string, unknown> | undefined;
    if (!programError && !mocks.failure && rawOutputs) {
        try {
            outputs = await resolveOutputs(rawOutputs);
        } catch (e) {
            programError = e;
        }
    }
    // Give rejections raised while draining a turn to reach the handler before it is removed.
    await new Promise((r) => setImmediate(r));
    process.off("unhandledRejection", onUnhandled);

    const stages: StageSummary[] = [];
    const declaredStages = [...nodes.values()].filter((n) => isStage(n.type));
    for (const s of [...stageOrder, ...declaredStages.filter((d) => !stageOrder.includes(d))]) {
        const resources = membersOf(s).map((m) => m.result ?? { name: m.name, type: m.type, status: "not-run" as const });
        const ran = resources.filter((r) => r.status !== "not-run").length;
        const status =
            resources.length === 0 ? "empty"
            : resources.some((r) => r.status === "failed") ? "failed"
            : ran === 0 ? "not-run"
            : ran < resources.length ? "incomplete"
            : "ok";
        const startedMs = stageStart.has(s) ? stageStart.get(s)! - started : undefined;
        const ends = resources.map((r) => (r.startedMs ?? 0) + (r.durationMs ?? 0));
        stages.push({ name: s.name, type: s.type, status, startedMs, durationMs: startedMs === undefined ? undefined : Math.max(...ends) - startedMs, resources });
    }
    for (const s of stages.filter((x) => x.status === "not-run" || x.status === "incomplete")) {
        log(`         – ${typeLabel(s.type)} "${s.name}" ${s.status === "not-run" ? "did not run" : "did not finish"}`);
    }

    const failedStage = stages.find((s) => s.status === "failed");
    let error: string | undefined;
    if (mocks.failure) error = `stage ${failedStage ? `${typeLabel(failedStage.type)} "${failedStage.name}"` : "(outside any stage)"} failed: ${mocks.failure.message}`;
    else if (programError) error = `program failed: ${safe(programError instanceof Error ? programError.message : String(programError))}`;
    else if (unhandled.length > 0) error = `program failed: ${safe(unhandled.map((e) => (e instanceof Error ? e.message : String(e))).join("; "))}`;

    const notes: string[] = [];
    if (error) {
        // This project's maintenance stages come in pairs: on ran, off did not.
        const maintenance = stages.filter((s) => s.type === MAINTENANCE_TYPE);
        const off = maintenance.find((s) => s.status === "not-run" || s.status === "failed");
        if (off && maintenance.some((s) => s.status === "ok")) {
            notes.push(`maintenance mode is still ON: stage "${off.name}" did not complete. Fix the cause and run again, or turn it off by hand: bin/vibes-hooks maintenance off`);
        }
    }
    for (const n of notes) log(`NOTE: ${n}`);

    const summary: RehearsalSummary = {
        ok: error === undefined,
        project: cfg.project,
        stack: opts.stack,
        stateWritten: false,
        failedStage: failedStage?.name,
        error,
        durationMs: Date.now() - started,
        stages,
        notes,
        outputs,
    };
    if (outputs) {
        log("Outputs:");
        for (const [k, v] of Object.entries(outputs)) log(`    ${k}: ${v === "[secret]" ? v : JSON.stringify(v)}`);
    }
    log(summary.ok ? `rehearsal succeeded in ${secs(summary.durationMs)}. ${STATE_NOTICE}` : `rehearsal FAILED: ${error}\n${STATE_NOTICE}`);
    return summary;
}

async function main(): Promise<number> {
    let args: CliArgs;
    try {
        args = parseArgs(process.argv.slice(2));
    } catch (e) {
        console.error(`error: ${(e as Error).message}`);
        return 2;
    }
    // With --json, stdout carries only the summary; progress goes to stderr.
    const log = (line: string) => (args.json ? process.stderr : process.stdout).write(line + "\n");
    try {
        const summary = await rehearse({ root: args.root, stack: args.stack, overrides: args.overrides, log });
        if (args.json) process.stdout.write(JSON.stringify(summary) + "\n");
        return summary.ok ? 0 : 1;
    } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        console.error(`error: ${e.message}`);
        if (args.json) process.stdout.write(JSON.stringify({ ok: false, stateWritten: false, error: e.message }) + "\n");
        return 2;
    }
}

if (require.main === module) {
    main().then((code) => process.exit(code));
}
