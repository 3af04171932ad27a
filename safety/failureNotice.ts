// The failure notice for cloud resources (docs/safety.md, Notifications). A hook step reports its
// own failure, but a failing bucket, snapshot, alarm or database grant fails `pulumi up` without
// running one: the engine calls this ErrorHook instead, which sends the same notice through the
// same code (notifyFailure) and declines the retry.
import * as pulumi from "@pulumi/pulumi";
import { notifyFailure } from "../hooks/lib/app/notify";

/** One per program: the engine identifies error hooks by name. */
export const FAILURE_NOTICE_HOOK = "vibes-failure-notice";

export class FailureNotice {
  /** Bind it with `hooks: { onError: [hook] }`. */
  public readonly hook: pulumi.ErrorHook;
  /** What notifyFailure reads, filled in as the channel's Outputs resolve. */
  private readonly env: NodeJS.ProcessEnv;

  constructor(stack: string, targetRevision: string) {
    this.env = { VIBES_STACK: stack, VIBES_TARGET_REVISION: targetRevision };
    this.hook = new pulumi.ErrorHook(FAILURE_NOTICE_HOOK, async (args) => {
      const errors = args.errors.length > 0 ? args.errors.join("; ") : "(no error message)";
      await notifyFailure(stageOf(args.urn, args.name), `${args.failedOperation} of ${args.type} failed: ${errors}`, this.env);
      // Retrying would only repeat a refused call (permissions, quotas, a name taken) and notify again.
      return false;
    });
  }

  /** The channel (notifyEnvironment: topic ARN, secret webhook URL). The hook must not wait on
   * an Output (the topic's never resolves when the topic itself failed), so each value is copied
   * in once it resolves: a failure before the topic exists reaches the webhook alone. The result
   * resolves once every value is in; the program need not wait for it. */
  sendTo(vars: Record<string, pulumi.Input<string>>): pulumi.Output<void> {
    const copied = Object.entries(vars).map(([key, value]) =>
      pulumi.output(value).apply((resolved) => {
        this.env[key] = resolved;
      }));
    return pulumi.all(copied).apply(() => undefined);
  }
}

/** `Component/resource-name` from the resource's URN (its parent is the stage's component). */
export function stageOf(urn: string, name: string): string {
  const types = (urn.split("::")[2] ?? "").split("$");
  const component = types.length > 1 ? types[types.length - 2].split(":").pop() : undefined;
  return component ? `${component}/${name}` : name;
}
