// The safety keys of the stack configuration (docs/safety.md). config.ts calls loadSafetyConfig
// from loadConfig with its own `bad`, so every problem lands in the one configuration error.
import * as pulumi from "@pulumi/pulumi";
import { Bad, ConfigSource, rawValue, setCommand, stackSecret } from "../configSource";
import { MaintenanceWindow, parseWindow } from "./maintenanceWindow";
import { GateOverride, parseOverride } from "./override";

export interface AlarmThresholds {
  cpuUtilizationPercent: number;
  freeableMemoryBytes: number;
  /** FreeStorageSpace (RDS) or FreeLocalStorage (Aurora). */
  freeStorageBytes: number;
  databaseConnections: number;
  readLatencyMs: number;
  writeLatencyMs: number;
  evaluationPeriods: number;
  periodSeconds: number;
}

export interface SafetyConfig {
  promotion?: { testStack: string; override?: GateOverride };
  maintenanceWindow?: MaintenanceWindow;
  maintenanceWindowOverride?: GateOverride;
  /** Chat/HTTP receiver of deployment notifications (besides the alarm topic); a secret. */
  notifyWebhookUrl?: pulumi.Output<string>;
  /** Not from the stack's config: index.ts derives a config with Monitoring's topic in it. */
  notifyTopicArn?: pulumi.Input<string>;
  monitoring?: {
    alarmEmails: string[];
    thresholds: AlarmThresholds;
    roleName: string;
    rolePassword: pulumi.Output<string>;
  };
}

const THRESHOLD_KEYS: Record<keyof AlarmThresholds, [key: string, min: number, example: string]> = {
  cpuUtilizationPercent: ["alarmCpuUtilizationPercent", 1, "80"],
  freeableMemoryBytes: ["alarmFreeableMemoryBytes", 1, "268435456"],
  freeStorageBytes: ["alarmFreeStorageBytes", 1, "10737418240"],
  databaseConnections: ["alarmDatabaseConnections", 1, "200"],
  readLatencyMs: ["alarmReadLatencyMs", 1, "20"],
  writeLatencyMs: ["alarmWriteLatencyMs", 1, "20"],
  evaluationPeriods: ["alarmEvaluationPeriods", 1, "3"],
  periodSeconds: ["alarmPeriodSeconds", 60, "60"],
};

const FQ_STACK = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const ROLE = /^[a-z_][a-z0-9_]{0,62}$/;

