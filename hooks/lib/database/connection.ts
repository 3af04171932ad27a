import { readFileSync } from "node:fs";
import { Client, type ClientConfig } from "pg";
import { DatabaseUrlError, parseDatabaseUrl, SSL_MODES, type DatabaseUrl } from "../../../common/databaseUrl";
import { StepError } from "../errors";

/** Where and as whom to connect: the database URL's parts (the password a secret: never log it,
 * never pass it in process arguments, see childEnv.ts), and the CA bundle. */
export interface ConnectionSettings extends DatabaseUrl {
  /** CA bundle for verify-ca / verify-full (PGSSLROOTCERT, e.g. AWS's RDS bundle); libpq
   * children read the same variable. Without it Node's default CAs are used. */
  sslRootCert?: string;
}

export interface ConnectOptions {
  connectTimeoutMs?: number;
  /** PostgreSQL durations ("30min", "5s") or milliseconds. */
  statementTimeout?: string | number;
  lockTimeout?: string | number;
  applicationName?: string;
}

const URL_FIX = "set DATABASE_URL to postgresql://USER@HOST:PORT/DB (password in VIBES_DB_PASSWORD)";

/**
 * Connection settings from DATABASE_URL, else from PGHOST/PGPORT/PGUSER/PGDATABASE.
 * The password comes from VIBES_DB_PASSWORD, else from the URL. Error messages never echo the
 * URL (it may hold a password).
 */
export function connectionFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectionSettings {
  const raw = env.DATABASE_URL?.trim();
  let settings: ConnectionSettings;
  if (raw) {
    let url;
    try {
      url = parseDatabaseUrl(raw, { user: env.PGUSER, host: env.PGHOST, port: env.PGPORT, sslmode: env.PGSSLMODE });
    } catch (err) {
      if (!(err instanceof DatabaseUrlError)) throw err;
      throw new StepError(`DATABASE_URL ${err.problem}`, err.hint ? `${URL_FIX}; ${err.hint}` : URL_FIX);
    }
    const { password, ...where } = url;
    settings = { ...where, password: env.VIBES_DB_PASSWORD || password };
  } else {
    const missing = ["PGHOST", "PGUSER", "PGDATABASE"].filter((k) => !env[k]);
    if (missing.length > 0) {
      throw new StepError(`DATABASE_URL is not set (nor ${missing.join(", ")})`, URL_FIX);
    }
    settings = {
      host: env.PGHOST!,
      port: parsePort(env.PGPORT || "5432", "PGPORT"),
      database: env.PGDATABASE!,
      user: env.PGUSER!,
      password: env.VIBES_DB_PASSWORD || undefined,
      sslmode: env.PGSSLMODE || undefined,
    };
  }
  if (env.PGSSLROOTCERT) settings.sslRootCert = env.PGSSLROOTCERT;
  if (settings.sslmode && !SSL_MODES.includes(settings.sslmode)) {
    throw new StepError(`sslmode "${settings.sslmode}" is not one of ${SSL_MODES.join(", ")}`, URL_FIX);
  }
  return settings;
}

function parsePort(text: string, what: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new StepError(`${what} "${text}" is not a port number`, URL_FIX);
  }
  return port;
}

/** The URL to show and to give child processes: never contains the password. */
export function urlWithoutPassword(s: ConnectionSettings): string {
  const socket = s.host.startsWith("/");
  const hostPart = socket ? "" : s.host.includes(":") ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
  const params = new URLSearchParams();
  if (socket) {
    params.set("host", s.host);
    params.set("port", String(s.port));
  }
  if (s.sslmode) params.set("sslmode", s.sslmode);
  const query = params.toString();
  return `postgresql://${encodeURIComponent(s.user)}@${hostPart}/${encodeURIComponent(s.database)}${query ? `?${query}` : ""}`;
}

/** libpq's sslmode as node-postgres TLS options. */
function sslConfig(settings: ConnectionSettings): ClientConfig["ssl"] {
  const mode = settings.sslmode;
  // node-postgres cannot fall back from TLS to plain, so allow/prefer connect without TLS.
  if (!mode || mode === "disable" || mode === "allow" || mode === "prefer") return false;
  if (mode === "require") return { rejectUnauthorized: false };
  let ca: string | undefined;
  if (settings.sslRootCert) {
    try {
      ca = readFileSync(settings.sslRootCert, "utf8");
    } catch {
      throw new StepError(`PGSSLROOTCERT ${settings.sslRootCert} cannot be read`, "set config databaseSslRootCert to the CA bundle's path (e.g. AWS's RDS global bundle)");
    }
  }
  // verify-ca checks the chain only, as libpq does; verify-full also the host name.
  return { rejectUnauthorized: true, ca, ...(mode === "verify-ca" ? { checkServerIdentity: () => undefined } : {}) };
}

