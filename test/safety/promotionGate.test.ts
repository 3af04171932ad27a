import * as assert from "node:assert/strict";
import { evaluatePromotion } from "../../safety/promotionGate";
import { parseOverride } from "../../safety/override";

const target = {
  stack: "prod",
  testStack: "organization/vibes-db-deploy/test",
  targetRevision: "001_uuid_schema_migration",
  migrationFilesSha256: "a".repeat(64),
};
const validatedTest = { schemaRevisionAfter: "001_uuid_schema_migration", migrationFilesSha256: "a".repeat(64), validated: true, validationSummary: "12/12 checks passed" };

describe("promotion gate", () => {
  it("allows the revision and files the test stack deployed and validated", () => {
    const d = evaluatePromotion(validatedTest, target);
    assert.deepEqual([d.allowed, d.overridden], [true, false]);
    assert.match(d.message, /deployed and validated revision 001_uuid_schema_migration/);
  });

  it("refuses a revision test has not deployed, naming both revisions, both checksums and what to do", () => {
    const d = evaluatePromotion({ ...validatedTest, schemaRevisionAfter: "0000_initial", migrationFilesSha256: "b".repeat(64) }, target);
    assert.equal(d.allowed, false);
    assert.match(d.message, /test is at revision 0000_initial, prod targets 001_uuid_schema_migration/);
    assert.ok(d.message.includes(`sha256 ${"b".repeat(64)}, prod has ${"a".repeat(64)}`));
    assert.match(d.message, /deploy the same revision and migration files to the test stack first \(pulumi up -s organization\/vibes-db-deploy\/test\)/);
    assert.match(d.message, /promotionOverride/);
  });

  it("refuses the same revision with different migration files", () => {
    const d = evaluatePromotion({ ...validatedTest, migrationFilesSha256: "c".repeat(64) }, target);
    assert.equal(d.allowed, false);
    assert.doesNotMatch(d.message, /test is at revision/);
    assert.match(d.message, /migration files sha256 c{64}/);
  });

  it("refuses when test deployed but did not validate, or never deployed", () => {
    assert.equal(evaluatePromotion({ ...validatedTest, validated: false, validationSummary: "2 checks failed" }, target).allowed, false);
    assert.match(evaluatePromotion({ ...validatedTest, validated: false, validationSummary: "2 checks failed" }, target).message, /validated: false, summary: 2 checks failed/);
    assert.equal(evaluatePromotion({ ...validatedTest, validated: "true" }, target).allowed, false); // only a real boolean
    const never = evaluatePromotion({}, target);
    assert.equal(never.allowed, false);
    assert.match(never.message, /test is at revision \(none\)/);
  });

  it("lets an audited override through and says so", () => {
    const override = parseOverride({ reason: "hotfix for data loss", approvedBy: "cto@vibes", ticket: "OPS-42" }, "promotionOverride");
    const d = evaluatePromotion({}, target, override);
    assert.deepEqual([d.allowed, d.overridden], [true, true]);
    assert.match(d.message, /OVERRIDDEN for prod \(reason "hotfix for data loss", approved by cto@vibes, ticket OPS-42\)/);
  });

  it("rejects an override without reason, approver or ticket", () => {
    assert.throws(() => parseOverride({ reason: " ", approvedBy: "x", ticket: "T-1" }, "promotionOverride"), /promotionOverride needs non-empty reason/);
    assert.throws(() => parseOverride({ reason: "r" }, "promotionOverride"), /needs non-empty approvedBy, ticket/);
    assert.throws(() => parseOverride("yes", "promotionOverride"), /must be an object/);
    assert.throws(() => parseOverride({ reason: "r", approvedBy: "a", ticket: "t", expires: "x" }, "promotionOverride"), /unknown field\(s\) expires/);
    assert.equal(parseOverride(undefined, "promotionOverride"), undefined);
  });
});
