// The backfill as a process of its own (for the CLI step to come, and for the tests' kill -9):
// settings from the environment only (DATABASE_URL, VIBES_DB_PASSWORD, VIBES_TABLES,
// VIBES_ONLINE_BATCH_SIZE, VIBES_ONLINE_PAUSE_MS, VIBES_ID_DEFAULT): never a secret in argv.
import { connect, connectionFromEnv } from "../lib/database/connection";
import { tablesFromEnv } from "../lib/database/tables";
import { errorMessage } from "../lib/errors";
import { progress } from "../lib/progress";
import { backfill } from "./backfill";
import { readPlan } from "./plan";

async function main(): Promise<void> {
  const env = process.env;
  const client = await connect(connectionFromEnv(env), { applicationName: "vibes-hooks online backfill" });
  try {
    const idDefault = env.VIBES_ID_DEFAULT === undefined ? undefined : env.VIBES_ID_DEFAULT === "none" ? null : env.VIBES_ID_DEFAULT;
    const plan = await readPlan(client, tablesFromEnv(env), { idDefault });
    const result = await backfill(client, plan, {
      batchSize: Number(env.VIBES_ONLINE_BATCH_SIZE ?? 1000),
      pauseMs: Number(env.VIBES_ONLINE_PAUSE_MS ?? 0),
      log: progress("online backfill"),
    });
    process.stdout.write(`${JSON.stringify({ ok: true, ...result })}\n`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

main().catch((err) => {
  process.stdout.write(`${JSON.stringify({ ok: false, error: errorMessage(err) })}\n`);
  process.exitCode = 1;
});
