// DeploymentGates and Monitoring under mocks, with the real stack files (test/program/harness.ts
// merges Pulumi.yaml defaults and Pulumi.<stack>.yaml) plus the safety keys as overrides.
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { local } from "@pulumi/command";
import { isSecretWrapper, stackConfig, TEST_SECRETS } from "../program/harness";
import { DeployConfig, loadConfig, PROJECT } from "../../config";
import { loadSafetyConfig, SafetyConfig } from "../../safety/config";

interface Seen {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  provider?: string;
}


async function setup(stack: string, testOutputs: Record<string, unknown>, overrides: Record<string, string> = {}, preview = true) {
  const seen: Seen[] = [];
  await pulumi.runtime.setMocks({
    newResource(args) {
      seen.push({ type: args.type, name: args.name, inputs: args.inputs, provider: args.provider });
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === "pulumi:pulumi:StackReference") state.outputs = testOutputs;
      if (args.type === "command:local:Command") state.stdout = JSON.stringify({ ok: true, step: String(args.inputs.create).split(" ")[1] });
      if (args.type === "aws:sns/topic:Topic") state.arn = `arn:aws:sns:eu-west-1:123456789012:${args.inputs.name}`;
      return { id: `${args.name}-id`, state };
    },
    call: (args) => args.inputs,
  }, PROJECT, stack, preview);
  const { config: raw, secretKeys } = stackConfig(stack, overrides);
  const full = (k: string) => (k.includes(":") ? k : `${PROJECT}:${k}`);
  const source = { get: (k: string) => raw[full(k)], isSecret: (k: string) => secretKeys.includes(full(k)) };
  const problems: string[] = [];
  const config: DeployConfig = loadConfig(source, stack);
  const safety: SafetyConfig = loadSafetyConfig(source, stack, (key, problem) => problems.push(`${key}: ${problem}`));
  assert.deepEqual(problems, []);
  return { seen, config, safety };
}

/** Lets registrations settle; returns the errors the SDK raised as unhandled rejections. */
async function settle(): Promise<string[]> {
  const errors: string[] = [];
  const saved = process.listeners("unhandledRejection");
  process.removeAllListeners("unhandledRejection");
  process.on("unhandledRejection", (e) => errors.push(e instanceof Error ? e.message : String(e)));
  await new Promise((r) => setTimeout(r, 300));
  process.removeAllListeners("unhandledRejection");
  for (const l of saved) process.on("unhandledRejection", l);
  return errors;
}

// Loaded after setMocks, as a program would be.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const gatesModule = () => require("../../components/DeploymentGates") as typeof import("../../components/DeploymentGates");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hookCommandModule = () => require("../../hookCommand") as typeof import("../../hookCommand");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const monitoringModule = () => require("../../components/Monitoring") as typeof import("../../components/Monitoring");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const databaseMonitoringModule = () => require("../../components/DatabaseMonitoring") as typeof import("../../components/DatabaseMonitoring");

const SATURDAY_NIGHT = new Date("2024-01-06T23:00:00Z");
const WEDNESDAY_NOON = new Date("2024-01-03T12:00:00Z");

