/**
 * A failure a step reports: `message` is the cause, `next` the action the operator should take.
 * `details` are extra fields merged into the failure JSON (for example validate's checks).
 */
export class StepError extends Error {
  readonly next: string;
  readonly details?: Record<string, unknown>;

  constructor(message: string, next: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "StepError";
    this.next = next;
    this.details = opts.details;
  }
}

/** Bad command line: the CLI exits 2 instead of 1. */
export class UsageError extends StepError {
  constructor(message: string, next = "run `vibes-hooks --help` for the steps and their flags") {
    super(message, next);
    this.name = "UsageError";
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
