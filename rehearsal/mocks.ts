// Mocks that run the program for real: every command:local:Command executes its `create` the way
// the command provider would; cloud resources get plausible state. Nothing is written to any
// Pulumi state, so each rehearsal behaves like a first `pulumi up`.
import { spawn } from "child_process";
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { redact as redactWith } from "../common/redact";

/** The key the SDK puts on a secret value it hands to mocks (`{[SECRET_SIG]: SECRET_SIG_VALUE, value}`). */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270";

function isWrappedSecret(v: unknown): v is { value: unknown } {
    return v !== null && typeof v === "object" && (v as Record<string, unknown>)[SECRET_SIG] === SECRET_SIG_VALUE;
}

/** Plain values for a child process. */
function unwrap(v: unknown): unknown {
    if (isWrappedSecret(v)) return unwrap(v.value);
    if (Array.isArray(v)) return v.map(unwrap);
    if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)]));
    return v;
}

/** Adds every string inside a secret to `secrets` (to redact from what the runner prints). */
function collectSecrets(v: unknown, secrets: Set<string>, inSecret = false): void {
    if (isWrappedSecret(v)) return collectSecrets(v.value, secrets, true);
    if (v !== null && typeof v === "object") {
        for (const x of Object.values(v)) collectSecrets(x, secrets, inSecret);
    } else if (inSecret && typeof v === "string" && v !== "") secrets.add(v);
}

/** What the runner prints: every known secret value shows as [secret]. */
export function redact(text: string, secrets: Iterable<string>): string {
    return redactWith(text, secrets, "[secret]");
}

/**
 * Lets the SDK's mock monitor accept error hooks. `new pulumi.ErrorHook` registers itself with the
 * monitor's `registerErrorHook`, which the mock monitor lacks (SDK 3.276), so the hook's
 * registration rejects and the resources bound to it never register. Accepting is enough: only
 * the engine calls error hooks, and mocks have no engine. `onRegister` sees each hook's name.
 */
export function acceptErrorHooks(monitor: unknown, onRegister: (name: string) => void = () => undefined): void {
    const m = monitor as { registerErrorHook?: (req: { getName(): string }, callback: (err: null, resp: object) => void) => void };
    m.registerErrorHook ??= (req, callback) => {
        onRegister(req.getName());
        callback(null, {});
    };
}

function asSecret(v: unknown): unknown {
    return { [SECRET_SIG]: SECRET_SIG_VALUE, value: v };
}

export interface CommandEvent {
    /** Logical name of the Command resource. */
    name: string;
    urn: string;
    /** The Command's `delete` (what `pulumi destroy` would run), secrets redacted. */
    deleteCommand?: string;
}

export interface CommandResult {
    exitCode: number;
    stdout: string;
    stderr: string;
    ms: number;
}

/** What the runner wants to hear about while the program runs. */
export interface RehearsalListener {
    resourceStarted(urn: string): void;
    /** After the resource's create returned or failed. */
    resourceFinished(urn: string): void;
    resourceSkipped(urn: string): void;
    commandStarted(ev: CommandEvent): void;
    commandOutput(ev: CommandEvent, line: string): void;
    commandFinished(ev: CommandEvent, result: CommandResult, error?: string): void;
}

export class CommandFailed extends Error {}

interface RunSpec {
    command: string;
    interpreter?: string[];
    dir?: string;
    environment?: Record<string, string>;
    stdin?: string;
}

/** Last lines of a failed command's output that explain it (the hooks end with `error: ... next: ...`). */
function failureSummary(stdout: string, stderr: string): string {
    const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
    const hookError = lines.filter((l) => l.startsWith("error:"));
    if (hookError.length > 0) return hookError[hookError.length - 1];
    try {
        const parsed = JSON.parse(stdout.trim().split("\n").pop() ?? "") as { error?: string; next?: string };
        if (parsed.error) return `error: ${parsed.error}${parsed.next ? `. next: ${parsed.next}` : ""}`;
    } catch {
        // not JSON: fall through to the raw tail
    }
    return lines.slice(-3).join(" | ") || "(no output)";
}

const ACCOUNT = "123456789012";

export class RehearsalMocks implements pulumi.runtime.Mocks {
    /** Set once a resource fails: like the engine, no new operation starts after that. */
    failure: { urn: string; name: string; message: string } | undefined;
    private readonly parents = new Map<string, string>();
    private readonly rawInputs = new Map<string, unknown>();
    private readonly secrets = new Set<string>();

    constructor(
        private readonly root: string,
        private readonly region: string,
        private readonly listener: RehearsalListener,
    ) {}

    /** Every secret value seen so far, for redacting anything the runner prints. */
    knownSecrets(): Iterable<string> {
        return this.secrets;
    }

    /** Called by the runner's monitor wrapper: mocks are not told a resource's parent. */
    noteParent(type: string, name: string, parentUrn: string): void {
        this.parents.set(`${type}::${name}`, parentUrn);
    }

