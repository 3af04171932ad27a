// Deployment notifications: start, success and failure, to the stack's SNS topic
// (VIBES_NOTIFY_TOPIC_ARN) and/or a webhook (VIBES_NOTIFY_WEBHOOK_URL, JSON POST). Sending is
// bounded in time; every text that leaves the process goes through redact() first.
import { redact, secretsIn } from "../../../common/redact";

export type NotifyEvent = "start" | "success" | "failure";

export interface NotifyDetails {
  /** Validation summary (success) or plan summary (start). */
  summary?: string;
  /** The stage (hook step) that failed. */
  failedStep?: string;
  error?: string;
}

export interface Notification {
  event: NotifyEvent;
  project: "vibes-db-deploy";
  stack: string;
  revision: string;
  at: string;
  summary?: string;
  failedStep?: string;
  error?: string;
  /** One human-readable line: the SNS email body and the chat text. */
  text: string;
}

export interface NotifyResult {
  sent: string[];
  /** Destinations that failed, with the (redacted) reason; never thrown. */
  failed: { target: string; error: string }[];
  skipped?: string;
}

const DEFAULT_TIMEOUT_MS = 5_000;
export function buildNotification(event: NotifyEvent, details: NotifyDetails, env: NodeJS.ProcessEnv, now = new Date()): Notification {
  const stack = env.VIBES_STACK || "(unknown stack)";
  const revision = env.VIBES_TARGET_REVISION || "(unknown revision)";
  const clean = (s: string | undefined) => (s === undefined ? undefined : redact(s, secretsIn(env)).slice(0, 2_000));
  const summary = clean(details.summary);
  const error = clean(details.error);
  const failedStep = clean(details.failedStep);
  const head = `vibes-db-deploy ${stack}: deployment of revision ${revision}`;
  const text =
    event === "start"
      ? `${head} started${summary ? `: ${summary}` : ""}`
      : event === "success"
        ? `${head} succeeded${summary ? `; validation: ${summary}` : ""}`
        : `${head} FAILED at stage ${failedStep ?? "(unknown)"}: ${error ?? "(no error message)"}`;
  return { event, project: "vibes-db-deploy", stack, revision, at: now.toISOString(), summary, failedStep, error, text };
}

function regionOfTopic(arn: string): string | undefined {
  return /^arn:[^:]+:sns:([^:]+):/.exec(arn)?.[1];
}

async function publishSns(n: Notification, topicArn: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  // Loaded only when a topic is set: most steps notify nothing, and the SDK is slow to require.
  const { PublishCommand, SNSClient } = await import("@aws-sdk/client-sns");
  const client = new SNSClient({
    region: regionOfTopic(topicArn) ?? env.AWS_REGION ?? "us-east-1",
    endpoint: env.VIBES_SNS_ENDPOINT || undefined,
    maxAttempts: 2,
    // Only when the step's env carries keys; otherwise the SDK's usual chain (role, profile).
    credentials:
      env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
        ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN }
        : undefined,
  });
  try {
    // SNS subjects are ASCII, at most 100 characters, no newlines.
    const subject = `[vibes-db-deploy] ${n.stack}: ${n.event}`.replace(/[^\x20-\x7e]/g, "?").slice(0, 100);
    await client.send(
      new PublishCommand({ TopicArn: topicArn, Subject: subject, Message: `${n.text}\n\n${JSON.stringify(n, null, 2)}` }),
      { abortSignal: AbortSignal.timeout(timeoutMs) },
    );
  } finally {
    client.destroy();
  }
}

async function postWebhook(n: Notification, url: string, timeoutMs: number): Promise<void> {
  // Loaded only when a webhook is set: every step imports this module at start-up.
  const { HttpUnreachable, request } = await import("./http");
  let response;
  try {
    response = await request(url, "", { method: "POST", json: n, timeoutMs });
  } catch (err) {
    // Not the request's own message: it names the URL, which carries the webhook's token.
    if (err instanceof HttpUnreachable) throw new Error(`webhook unreachable: ${err.reason}`);
    throw err;
  }
  if (response.status < 200 || response.status >= 300) throw new Error(`webhook answered HTTP ${response.status}`);
}

/** Sends to every configured destination; never throws (a notification must not fail or mask a
 * deployment), reports what went where. */
export async function notify(event: NotifyEvent, details: NotifyDetails, env: NodeJS.ProcessEnv, opts: { timeoutMs?: number } = {}): Promise<NotifyResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const n = buildNotification(event, details, env);
  const jobs: { target: string; send: () => Promise<void> }[] = [];
  const topicArn = env.VIBES_NOTIFY_TOPIC_ARN?.trim();
  const webhook = env.VIBES_NOTIFY_WEBHOOK_URL?.trim();
  if (topicArn) jobs.push({ target: `sns:${topicArn}`, send: () => publishSns(n, topicArn, env, timeoutMs) });
  // The webhook URL is a credential itself (chat webhooks carry their token in the path).
  if (webhook) jobs.push({ target: "webhook", send: () => postWebhook(n, webhook, timeoutMs) });
  if (jobs.length === 0) return { sent: [], failed: [], skipped: "neither VIBES_NOTIFY_TOPIC_ARN nor VIBES_NOTIFY_WEBHOOK_URL is set" };
  const results = await Promise.allSettled(jobs.map((j) => j.send()));
  const result: NotifyResult = { sent: [], failed: [] };
  results.forEach((r, i) => {
    if (r.status === "fulfilled") result.sent.push(jobs[i].target);
    else result.failed.push({ target: jobs[i].target, error: redact(r.reason instanceof Error ? r.reason.message : String(r.reason), secretsIn(env)) });
  });
  return result;
}

/** For the CLI dispatcher: report a failed step. Best-effort and bounded; never throws, so the
 * step's own error stays the one the operator and Pulumi see. `notify` steps are skipped: a
 * failing notification must not notify about itself. */
export async function notifyFailure(step: string, error: unknown, env: NodeJS.ProcessEnv, opts: { timeoutMs?: number } = {}): Promise<void> {
  if (step === "notify") return;
  try {
    const message = error instanceof Error ? error.message : String(error);
    const next = (error as { next?: unknown } | null)?.next;
    const result = await notify("failure", { failedStep: step, error: typeof next === "string" ? `${message}. next: ${next}` : message }, env, opts);
    for (const f of result.failed) process.stderr.write(`[notify] failure notification to ${f.target} not sent: ${f.error}\n`);
  } catch (err) {
    process.stderr.write(`[notify] failure notification not sent: ${redact(err instanceof Error ? err.message : String(err), secretsIn(env))}\n`);
  }
}