/**
 * A connected pg.Client. Timeouts are set for the session with set_config so that any
 * PostgreSQL duration is accepted. Connection errors become StepErrors with the next action.
 */
export async function connect(settings: ConnectionSettings, opts: ConnectOptions = {}): Promise<Client> {
  const client = new Client({
    host: settings.host,
    port: settings.port,
    database: settings.database,
    user: settings.user,
    password: settings.password,
    ssl: sslConfig(settings),
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    application_name: opts.applicationName ?? "vibes-hooks",
    // migrate's session holds the migration lock, idle, for as long as the migration runs: TCP
    // keepalives keep NATs and load balancers from dropping it.
    keepAlive: true,
    keepAliveInitialDelayMillis: 30_000, // the OS default waits 2 h, past any NAT's idle timeout
  });
  // An idle client whose server goes away emits 'error'; without a listener node would crash.
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw connectError(settings, err);
  }
  // idle_session_timeout (PostgreSQL 14+) is off: a server-wide setting must not end migrate's
  // lock-holding session mid-migration.
  const settingsToSet: [string, string][] = [["idle_session_timeout", "0"]];
  if (opts.statementTimeout !== undefined) settingsToSet.push(["statement_timeout", String(opts.statementTimeout)]);
  if (opts.lockTimeout !== undefined) settingsToSet.push(["lock_timeout", String(opts.lockTimeout)]);
  try {
    await setSessionSettings(client, settingsToSet);
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new StepError(`invalid timeout setting: ${(err as Error).message}`,
      "use a PostgreSQL duration such as 5s or 30min for VIBES_LOCK_TIMEOUT / VIBES_STATEMENT_TIMEOUT");
  }
  return client;
}

/** Runs `use` on a connection of its own, closed afterwards. */
export async function withClient<T>(settings: ConnectionSettings, applicationName: string, use: (client: Client) => Promise<T>): Promise<T> {
  const client = await connect(settings, { applicationName: `vibes-hooks ${applicationName}` });
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Sets session settings in one round trip; a setting the server does not have is skipped. */
export async function setSessionSettings(client: Client, settings: [string, string][]): Promise<void> {
  await client.query(
    `SELECT set_config(v.name, v.value, false) FROM (VALUES ${settings.map((_, i) => `($${2 * i + 1}, $${2 * i + 2})`).join(", ")}) AS v(name, value)
      WHERE current_setting(v.name, true) IS NOT NULL`, settings.flat());
}

/**
 * Ends another session of ours (pg_terminate_backend, from a connection of its own): a step that
 * has failed must not wait for that session's long query, idle or running, to finish first.
 */
export async function terminateSession(settings: ConnectionSettings, pid: number): Promise<void> {
  const other = await connect(settings, { applicationName: "vibes-hooks cleanup", connectTimeoutMs: 5000 });
  try {
    await other.query("SELECT pg_terminate_backend($1)", [pid]);
  } finally {
    await other.end().catch(() => undefined);
  }
}

function connectError(s: ConnectionSettings, err: unknown): StepError {
  const e = err as { code?: string; message?: string };
  const where = `${s.host}:${s.port}/${s.database} as ${s.user}`;
  switch (e.code) {
    case "ECONNREFUSED":
    case "ENOTFOUND":
    case "EHOSTUNREACH":
    case "ETIMEDOUT":
    case "ENOENT":
      return new StepError(`cannot reach PostgreSQL at ${where} (${e.code})`,
        "check the host and port in DATABASE_URL and that the server is up and reachable from here", { cause: err });
    case "28P01":
      return new StepError(`password authentication failed for ${where}`,
        "check VIBES_DB_PASSWORD (or the password in DATABASE_URL) for this user", { cause: err });
    case "28000":
      return new StepError(`the server rejected the connection for ${where}: ${e.message}`,
        "check pg_hba.conf / the user's permissions and the sslmode in DATABASE_URL", { cause: err });
    case "3D000":
      return new StepError(`database does not exist: ${where}`, "check the database name in DATABASE_URL", { cause: err });
    default:
      if (/timeout/i.test(e.message ?? "")) {
        return new StepError(`timed out connecting to PostgreSQL at ${where}`,
          "check the host and port in DATABASE_URL, security groups and that the server is up", { cause: err });
      }
      return new StepError(`cannot connect to PostgreSQL at ${where}: ${e.message ?? String(err)}`,
        "check DATABASE_URL, VIBES_DB_PASSWORD and the server", { cause: err });
  }
}
