import * as assert from "node:assert/strict";
import { notify, notifyFailure } from "../../hooks/lib/app/notify";
import { redact, secretsIn } from "../../common/redact";
import { run as notifyStep } from "../../hooks/steps/notify";
import { StepError } from "../../hooks/lib/errors";
import { startReceiver, type Receiver } from "../support/receiver";

/** A local receiver answering `status` (and SNS's Publish XML). */
const receiver = (status = 200) => startReceiver((_req, res) => {
  res.writeHead(status, { "content-type": "text/xml" });
  res.end(
    '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId></PublishResult>' +
      "<ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>",
  );
});

const PASSWORD = "s3cr3t-Pa55word";
const TOKEN = "admin-token-XYZ123";

function baseEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    VIBES_STACK: "prod",
    VIBES_TARGET_REVISION: "001_uuid_schema_migration",
    VIBES_DB_PASSWORD: PASSWORD,
    VIBES_ADMIN_TOKEN: TOKEN,
    DATABASE_URL: "postgresql://vibes@db.internal:5432/vibes",
    ...extra,
  };
}

function assertNoSecret(text: string, ...secrets: string[]) {
  for (const s of secrets) assert.ok(!text.includes(s), `message leaks ${s}: ${text}`);
}

describe("notifications", () => {
  let hook: Receiver;
  beforeEach(async () => (hook = await receiver()));
  afterEach(async () => hook.close());

  it("posts start and success to the webhook with stack, revision and validation summary", async () => {
    const env = baseEnv({ VIBES_NOTIFY_WEBHOOK_URL: `${hook.url}/hooks/T0K3N-in-path` });
    const started = await notifyStep(["start", "--summary", "preflight ok"], env);
    assert.deepEqual(started.sent, ["webhook"]);
    await notifyStep(["success", "--summary", "schema 8/8, data 4/4 checks passed"], env);
    assert.equal(hook.got.length, 2);
    const [start, success] = hook.got.map((g) => JSON.parse(g.body));
    assert.equal(hook.got[0].headers["content-type"], "application/json");
    assert.deepEqual([start.event, start.stack, start.revision], ["start", "prod", "001_uuid_schema_migration"]);
    assert.equal(success.event, "success");
    assert.equal(success.summary, "schema 8/8, data 4/4 checks passed");
    assert.match(success.text, /prod: deployment of revision 001_uuid_schema_migration succeeded; validation: schema 8\/8/);
  });

  it("reports a failing stage with its error and next step, redacting secrets", async () => {
    const env = baseEnv({ VIBES_NOTIFY_WEBHOOK_URL: `${hook.url}/hooks/T0K3N-in-path` });
    const error = new StepError(
      `migrate failed: connection to postgresql://vibes:${PASSWORD}@db.internal/vibes refused; token ${TOKEN}`,
      "restore the backup with vibes-hooks restore",
    );
    await notifyFailure("migrate", error, env);
    assert.equal(hook.got.length, 1);
    const body = hook.got[0].body;
    const msg = JSON.parse(body);
    assert.deepEqual([msg.event, msg.failedStep], ["failure", "migrate"]);
    assert.match(msg.text, /FAILED at stage migrate: migrate failed: connection to postgresql:\/\/vibes:\*\*\*@db\.internal/);
    assert.match(msg.error, /next: restore the backup/);
    assertNoSecret(body, PASSWORD, TOKEN, "T0K3N-in-path");
  });

  it("never throws and returns within its bound when the destination hangs or fails", async () => {
    const hanging = await startReceiver(() => undefined); // accepts, never answers
    const url = `${hanging.url}/`;
    try {
      const started = Date.now();
      await notifyFailure("validate", new Error("boom"), baseEnv({ VIBES_NOTIFY_WEBHOOK_URL: url }), { timeoutMs: 300 });
      assert.ok(Date.now() - started < 3_000, "notifyFailure must be bounded");
      const failed = await notify("success", {}, baseEnv({ VIBES_NOTIFY_WEBHOOK_URL: "http://127.0.0.1:1/" }), { timeoutMs: 300 });
      assert.deepEqual(failed.sent, []);
      assert.equal(failed.failed.length, 1);
    } finally {
      await hanging.close();
    }
  });

  it("fails the start stage when no destination accepts it, but not the success stage", async () => {
    const down = await receiver(500);
    try {
      const env = baseEnv({ VIBES_NOTIFY_WEBHOOK_URL: down.url });
      await assert.rejects(notifyStep(["start"], env), (e: StepError) => /no notification destination accepted/.test(e.message) && /notifyWebhookUrl/.test(e.next));
      const ok = await notifyStep(["success"], env);
      assert.equal((ok.failed as unknown[]).length, 1);
    } finally {
      await down.close();
    }
  });

  it("publishes to the SNS topic (endpoint override) with the stack in the subject", async () => {
    const env = baseEnv({
      VIBES_NOTIFY_TOPIC_ARN: "arn:aws:sns:eu-west-1:123456789012:vibes-prod-alarms",
      VIBES_SNS_ENDPOINT: hook.url,
      AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
      AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI-secret-key",
    });
    const result = await notify("failure", { failedStep: "smoke", error: `bad token ${TOKEN}` }, env);
    assert.deepEqual(result.failed, []);
    assert.deepEqual(result.sent, ["sns:arn:aws:sns:eu-west-1:123456789012:vibes-prod-alarms"]);
    const form = new URLSearchParams(hook.got[0].body);
    assert.equal(form.get("Action"), "Publish");
    assert.equal(form.get("TopicArn"), "arn:aws:sns:eu-west-1:123456789012:vibes-prod-alarms");
    assert.equal(form.get("Subject"), "[vibes-db-deploy] prod: failure");
    assert.match(form.get("Message") ?? "", /FAILED at stage smoke/);
    assert.match(String(hook.got[0].headers.authorization), /eu-west-1\/sns/); // region taken from the ARN
    assertNoSecret(hook.got[0].body, TOKEN, "wJalrXUtnFEMI-secret-key");
  });

  it("redacts URL credentials and the values of secret-named variables", () => {
    const env = { VIBES_DB_PASSWORD: PASSWORD, SOME_API_TOKEN: "tok-abcdef", VIBES_APP_URL: "http://app" };
    assert.equal(redact(`https://u:${PASSWORD}@h/x and tok-abcdef at http://app`, secretsIn(env)), "https://u:***@h/x and *** at http://app");
  });
});
