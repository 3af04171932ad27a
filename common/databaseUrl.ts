// The one reading of a database URL (postgresql://user@host:port/db?sslmode=..): the program
// checks the configured one, the hooks connect with it, the monitoring provider is built from it.
// Error messages never echo the URL: it may hold a password.

export const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

export interface DatabaseUrl {
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
  sslmode?: string;
}

/** What is wrong with a URL (to follow the setting's name), and a hint beyond the URL's form. */
export class DatabaseUrlError extends Error {
  constructor(readonly problem: string, readonly hint?: string) {
    super(problem);
  }
}

/**
 * Reads a database URL; what it lacks comes from `defaults` (libpq's PGUSER, PGHOST, PGPORT).
 * Throws a DatabaseUrlError naming the first problem.
 */
export function parseDatabaseUrl(raw: string, defaults: { user?: string; host?: string; port?: string; sslmode?: string } = {}): DatabaseUrl {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DatabaseUrlError("is not a URL");
  }
  if (url.protocol !== "postgresql:" && url.protocol !== "postgres:") {
    throw new DatabaseUrlError(`scheme must be postgresql:// (got ${url.protocol}//)`);
  }
  const path = decodePart(url.pathname.replace(/^\//, ""), "database name");
  if (!path || path.includes("/")) throw new DatabaseUrlError("names no database (or more than one path segment)");
  const user = decodePart(url.username, "user") || defaults.user || "";
  if (!user) throw new DatabaseUrlError("names no user");
  // libpq allows ?host=/socket/dir for Unix sockets; an IPv6 address comes in brackets.
  const host = url.searchParams.get("host") || decodePart(url.hostname, "host").replace(/^\[(.*)\]$/, "$1") || defaults.host || "";
  if (!host) throw new DatabaseUrlError("names no host");
  const portText = url.port || url.searchParams.get("port") || defaults.port || "5432";
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DatabaseUrlError(`port "${portText}" is not a port number`);
  const sslmode = url.searchParams.get("sslmode") || defaults.sslmode || undefined;
  if (sslmode !== undefined && !SSL_MODES.includes(sslmode)) throw new DatabaseUrlError(`sslmode "${sslmode}" is not one of ${SSL_MODES.join(", ")}`);
  return { host, port, database: path, user, password: url.password ? decodePart(url.password, "password") : undefined, sslmode };
}

/** A %-decoded part; a malformed escape is named, never echoed (it may be the password). */
function decodePart(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new DatabaseUrlError(`has a malformed %-escape in its ${what}`, "write a literal % as %25");
  }
}