export function loadSafetyConfig(source: ConfigSource, stack: string, bad: Bad): SafetyConfig {
  const raw = (key: string) => rawValue(source, key);
  const setCmd = (key: string, example: string, secret = false) => setCommand(stack, key, example, secret);
  const json = (key: string, example: string): unknown => {
    const v = raw(key);
    if (v === undefined) return undefined;
    try {
      return JSON.parse(v);
    } catch {
      bad(key, "is not JSON", setCmd(key, `'${example}'`));
      return undefined;
    }
  };
  // parseWindow/parseOverride throw messages that already name the key and the fix.
  const checked = <V>(key: string, parse: () => V): V | undefined => {
    try {
      return parse();
    } catch (err) {
      bad(key, (err as Error).message.replace(/^config /, ""), "see docs/safety.md");
      return undefined;
    }
  };
  const secret = (key: string): pulumi.Output<string> | undefined => {
    const v = raw(key);
    return v === undefined ? undefined : stackSecret(source, stack, key, v, bad);
  };

  const safety: SafetyConfig = {};

  const testStack = raw("promotionTestStack");
  if (testStack !== undefined && !FQ_STACK.test(testStack)) {
    bad("promotionTestStack", `must be org/project/stack (got ${JSON.stringify(testStack)})`, setCmd("promotionTestStack", "organization/vibes-db-deploy/test") + " (the org is the literal `organization` on self-managed backends)");
  }
  const promotionOverride = checked("promotionOverride", () => parseOverride(json("promotionOverride", '{"reason":"...","approvedBy":"...","ticket":"..."}'), "promotionOverride"));
  if (testStack !== undefined) safety.promotion = { testStack, override: promotionOverride };
  else if (stack === "prod") bad("promotionTestStack", "is required on prod (prod deploys only what test validated)", setCmd("promotionTestStack", "organization/vibes-db-deploy/test"));
  else if (promotionOverride) bad("promotionOverride", "is set but there is no promotion gate (promotionTestStack is not set)", `pulumi config rm promotionOverride --stack ${stack}`);

  const windowRaw = json("maintenanceWindow", '{"days":["sat","sun"],"start":"22:00","end":"02:00"}');
  if (windowRaw !== undefined) safety.maintenanceWindow = checked("maintenanceWindow", () => parseWindow(windowRaw, "maintenanceWindow"));
  safety.maintenanceWindowOverride = checked("maintenanceWindowOverride", () => parseOverride(json("maintenanceWindowOverride", '{"reason":"...","approvedBy":"...","ticket":"..."}'), "maintenanceWindowOverride"));
  if (safety.maintenanceWindowOverride && windowRaw === undefined) {
    bad("maintenanceWindowOverride", "is set but maintenanceWindow is not", `pulumi config rm maintenanceWindowOverride --stack ${stack}`);
  }

  const webhook = raw("notifyWebhookUrl");
  if (webhook !== undefined && !/^https?:\/\/[^/\s]+/.test(webhook)) bad("notifyWebhookUrl", "must be an http(s) URL", setCmd("notifyWebhookUrl", "https://hooks.example.com/...", true));
  safety.notifyWebhookUrl = secret("notifyWebhookUrl");

  const enabled = raw("monitoringEnabled");
  if (enabled !== undefined && enabled !== "true" && enabled !== "false") bad("monitoringEnabled", `must be true or false (got ${JSON.stringify(enabled)})`, setCmd("monitoringEnabled", "true"));
  if (stack === "prod" && enabled !== "true") bad("monitoringEnabled", "must be true on prod (alarms and the monitoring role)", setCmd("monitoringEnabled", "true"));
  if (enabled === "true") {
    let alarmEmails: string[] = [];
    const emails = json("alarmEmails", '["dba@example.com"]');
    if (!Array.isArray(emails) || emails.length === 0 || !emails.every((e) => typeof e === "string" && EMAIL.test(e))) {
      bad("alarmEmails", `must be a non-empty list of email addresses (got ${JSON.stringify(raw("alarmEmails"))})`, `set it with: pulumi config set --path 'alarmEmails[0]' dba@example.com --stack ${stack} (one entry per address)`);
    } else alarmEmails = emails as string[];
    const thresholds = {} as AlarmThresholds;
    for (const [field, [key, min, example]] of Object.entries(THRESHOLD_KEYS) as [keyof AlarmThresholds, [string, number, string]][]) {
      const v = raw(key);
      if (v === undefined || !/^[0-9]+$/.test(v) || Number(v) < min) {
        bad(key, v === undefined ? "is not set" : `must be an integer >= ${min} (got ${JSON.stringify(v)})`, setCmd(key, example));
      }
      thresholds[field] = Number(v ?? min);
    }
    if (thresholds.periodSeconds % 60 !== 0) bad("alarmPeriodSeconds", "must be a multiple of 60 (RDS publishes one datapoint a minute)", setCmd("alarmPeriodSeconds", "60"));
    if (thresholds.cpuUtilizationPercent > 100) bad("alarmCpuUtilizationPercent", "is a percentage (1-100)", setCmd("alarmCpuUtilizationPercent", "80"));
    const roleName = raw("monitoringRoleName") ?? "";
    if (!ROLE.test(roleName)) bad("monitoringRoleName", `must be a lowercase PostgreSQL role name (got ${JSON.stringify(roleName)})`, setCmd("monitoringRoleName", "vibes_monitor"));
    const rolePassword = secret("monitoringRolePassword");
    if (!rolePassword) bad("monitoringRolePassword", "secret is missing (monitoringEnabled is true)", setCmd("monitoringRolePassword", "<value>", true));
    safety.monitoring = { alarmEmails, thresholds, roleName, rolePassword: rolePassword ?? pulumi.secret("") };
  }
  return safety;
}

/** What every hook step needs to send notifications (the dispatcher reports any failing step):
 * goes into hookEnvironment. The webhook URL carries its token, so it stays a secret. */
export function notifyEnvironment(stack: string, safety: SafetyConfig): Record<string, pulumi.Input<string>> {
  return {
    VIBES_STACK: stack,
    ...(safety.notifyTopicArn !== undefined ? { VIBES_NOTIFY_TOPIC_ARN: safety.notifyTopicArn } : {}),
    ...(safety.notifyWebhookUrl !== undefined ? { VIBES_NOTIFY_WEBHOOK_URL: pulumi.secret(safety.notifyWebhookUrl) } : {}),
  };
}
