import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { urlWithoutPassword, type ConnectionSettings } from "./connection";
import { isSecretName } from "./redact";

function passfileField(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
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
  const env: NodeJS.ProcessEnv = { ...baseEnv };
  for (const name of Object.keys(env)) if (isSecretName(name)) delete env[name];
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
  const dir = await mkdtemp(join(tmpdir(), "vibes-pgpass-")); // mkdtemp creates it 0700
  try {
    const file = join(dir, "pgpass");
    // libpq matches Unix-socket connections against "localhost".
    const host = settings.host.startsWith("/") ? "localhost" : settings.host;
    const line = [host, String(settings.port), "*", settings.user, settings.password].map(passfileField).join(":");
    await writeFile(file, `${line}\n`, { mode: 0o600 });
    env.PGPASSFILE = file;
    return await fn(env);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