    /**
     * Called by the runner's monitor wrapper with a resource's inputs as the SDK serialized them,
     * where each secret is still marked where it is. The inputs mocks get have secrecy hoisted
     * to the top property (a secret env var makes the whole environment secret), which would
     * make every env value look secret.
     */
    noteRawInputs(type: string, name: string, raw: unknown): void {
        this.rawInputs.set(`${type}::${name}`, raw);
    }

    urnOf(type: string, name: string): string {
        const parent = this.parents.get(`${type}::${name}`);
        let qualified = type;
        if (parent) qualified = parent.split("::")[2].split("$").pop() + "$" + type;
        return `urn:pulumi:${pulumi.getStack()}::${pulumi.getProject()}::${qualified}::${name}`;
    }

    async newResource(args: pulumi.runtime.MockResourceArgs): Promise<pulumi.runtime.MockResourceResult> {
        const urn = this.urnOf(args.type, args.name);
        if (this.failure) {
            const reason = `not started: the deployment stopped after ${this.failure.name} failed`;
            this.listener.resourceSkipped(urn);
            throw new Error(reason);
        }
        this.listener.resourceStarted(urn);
        try {
            if (args.type === "command:local:Command") return await this.runCommandResource(urn, args);
            if (!args.custom) return { id: undefined, state: args.inputs };
            return { id: this.physicalId(args), state: this.cloudState(args) };
        } finally {
            this.listener.resourceFinished(urn);
        }
    }

