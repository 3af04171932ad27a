// `copy status|drop`: the verified copy verify-restore --keep-copy keeps for a rollback by swap
// (`<db>_vibes_copy`, closed to connections). The deployment drops it once maintenance mode is off.
import { parseStep } from "../lib/args";
import { connectionFromEnv } from "../lib/database/connection";
import { connectAdmin, dropCopy, findCopy } from "../lib/database/databaseSwap";
import { progress } from "../lib/progress";

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { positionals } = parseStep("copy", args);
  const settings = connectionFromEnv(env);
  const log = progress("copy");
  const admin = await connectAdmin(settings, env, "copy");
  try {
    if (positionals[0] === "status") {
      const copy = await findCopy(admin, settings.database);
      return { database: settings.database, copy: copy?.name ?? null, of: copy?.marker ?? null };
    }
    const dropped = await dropCopy(admin, settings.database);
    log(dropped ? `dropped ${dropped}` : "no copy kept");
    return { database: settings.database, dropped };
  } finally {
    await admin.end().catch(() => undefined);
  }
}
