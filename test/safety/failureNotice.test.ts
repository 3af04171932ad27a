// The error hook on cloud resources (safety/failureNotice.ts): the engine calls it when a
// resource's create/update/delete fails; here its callback is called the way the engine would.
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { FAILURE_NOTICE_HOOK, FailureNotice, stageOf } from "../../safety/failureNotice";
import { acceptErrorHooks } from "../../rehearsal/mocks";
import { startReceiver } from "../support/receiver";

const TOKEN = "T0K3N-in-path-7c1e";
const BUCKET_URN = "urn:pulumi:prod::vibes-db-deploy::vibes:backup:BackupVault$aws:s3/bucket:Bucket::backup-vault-bucket";

const receiver = (status: number) => startReceiver((_req, res) => res.writeHead(status).end());

/** A FailureNotice for prod whose channel is the receiver's webhook, once the secret resolved. */
async function noticeTo(url: string): Promise<FailureNotice> {
  await pulumi.runtime.setMocks({ newResource: (a) => ({ id: `${a.name}-id`, state: a.inputs }), call: (a) => a.inputs }, "vibes-db-deploy", "prod", false);
  acceptErrorHooks(pulumi.runtime.getMonitor());
  const notice = new FailureNotice("prod", "001_uuid_schema_migration");
  const copied = notice.sendTo({ VIBES_STACK: "prod", VIBES_NOTIFY_WEBHOOK_URL: pulumi.secret(`${url}/hooks/${TOKEN}`) });
  await new Promise((resolve) => copied.apply(resolve));
  return notice;
}

const bucketDenied: pulumi.ErrorHookArgs = {
  urn: BUCKET_URN,
  id: "",
  name: "backup-vault-bucket",
  type: "aws:s3/bucket:Bucket",
  newInputs: { bucket: "vibes-backups-prod-eu-west-1" },
  failedOperation: "create",
  errors: ["creating S3 Bucket (vibes-backups-prod-eu-west-1): operation error S3: CreateBucket, StatusCode: 403, api error AccessDenied: Access Denied"],
};

describe("failure notice for cloud resources", () => {
  it("sends one failure notice naming the stage and the error, without the webhook's token, and declines the retry", async () => {
    const hook = await receiver(200);
    try {
      const notice = await noticeTo(hook.url);
      assert.equal(notice.hook.name, FAILURE_NOTICE_HOOK);
      const retry = await notice.hook.callback(bucketDenied);
      assert.equal(retry, false);
      assert.equal(hook.got.length, 1);
      const n = JSON.parse(hook.got[0].body);
      assert.deepEqual([n.event, n.stack, n.revision, n.failedStep], ["failure", "prod", "001_uuid_schema_migration", "BackupVault/backup-vault-bucket"]);
      assert.match(n.error, /^create of aws:s3\/bucket:Bucket failed: .*api error AccessDenied: Access Denied$/);
      assert.match(n.text, /prod: deployment of revision 001_uuid_schema_migration FAILED at stage BackupVault\/backup-vault-bucket: create of aws:s3\/bucket:Bucket failed: .*AccessDenied/);
      assert.ok(!hook.got[0].body.includes(TOKEN), "the webhook URL's token stays out of the notice");
    } finally {
      await hook.close();
    }
  });

  it("redacts the webhook URL from the error, and a refused notice neither throws nor logs the URL", async () => {
    const hook = await receiver(500);
    const logged: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => logged.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      const notice = await noticeTo(hook.url);
      const retry = await notice.hook.callback({ ...bucketDenied, errors: [`dial ${hook.url}/hooks/${TOKEN}: refused`] });
      assert.equal(retry, false);
      assert.equal(hook.got.length, 1);
      assert.ok(!hook.got[0].body.includes(TOKEN), hook.got[0].body);
      assert.match(logged.join(""), /failure notification to webhook not sent: webhook answered HTTP 500/);
      assert.ok(!logged.join("").includes(TOKEN), logged.join(""));
    } finally {
      process.stderr.write = write;
      await hook.close();
    }
  });

  it("names the stage by the resource's component, or by the resource alone at the top", () => {
    assert.equal(stageOf("urn:pulumi:test::p::vibes:monitoring:DatabaseMonitoring$postgresql:index/role:Role::database-monitoring-role", "database-monitoring-role"),
      "DatabaseMonitoring/database-monitoring-role");
    assert.equal(stageOf("urn:pulumi:test::p::aws:sns/topic:Topic::alarms", "alarms"), "alarms");
  });
});