    async call(args: pulumi.runtime.MockCallArgs): Promise<Record<string, unknown>> {
        const inputs = args.inputs as Record<string, unknown>;
        switch (args.token) {
            case "command:local:run": {
                const ev = { name: `run(${String(inputs.command).slice(0, 40)})`, urn: "invoke" };
                collectSecrets(inputs, this.secrets);
                const r = await this.execute(ev, unwrap(inputs) as RunSpec);
                if (r.exitCode !== 0) throw new CommandFailed(`${ev.name} exited ${r.exitCode}: ${redact(failureSummary(r.stdout, r.stderr), this.secrets)}`);
                return { ...inputs, stdout: r.stdout, stderr: r.stderr };
            }
            case "aws:index/getCallerIdentity:getCallerIdentity":
                return { accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/rehearsal`, userId: "AIDAREHEARSAL", id: ACCOUNT };
            case "aws:index/getRegion:getRegion":
                return { name: this.region, region: this.region, id: this.region, endpoint: `ec2.${this.region}.amazonaws.com` };
            case "aws:index/getPartition:getPartition":
                return { partition: "aws", dnsSuffix: "amazonaws.com", id: "aws" };
            case "aws:rds/getInstance:getInstance": {
                const id = String(inputs.dbInstanceIdentifier ?? "vibes-db");
                return {
                    ...inputs,
                    id,
                    dbInstanceIdentifier: id,
                    dbInstanceArn: `arn:aws:rds:${this.region}:${ACCOUNT}:db:${id}`,
                    dbInstanceStatus: "available",
                    engine: "postgres",
                    engineVersion: "15.8",
                    address: `${id}.abcdefghijkl.${this.region}.rds.amazonaws.com`,
                    endpoint: `${id}.abcdefghijkl.${this.region}.rds.amazonaws.com:5432`,
                    port: 5432,
                    multiAz: false,
                    allocatedStorage: 100,
                    storageEncrypted: true,
                    dbClusterIdentifier: "",
                    resourceId: "db-REHEARSAL",
                };
            }
            case "aws:rds/getCluster:getCluster": {
                const id = String(inputs.clusterIdentifier ?? "vibes-cluster");
                return {
                    ...inputs,
                    id,
                    clusterIdentifier: id,
                    arn: `arn:aws:rds:${this.region}:${ACCOUNT}:cluster:${id}`,
                    engine: "aurora-postgresql",
                    engineVersion: "15.8",
                    endpoint: `${id}.cluster-abcdefghijkl.${this.region}.rds.amazonaws.com`,
                    port: 5432,
                    status: "available",
                };
            }
            default:
                return { ...inputs, id: `${args.token.split(":").pop()}-rehearsal` };
        }
    }

    private physicalId(args: pulumi.runtime.MockResourceArgs): string {
        const i = args.inputs as Record<string, unknown>;
        const named = i.dbSnapshotIdentifier ?? i.dbClusterSnapshotIdentifier ?? i.bucket ?? i.name;
        if (typeof named === "string" && named) return named;
        // Auto-naming, as the providers do: logical name plus a random suffix.
        return `${args.name}-${crypto.randomBytes(4).toString("hex")}`;
    }

    private cloudState(args: pulumi.runtime.MockResourceArgs): Record<string, unknown> {
        const i = args.inputs as Record<string, unknown>;
        const id = this.physicalId(args);
        const [pkg, mod] = args.type.split(":");
        const service = (mod ?? "").split("/")[0];
        const now = new Date().toISOString();
        switch (args.type) {
            case "aws:s3/bucket:Bucket":
            case "aws:s3/bucketV2:BucketV2":
                return {
                    ...i,
                    bucket: id,
                    arn: `arn:aws:s3:::${id}`,
                    bucketDomainName: `${id}.s3.amazonaws.com`,
                    bucketRegionalDomainName: `${id}.s3.${this.region}.amazonaws.com`,
                    region: this.region,
                };
            case "aws:rds/snapshot:Snapshot":
                return {
                    ...i,
                    dbSnapshotIdentifier: id,
                    dbSnapshotArn: `arn:aws:rds:${this.region}:${ACCOUNT}:snapshot:${id}`,
                    status: "available",
                    snapshotType: "manual",
                    engine: "postgres",
                    encrypted: true,
                    allocatedStorage: 100,
                };
            case "aws:rds/clusterSnapshot:ClusterSnapshot":
                return {
                    ...i,
                    dbClusterSnapshotIdentifier: id,
                    dbClusterSnapshotArn: `arn:aws:rds:${this.region}:${ACCOUNT}:cluster-snapshot:${id}`,
                    status: "available",
                    snapshotType: "manual",
                    engine: "aurora-postgresql",
                    storageEncrypted: true,
                };
            case "aws:sns/topic:Topic":
                return { ...i, name: id, arn: `arn:aws:sns:${this.region}:${ACCOUNT}:${id}` };
            case "aws:iam/role:Role":
                return { ...i, name: id, arn: `arn:aws:iam::${ACCOUNT}:role/${id}`, uniqueId: "AROAREHEARSAL", createDate: now };
            default:
                if (pkg !== "aws") return { ...i, id };
                return { ...i, arn: `arn:aws:${service}:${this.region}:${ACCOUNT}:${id}` };
        }
    }

    private async runCommandResource(urn: string, args: pulumi.runtime.MockResourceArgs): Promise<pulumi.runtime.MockResourceResult> {
        const inputs = args.inputs as Record<string, unknown>;
        const hadSecret = JSON.stringify(inputs).includes(SECRET_SIG);
        collectSecrets(this.rawInputs.get(`${args.type}::${args.name}`) ?? inputs, this.secrets);
        const spec = unwrap(inputs) as unknown as RunSpec & { create?: string; delete?: string };
        const ev = { name: args.name, urn, deleteCommand: spec.delete ? redact(spec.delete, this.secrets) : undefined };
        if (!spec.create) {
            // A Command without `create` does nothing on create, in the provider too.
            this.listener.commandStarted(ev);
            this.listener.commandFinished(ev, { exitCode: 0, stdout: "", stderr: "", ms: 0 });
            return { id: `${args.name}-id`, state: { ...inputs, stdout: "", stderr: "" } };
        }
        const r = await this.execute(ev, { ...spec, command: spec.create });
        if (r.exitCode !== 0) {
            const message = `${args.name}: command exited with code ${r.exitCode}: ${redact(failureSummary(r.stdout, r.stderr), this.secrets)}`;
            this.failure = { urn, name: args.name, message };
            this.listener.commandFinished(ev, r, message);
            throw new CommandFailed(message);
        }
        this.listener.commandFinished(ev, r);
        // The provider marks stdout/stderr secret whenever an input is secret.
        const wrap = (s: string) => (hadSecret ? asSecret(s) : s);
        return { id: `${args.name}-${crypto.randomBytes(4).toString("hex")}`, state: { ...inputs, stdout: wrap(r.stdout), stderr: wrap(r.stderr) } };
    }

    private execute(ev: CommandEvent, spec: RunSpec): Promise<CommandResult> {
        const [shell, ...shellArgs] = spec.interpreter && spec.interpreter.length > 0 ? spec.interpreter : ["/bin/sh", "-c"];
        const started = Date.now();
        this.listener.commandStarted(ev);
        return new Promise((resolve) => {
            const child = spawn(shell, [...shellArgs, spec.command], {
                cwd: spec.dir || this.root,
                // The provider's process environment plus the resource's own, as the command provider does.
                env: { ...process.env, ...(spec.environment ?? {}) },
                stdio: ["pipe", "pipe", "pipe"],
            });
            let stdout = "";
            let stderr = "";
            let partial = "";
            child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
            child.stderr.on("data", (d: Buffer) => {
                const text = d.toString();
                stderr += text;
                const lines = (partial + text).split("\n");
                partial = lines.pop() ?? "";
                for (const line of lines) this.listener.commandOutput(ev, redact(line, this.secrets));
            });
            child.stdin.on("error", () => {
                // a command that does not read its stdin closes the pipe early: not an error
            });
            child.stdin.end(spec.stdin ?? "");
            let finished = false;
            const finish = (exitCode: number, extra = "") => {
                if (finished) return;
                finished = true;
                if (partial) this.listener.commandOutput(ev, redact(partial, this.secrets));
                resolve({
                    exitCode,
                    stdout: stdout.replace(/\r?\n$/, ""),
                    stderr: (stderr + extra).replace(/\r?\n$/, ""),
                    ms: Date.now() - started,
                });
            };
            child.on("error", (e) => finish(127, `\n${e.message}`));
            child.on("close", (code, signal) => finish(code ?? (signal ? 128 : 1), signal ? `\nkilled by ${signal}` : ""));
        });
    }
}
