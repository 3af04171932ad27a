// What prod must satisfy before anything changes. The promotion gate (test deployed and
// validated this revision with these migration files), the maintenance window (checked again
// when `pulumi up` runs, by `vibes-hooks window-check`), then the start notification.
//
// How the promotion refusal stops a preview: the decision is an input of the start
// notification's command; a refusal rejects it, the Node SDK re-raises the failed registration,
// and the program (preview or up) fails before any stage that depends on this component is
// registered. Give every mutating stage `dependsOn: [gates]` (or a stage that has it).
import * as pulumi from "@pulumi/pulumi";
import { StepRunner } from "../hookCommand";
import { SafetyConfig } from "../safety/config";
import { checkWindow, describeWindow } from "../safety/maintenanceWindow";
import { describeOverride } from "../safety/override";
import { evaluatePromotion, PromotionDecision, PromotionTarget, TEST_OUTPUT_KEYS, TestStackOutputs } from "../safety/promotionGate";

export interface DeploymentGatesArgs {
  steps: StepRunner;
  /** What this deployment promotes: compared with what the test stack validated. */
  deployment: Omit<PromotionTarget, "testStack">;
  safety: Pick<SafetyConfig, "promotion" | "maintenanceWindow" | "maintenanceWindowOverride">;
  /** The plan's clock (tests). */
  now?: Date;
}

export class DeploymentGates extends pulumi.ComponentResource {
  /** Rejects when the promotion gate refuses; undefined without a gate (non-prod stacks). */
  public readonly promotion?: pulumi.Output<PromotionDecision>;
  /** The override in force, for the audit trail in the stack outputs; null when none. */
  public readonly promotionOverride: pulumi.Output<{ reason: string; approvedBy: string; ticket: string } | null>;

  constructor(name: string, args: DeploymentGatesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:safety:DeploymentGates", name, {}, opts);
    const { steps, safety } = args;
    const after: pulumi.CustomResourceOptions = { parent: this, dependsOn: opts?.dependsOn };
    const summary: pulumi.Input<string>[] = [];

    if (safety.promotion) {
      const p = safety.promotion;
      const ref = new pulumi.StackReference(`${name}-test-stack`, { name: p.testStack }, { parent: this });
      const outputs = pulumi.output(
        Promise.all(TEST_OUTPUT_KEYS.map(async (key) => {
          const details = await ref.getOutputDetails(key);
          return [key, details.value ?? details.secretValue] as const;
        })).then((entries) => Object.fromEntries(entries) as TestStackOutputs),
      );
      this.promotion = outputs.apply((test) => {
        const decision = evaluatePromotion(test, { ...args.deployment, testStack: p.testStack }, p.override);
        if (!decision.allowed) throw new Error(decision.message);
        if (decision.overridden) pulumi.log.warn(decision.message, this);
        else pulumi.log.info(decision.message, this);
        return decision;
      });
      // Through the decision, so that a refusal rejects the start notification (see above), but
      // worded from config alone: a later test deployment must not change this input, which
      // would re-run the start notification alone on the next `up`. The decision is logged above.
      const stated = p.override ? `promotion override set (${describeOverride(p.override)})` : "promotion: validated on test";
      summary.push(this.promotion.apply(() => stated));
    }
    this.promotionOverride = pulumi.output(safety.promotion?.override ?? null);

    let windowCheck;
    if (safety.maintenanceWindow) {
      const w = safety.maintenanceWindow;
      const override = safety.maintenanceWindowOverride;
      const decision = checkWindow(w, args.now ?? new Date());
      const refused = !decision.inside || decision.startRefusal !== undefined;
      const message = decision.startRefusal ?? decision.message;
      if (refused && override) {
        pulumi.log.warn(`maintenance window OVERRIDDEN (${describeOverride(override)}): ${message}`, this);
      } else if (refused) {
        // Preview only reports: the plan may be reviewed now and applied inside the window.
        pulumi.log.warn(`${message}: \`pulumi up\` now would fail at window-check before the backup; nothing would change`, this);
      } else {
        pulumi.log.info(decision.message, this);
      }
      windowCheck = steps.run(`${name}-window-check`, {
        step: "window-check",
        flags: { window: JSON.stringify(w), override: override ? JSON.stringify(override) : undefined },
      }, after).command;
      summary.push(`window ${describeWindow(w)}${override ? ` OVERRIDDEN (${describeOverride(override)})` : ""}`);
    }

    steps.run(`${name}-notify-start`, {
      step: "notify",
      words: ["start"],
      flags: { summary: pulumi.all(summary).apply((parts) => parts.join("; ") || "no gates on this stack") },
    }, windowCheck ? { parent: this, dependsOn: [windowCheck] } : after);

    this.registerOutputs({ promotion: this.promotion, promotionOverride: this.promotionOverride });
  }
}
