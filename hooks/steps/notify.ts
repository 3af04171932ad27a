// `vibes-hooks notify start|success [--summary TEXT]`: the program's first and last stages.
// Failure messages come from the CLI dispatcher (notifyFailure), not from this step.
import { parseStep } from "../lib/args";
import { StepError } from "../lib/errors";
import { notify } from "../lib/app/notify";
import { progress } from "../lib/progress";

export async function run(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Record<string, unknown>> {
  const { values, positionals } = parseStep("notify", args);
  const event = positionals[0];
  const log = progress("notify");
  const result = await notify(event, { summary: values.summary }, env);
  if (result.skipped) log(`nothing sent: ${result.skipped}`);
  for (const f of result.failed) log(`not sent to ${f.target}: ${f.error}`);
  for (const s of result.sent) log(`${event} sent to ${s}`);
  // A start message nobody receives means the failure message would be lost too: stop before
  // anything changes. After success the deployment is done; a lost message only warns.
  if (event === "start" && result.sent.length === 0 && result.failed.length > 0) {
    throw new StepError(
      `no notification destination accepted the start message (${result.failed.map((f) => `${f.target}: ${f.error}`).join("; ")})`,
      "fix notifyTopicArn / notifyWebhookUrl in the stack config (or the network to them) and run pulumi up again",
    );
  }
  return { event, sent: result.sent, failed: result.failed, ...(result.skipped ? { skipped: result.skipped } : {}) };
}