describe("deployment gates under mocks (prod stack file)", () => {
  function testStackOutputs(config: DeployConfig, changes: Record<string, unknown> = {}) {
    return {
      schemaRevisionAfter: config.migration.targetRevision,
      migrationFilesSha256: config.migration.filesSha256,
      validated: true,
      validationSummary: "12/12 checks passed",
      ...changes,
    };
  }

  async function plan(testChanges: Record<string, unknown> | ((c: DeployConfig) => Record<string, unknown>), overrides: Record<string, string> = {}, now = SATURDAY_NIGHT) {
    // The stack reference's outputs need the config's checksum: read the config once first.
    const probe = await setup("prod", {}, overrides);
    const outputs = testStackOutputs(probe.config, typeof testChanges === "function" ? testChanges(probe.config) : testChanges);
    const { seen, config, safety } = await setup("prod", outputs, overrides);
    const { DeploymentGates } = gatesModule();
    const { stepRunner } = hookCommandModule();
    const deployment = { stack: config.stack, targetRevision: config.migration.targetRevision, migrationFilesSha256: config.migration.filesSha256 };
    const gates = new DeploymentGates("gates", { steps: stepRunner(config), deployment, safety, now });
    // Stands for the first mutating stage (maintenance on).
    new local.Command("maintenance-on", { create: "bin/vibes-hooks maintenance on" }, { dependsOn: [gates] });
    const errors = await settle();
    return { seen, config, gates, errors, names: seen.map((s) => s.name) };
  }

  it("reads the test stack through a StackReference named in config", async () => {
    const { seen } = await plan({});
    const ref = seen.find((s) => s.type === "pulumi:pulumi:StackReference");
    assert.equal(ref?.inputs.name, "organization/vibes-db-deploy/test");
  });

  it("lets the revision test validated through, window-check first, then the start notification", async () => {
    const { names, errors, seen } = await plan({});
    assert.deepEqual(errors, []);
    assert.deepEqual(names.filter((n) => n !== "gates-test-stack" && n !== "gates"), ["gates-window-check", "gates-notify-start", "maintenance-on"]);
    const start = seen.find((s) => s.name === "gates-notify-start");
    assert.match(String(start?.inputs.create), /^bin\/vibes-hooks notify start --summary 'promotion: validated on test; window sat,sun 22:00-02:00 UTC/);
    const check = seen.find((s) => s.name === "gates-window-check");
    assert.equal(check?.inputs.create, `bin/vibes-hooks window-check --window '{"days":["sat","sun"],"start":"22:00","end":"02:00"}'`);
  });

  it("refuses at preview a revision test has not validated: no mutating stage is planned", async () => {
    const { names, errors } = await plan({ schemaRevisionAfter: "0000_initial", migrationFilesSha256: "f".repeat(64) });
    assert.ok(!names.includes("gates-notify-start"), names.join());
    assert.ok(!names.includes("maintenance-on"), names.join());
    const refusal = errors.find((e) => e.includes("promotion gate refused"));
    assert.ok(refusal, `no refusal among ${JSON.stringify(errors)}`);
    assert.match(refusal, /test is at revision 0000_initial, prod targets 001_uuid_schema_migration/);
    assert.match(refusal, /f{64}/);
    assert.match(refusal, /deploy the same revision and migration files to the test stack first/);
  });

  it("refuses when test ran the revision but its validation failed", async () => {
    const { names, errors } = await plan({ validated: false, validationSummary: "2 checks failed" });
    assert.ok(!names.includes("maintenance-on"));
    assert.ok(errors.some((e) => /validation did not pass \(validated: false, summary: 2 checks failed\)/.test(e)));
  });

  it("lets an audited override through and exposes it as an output", async () => {
    const override = { reason: "data loss hotfix", approvedBy: "cto@vibes.example", ticket: "OPS-9" };
    const { names, errors, gates, seen } = await plan({ schemaRevisionAfter: "0000_initial" }, { promotionOverride: JSON.stringify(override) });
    assert.deepEqual(errors, []);
    assert.ok(names.includes("maintenance-on"));
    assert.deepEqual(await new Promise((r) => gates.promotionOverride.apply(r)), override);
    const start = String(seen.find((s) => s.name === "gates-notify-start")?.inputs.create);
    assert.match(start, /--summary 'promotion override set \(reason "data loss hotfix"/);
    // Later test deployments change test's outputs, not this input: nothing re-runs alone, also
    // once test has validated the revision while the override is still set.
    for (const later of [{ schemaRevisionAfter: "0000_initial", migrationFilesSha256: "e".repeat(64) }, {}]) {
      const run = await plan(later, { promotionOverride: JSON.stringify(override) });
      assert.equal(String(run.seen.find((s) => s.name === "gates-notify-start")?.inputs.create), start);
    }
  });

  it("outside the window, preview still plans; window-check carries the override when one is set", async () => {
    const outside = await plan({}, {}, WEDNESDAY_NOON);
    assert.deepEqual(outside.errors, []);
    assert.ok(outside.names.includes("gates-window-check"));
    const override = { reason: "sev1", approvedBy: "cto", ticket: "OPS-10" };
    const overridden = await plan({}, { maintenanceWindowOverride: JSON.stringify(override) }, WEDNESDAY_NOON);
    const check = overridden.seen.find((s) => s.name === "gates-window-check");
    assert.match(String(check?.inputs.create), /--override '\{"reason":"sev1","approvedBy":"cto","ticket":"OPS-10"\}'$/);
  });

  it("passes the window's minRemaining on to window-check; a malformed one fails the plan naming the key", async () => {
    const window = { days: ["sat", "sun"], start: "22:00", end: "02:00", minRemaining: "1h" };
    const { errors, seen } = await plan({}, { maintenanceWindow: JSON.stringify(window) });
    assert.deepEqual(errors, []);
    assert.equal(seen.find((s) => s.name === "gates-window-check")?.inputs.create, `bin/vibes-hooks window-check --window '${JSON.stringify(window)}'`);
    await assert.rejects(plan({}, { maintenanceWindow: JSON.stringify({ ...window, minRemaining: "soon" }) }),
      /invalid configuration for stack prod[\s\S]*maintenanceWindow\.minRemaining must be a duration like "45m"/);
  });

  it("rejects prod without a promotion gate or monitoring, naming the keys", async () => {
    await setup("test", {});
    const { config: raw } = stackConfig("prod", { promotionTestStack: "", monitoringEnabled: "false" });
    const problems: string[] = [];
    loadSafetyConfig({ get: (k) => raw[`${PROJECT}:${k}`], isSecret: () => true }, "prod", (key, problem, fix) => problems.push(`${key}: ${problem}; ${fix}`));
    assert.ok(problems.some((p) => /^promotionTestStack: is required on prod.*pulumi config set promotionTestStack organization\/vibes-db-deploy\/test --stack prod/.test(p)), problems.join("\n"));
    assert.ok(problems.some((p) => /^monitoringEnabled: must be true on prod/.test(p)));
  });
});

describe("monitoring under mocks (prod stack file)", () => {
  async function build() {
    const { seen, config, safety } = await setup("prod", {}, {}, false);
    const m = safety.monitoring!;
    const monitoring = new (monitoringModule().Monitoring)("monitoring", {
      stack: config.stack,
      target: config.rds!,
      thresholds: m.thresholds,
      alarmEmails: m.alarmEmails,
    });
    const databaseMonitoring = new (databaseMonitoringModule().DatabaseMonitoring)("database-monitoring", {
      databaseUrl: config.database.url,
      databasePassword: config.database.password,
      tables: config.tables,
      roleName: m.roleName,
      rolePassword: m.rolePassword,
    });
    await settle();
    return { seen, monitoring, databaseMonitoring };
  }

  it("alarms on the RDS instance with the stack's thresholds in CloudWatch units", async () => {
    const { seen } = await build();
    const alarms = Object.fromEntries(seen.filter((s) => s.type === "aws:cloudwatch/metricAlarm:MetricAlarm").map((s) => [s.inputs.metricName, s.inputs]));
    assert.deepEqual(Object.keys(alarms).sort(), ["CPUUtilization", "DatabaseConnections", "FreeStorageSpace", "FreeableMemory", "ReadLatency", "WriteLatency"]);
    const expect: Record<string, [number, string, string]> = {
      CPUUtilization: [75, "GreaterThanThreshold", "Average"],
      FreeableMemory: [536870912, "LessThanThreshold", "Minimum"],
      FreeStorageSpace: [21474836480, "LessThanThreshold", "Minimum"],
      DatabaseConnections: [180, "GreaterThanThreshold", "Maximum"],
      ReadLatency: [0.025, "GreaterThanThreshold", "Average"], // 25 ms in seconds
      WriteLatency: [0.04, "GreaterThanThreshold", "Average"],
    };
    for (const [metric, [threshold, comparison, statistic]] of Object.entries(expect)) {
      const a = alarms[metric];
      assert.deepEqual([a.threshold, a.comparisonOperator, a.statistic], [threshold, comparison, statistic], metric);
      assert.deepEqual(a.dimensions, { DBInstanceIdentifier: "vibes-prod" });
      assert.deepEqual([a.namespace, a.evaluationPeriods, a.period], ["AWS/RDS", 3, 60]);
      assert.deepEqual(a.alarmActions, ["arn:aws:sns:eu-west-1:123456789012:vibes-prod-alarms"]);
      assert.deepEqual(a.okActions, a.alarmActions);
    }
    assert.equal(alarms.ReadLatency.treatMissingData, "notBreaching");
    assert.equal(alarms.FreeStorageSpace.treatMissingData, "breaching");
  });

  it("watches the cluster and FreeLocalStorage on Aurora", async () => {
    const { alarmSpecs } = monitoringModule();
    const specs = alarmSpecs("cluster", { cpuUtilizationPercent: 80, freeableMemoryBytes: 1, freeStorageBytes: 2, databaseConnections: 3, readLatencyMs: 1500, writeLatencyMs: 5, evaluationPeriods: 1, periodSeconds: 60 });
    assert.equal(specs.find((s) => s.key === "free-storage")?.metric, "FreeLocalStorage");
    assert.equal(specs.find((s) => s.key === "read-latency")?.threshold, 1.5);
  });

  it("subscribes each configured email to the alarm topic", async () => {
    const { seen } = await build();
    const subs = seen.filter((s) => s.type === "aws:sns/topicSubscription:TopicSubscription").map((s) => [s.inputs.protocol, s.inputs.endpoint, s.inputs.topic]);
    assert.deepEqual(subs, [
      ["email", "dba@vibes.example", "arn:aws:sns:eu-west-1:123456789012:vibes-prod-alarms"],
      ["email", "oncall@vibes.example", "arn:aws:sns:eu-west-1:123456789012:vibes-prod-alarms"],
    ]);
  });

  it("creates pg_stat_statements and a read-only monitoring role through an explicit non-superuser TLS provider", async () => {
    const { seen, monitoring, databaseMonitoring } = await build();
    const provider = seen.find((s) => s.type === "pulumi:providers:postgresql");
    assert.deepEqual(
      [provider?.inputs.host, provider?.inputs.port, provider?.inputs.database, provider?.inputs.username, provider?.inputs.superuser, provider?.inputs.sslmode],
      // Provider config reaches the engine as strings.
      ["vibes-prod.placeholder.eu-west-1.rds.amazonaws.com", "5432", "vibes_prod", "vibes", "false", "verify-full"],
    );
    const pg = seen.filter((s) => s.type.startsWith("postgresql:"));
    for (const r of pg) assert.match(String(r.provider), /database-monitoring-postgresql/, `${r.name} uses the explicit provider`);
    const byType = (t: string) => pg.filter((s) => s.type === t).map((s) => s.inputs);
    assert.deepEqual(byType("postgresql:index/extension:Extension").map((e) => e.name), ["pg_stat_statements"]);
    const [role] = byType("postgresql:index/role:Role");
    assert.deepEqual([role.name, role.login, role.superuser], ["vibes_monitor", true, undefined]);
    // Both passwords reach the engine as secrets (encrypted in state, masked in logs).
    assert.ok(isSecretWrapper(role.password) && role.password.value === TEST_SECRETS.monitoringRolePassword, JSON.stringify(role.password));
    assert.ok(isSecretWrapper(provider?.inputs.password), "provider password is a secret");
    assert.deepEqual(byType("postgresql:index/grantRole:GrantRole").map((g) => [g.role, g.grantRole]), [["vibes_monitor", "pg_monitor"]]);
    const grants = byType("postgresql:index/grant:Grant").map((g) => [g.objectType, g.schema, g.privileges, g.objects ?? null, g.role]);
    assert.deepEqual(grants, [
      ["schema", "public", ["USAGE"], null, "vibes_monitor"],
      ["table", "public", ["SELECT"], ["users", "journals", "tags", "journal_tags"], "vibes_monitor"],
    ]);
    assert.deepEqual(await new Promise((r) => monitoring.alarmNames.apply(r)), [
      "vibes-prod-cpu", "vibes-prod-freeable-memory", "vibes-prod-free-storage", "vibes-prod-connections", "vibes-prod-read-latency", "vibes-prod-write-latency",
    ]);
    assert.equal(await new Promise((r) => databaseMonitoring.monitoringRoleName.apply(r)), "vibes_monitor");
  });
});

describe("notification environment", () => {
  it("gives every step the stack, the topic and the webhook URL as a secret", async () => {
    const { notifyEnvironment } = await import("../../safety/config");
    await setup("test", {});
    const env = notifyEnvironment("prod", { notifyTopicArn: "arn:aws:sns:eu-west-1:1:vibes-prod-alarms", notifyWebhookUrl: pulumi.secret("https://hooks.example/T0K3N") });
    assert.deepEqual(Object.keys(env), ["VIBES_STACK", "VIBES_NOTIFY_TOPIC_ARN", "VIBES_NOTIFY_WEBHOOK_URL"]);
    assert.equal(await pulumi.isSecret(pulumi.output(env.VIBES_NOTIFY_WEBHOOK_URL)), true);
    assert.deepEqual(notifyEnvironment("dev", {}), { VIBES_STACK: "dev" });
  });
});
