// Promotion gate: prod may only run the mutating stages for a revision and migration files
// that the test stack has already deployed and validated. Pure, so the rule is testable without
// an engine; components/DeploymentGates.ts feeds it the test stack's outputs.
import { GateOverride, describeOverride } from "./override";

/** The test stack's outputs the gate reads (names of index.ts's stack outputs). */
export const TEST_OUTPUT_KEYS = ["schemaRevisionAfter", "migrationFilesSha256", "validated", "validationSummary"] as const;
export type TestStackOutputs = Partial<Record<(typeof TEST_OUTPUT_KEYS)[number], unknown>>;

export interface PromotionTarget {
  /** This stack's name and the test stack's fully qualified name, for the message. */
  stack: string;
  testStack: string;
  targetRevision: string;
  migrationFilesSha256: string;
}

export interface PromotionDecision {
  allowed: boolean;
  overridden: boolean;
  message: string;
}

const show = (v: unknown): string => (v === undefined || v === null || v === "" ? "(none)" : String(v));

export function evaluatePromotion(test: TestStackOutputs, target: PromotionTarget, override?: GateOverride): PromotionDecision {
  const problems: string[] = [];
  if (test.schemaRevisionAfter !== target.targetRevision) {
    problems.push(`test is at revision ${show(test.schemaRevisionAfter)}, ${target.stack} targets ${target.targetRevision}`);
  }
  if (test.migrationFilesSha256 !== target.migrationFilesSha256) {
    problems.push(`test deployed migration files sha256 ${show(test.migrationFilesSha256)}, ${target.stack} has ${target.migrationFilesSha256}`);
  }
  if (test.validated !== true) {
    problems.push(`test's validation did not pass (validated: ${show(test.validated)}, summary: ${show(test.validationSummary)})`);
  }
  const subject = `revision ${target.targetRevision} (migration files sha256 ${target.migrationFilesSha256})`;
  if (problems.length === 0) {
    return { allowed: true, overridden: false, message: `promotion gate: test stack ${target.testStack} deployed and validated ${subject}` };
  }
  const why = problems.join("; ");
  if (override) {
    return {
      allowed: true,
      overridden: true,
      message: `promotion gate OVERRIDDEN for ${target.stack} (${describeOverride(override)}): ${why}`,
    };
  }
  return {
    allowed: false,
    overridden: false,
    message:
      `promotion gate refused ${subject} on ${target.stack}: ${why}. ` +
      `next: deploy the same revision and migration files to the test stack first (pulumi up -s ${target.testStack}) and let its validation pass, ` +
      `or, in an emergency, set config promotionOverride {reason, approvedBy, ticket}`,
  };
}
