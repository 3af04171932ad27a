import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { urlWithoutPassword, type ConnectionSettings } from "./connection";
import { isSecretName } from "../../../common/redact";
import { makeTempDir, removeTempDir } from "../processes/tempDirs";

function passfileField(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
}

/** The environment without any variable named like a secret, nor DATABASE_URL (it may hold the
 * password): what a child process may see. */
export function withoutSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !isSecretName(name) && name !== "DATABASE_URL"));
}

/**
 * Runs fn with an environment for libpq clients (pg_dump, pg_restore, psql, alembic): PG* settings,
 * DATABASE_URL without the password, and the password in a PGPASSFILE (mode 0600, in a private
 * temp dir) that exists only for the run. No variable named like a secret (the admin token, the
 * webhook URL, AWS keys) reaches the child. The database field is "*" so the same file serves
 * scratch databases on the same server.
 */
export async function withPassfile<T>(
  settings: ConnectionSettings,
  fn: (childEnv: NodeJS.ProcessEnv) => Promise<T>,
  baseEnv: NodeJS.ProcessEnv = process.env,
): Promise<T> {
  const env = withoutSecrets(baseEnv);
  // libpq lets these override PGHOST/PGPORT: the children must reach the server the hook checks.
  for (const name of ["PGSERVICE", "PGSERVICEFILE", "PGHOSTADDR"]) delete env[name];
  Object.assign(env, {
    PGHOST: settings.host,
    PGPORT: String(settings.port),
    PGUSER: settings.user,
    PGDATABASE: settings.database,
    DATABASE_URL: urlWithoutPassword(settings),
  });
  if (settings.sslmode) env.PGSSLMODE = settings.sslmode;
  if (settings.password === undefined) {
    return fn(env);
  }
  const dir = await makeTempDir("vibes-pgpass-");
  try {
    const file = join(dir, "pgpass");
    // libpq matches a Unix socket against its directory, or against "localhost" when it is the
    // compiled-in default directory.
    const hosts = settings.host.startsWith("/") ? [settings.host, "localhost"] : [settings.host];
    const lines = hosts.map((host) => [host, String(settings.port), "*", settings.user, settings.password!].map(passfileField).join(":"));
    await writeFile(file, `${lines.join("\n")}\n`, { mode: 0o600 });
    env.PGPASSFILE = file;
    return await fn(env);
  } finally {
    await removeTempDir(dir);
  }
}
