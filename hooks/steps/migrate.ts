// `migrate --to REV`: runs the schema change exactly once, under a session advisory lock, and
// leaves the database as it found it when the change or its validation fails (the verified copy
// swapped in; else the down command, then, if the data still differs from the manifest, the
// verified backup). The revisions come from alembic or from a folder of SQL files (--mode); both
// go through the same steps (hooks/migrate/).
import { parseStep } from "../lib/args";
import { migrate, migrateOptions } from "../migrate";

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseStep("migrate", args);
  return migrate(migrateOptions(values, env), values, env);
}
