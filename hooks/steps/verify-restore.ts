/**
 * verify-restore --uri URI [--scratch-database NAME | --keep-copy]: proves a backup restores
 * before anything is migrated. Checks the dump's SHA-256 against its manifest first, restores it
 * into a scratch database (created and dropped here, or the configured one, which is left in
 * place), and proves it against the manifest: revision, the schema snapshot (owners and grants
 * aside: the restore sets neither), and every row, ids included (hooks/lib/proof/proof.ts).
 * --keep-copy: where a swap can be exact (hooks/lib/database/databaseSwap.ts), the copy is restored with
 * its owners and grants, proven with them, and kept, closed, as `<db>_vibes_copy`: the rollback
 * a failure inside the window swaps in. Where it cannot, the result says why and the rollback
 * restores instead.
 */
import { parseStep, requireFlag } from "../lib/args";
import { connectionFromEnv } from "../lib/database/connection";
import { UsageError } from "../lib/errors";
import { progress } from "../lib/progress";
import { verifyBackup } from "../lib/proof/verify";

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseStep("verify-restore", args);
  const uri = requireFlag("verify-restore", values.uri, "--uri", "URI (the uri printed by backup)");
  const configured = values["scratch-database"];
  if (configured !== undefined && !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(configured)) {
    throw new UsageError(`verify-restore: --scratch-database "${configured}" is not a plain database name`, "use letters, digits and _");
  }
  if (configured !== undefined && values["keep-copy"]) {
    throw new UsageError("verify-restore: --keep-copy keeps a database of its own, not --scratch-database", "pass one of the two");
  }
  return verifyBackup(connectionFromEnv(env), uri, env, { scratchDatabase: configured, keepCopy: values["keep-copy"], log: progress("verify-restore") });
}

