import type { Client } from "pg";
import { withoutSecrets } from "./childEnv";
import { StepError } from "../errors";
import { runChild } from "../processes/run";

/**
 * The PostgreSQL client program to run: VIBES_PG_DUMP / VIBES_PG_RESTORE / VIBES_PSQL when set,
 * else VIBES_PG_BIN/<name> when VIBES_PG_BIN is set, else <name> from PATH.
 */
export function pgTool(name: "pg_dump" | "pg_restore" | "psql", env: NodeJS.ProcessEnv): string {
  const override = env[`VIBES_${name.toUpperCase()}`];
  if (override) return override;
  if (env.VIBES_PG_BIN) return `${env.VIBES_PG_BIN.replace(/\/$/, "")}/${name}`;
  return name;
}

/** Major version of a client program, from `<tool> --version` ("pg_dump (PostgreSQL) 15.20 ..."). */
export async function pgToolMajor(tool: string, env: NodeJS.ProcessEnv): Promise<number> {
  // A VIBES_PG_* override may be a wrapper script: it gets no secret.
  const res = await runChild(tool, ["--version"], { env: withoutSecrets(env), timeoutMs: 15_000 });
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(res.stdout);
  if (res.code !== 0 || !m) {
    throw new StepError(`cannot read the version of ${tool} (exit ${res.code})`,
      "install the PostgreSQL client programs or point VIBES_PG_BIN at them");
  }
  const major = Number(m[1]);
  // Before PostgreSQL 10 the major version was two numbers (9.6).
  return major < 10 ? major + Number(m[2] ?? 0) / 10 : major;
}

export async function serverMajor(client: Client): Promise<number> {
  const res = await client.query("SELECT current_setting('server_version_num')::int AS v");
  const v = res.rows[0].v as number;
  return v >= 100000 ? Math.floor(v / 10000) : Math.floor(v / 10000) + (Math.floor(v / 100) % 100) / 10;
}

/** pg_dump and pg_restore refuse servers newer than themselves: check before starting. */
export async function assertToolCanHandle(tool: string, env: NodeJS.ProcessEnv, client: Client): Promise<number> {
  const [toolMajor, srvMajor] = await Promise.all([pgToolMajor(tool, env), serverMajor(client)]);
  if (toolMajor < srvMajor) {
    throw new StepError(`${tool} is version ${toolMajor} but the server is PostgreSQL ${srvMajor}`,
      `install PostgreSQL ${srvMajor} client programs and point VIBES_PG_BIN (or VIBES_PG_DUMP / VIBES_PG_RESTORE) at them`);
  }
  return toolMajor;
}
