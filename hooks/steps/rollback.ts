// `rollback [--manifest URI]`: back to this deployment's verified backup by hand, as the steps
// inside the window do by themselves after a failure past the migration (VIBES_ROLLBACK_ON_FAILURE):
// the kept copy swapped in (its backup VIBES_BACKUP_SHA256 when set), else the backup of --manifest
// restored; proven; then the app restarted on it when VIBES_RESTART_COMMAND is set.
import { parseStep } from "../lib/args";
import { progress } from "../lib/progress";
import { rollBackAfterFailure } from "../lib/rollback";

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseStep("rollback", args);
  const manifest = values.manifest ?? env.VIBES_ROLLBACK_MANIFEST;
  return { ...(await rollBackAfterFailure({ ...env, ...(manifest ? { VIBES_ROLLBACK_MANIFEST: manifest } : {}) }, progress("rollback"))) };
}
