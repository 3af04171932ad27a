// The rollback that takes seconds at any size: verify-restore keeps its proven copy of the backup
// as a database of its own (`<db>_vibes_copy`, closed to connections), and a failure inside the
// maintenance window renames the failed database aside (`<db>_failed_<stamp>`, kept) and the copy
// in, in one transaction, carrying over what a rename leaves behind (owner, grants, settings,
// comment, connection limit). These are the catalog's parts; hooks/lib/rollback.ts proves the result.
import type { Client } from "pg";
import { connect, type ConnectionSettings } from "./connection";
import { errorMessage, StepError } from "../errors";
import { quoteIdent } from "./tables";

/** A database name is at most 63 bytes: the suffixes must fit after the target's name. */
const base = (database: string) => Buffer.from(database).subarray(0, 40).toString().replace(/\uFFFD+$/, "");
export const copyNameFor = (database: string) => `${base(database)}_vibes_copy`;
export function failedNameFor(database: string, at: Date): string {
  return `${base(database)}_failed_${at.toISOString().replace(/[-:]/g, "").replace("T", "_").slice(0, 15)}`;
}

/** What the copy's database comment says of it: which database, which backup, when proven. */
export interface CopyMarker {
  copyOf: string;
  sha256: string;
  uri: string;
  manifestUri: string;
  provenAt: string;
}
const MARKER = "vibes-hooks copy ";

/** The database every swap works from: the target cannot be renamed while we are connected to it. */
export function adminSettings(settings: ConnectionSettings, env: NodeJS.ProcessEnv): ConnectionSettings {
  return { ...settings, database: env.VIBES_ADMIN_DATABASE || "postgres" };
}

export async function connectAdmin(settings: ConnectionSettings, env: NodeJS.ProcessEnv, what: string): Promise<Client> {
  const admin = adminSettings(settings, env);
  try {
    return await connect(admin, { applicationName: `vibes-hooks ${what}` });
  } catch (err) {
    if (!(err instanceof StepError)) throw err;
    throw new StepError(`${err.message} (the swap works from database ${admin.database}, as the target cannot be renamed from inside)`,
      "set VIBES_ADMIN_DATABASE to a database this role may connect to (default postgres)", { cause: err });
  }
}

/**
 * Why a swap could not be exact here, or would not work; empty when it can. Checked by preflight
 * (reported), by verify-restore before it keeps a copy, and again before a swap.
 * `VIBES_ROLLBACK=restore` chooses the restore instead.
 */
export async function swapObstacles(client: Client, env: NodeJS.ProcessEnv, database: string, freeBytes: number | null = null): Promise<string[]> {
  if (env.VIBES_ROLLBACK === "restore") return ["VIBES_ROLLBACK=restore (config rollbackStrategy) chooses the restore"];
  const res = await client.query(
    `SELECT d.oid, pg_database_size(d.oid)::bigint AS bytes,
            pg_has_role(d.datdba, 'MEMBER') AS owns,
            r.rolsuper OR r.rolcreatedb AS createdb,
            r.rolsuper OR pg_has_role('pg_signal_backend', 'MEMBER') AS signals,
            (SELECT count(*) FROM pg_replication_slots s WHERE s.database = d.datname)::int AS slots,
            (SELECT count(*) FROM pg_subscription s WHERE s.subdbid = d.oid)::int AS subscriptions
       FROM pg_database d, pg_roles r WHERE d.datname = $1 AND r.rolname = current_user`, [database]);
  const d = res.rows[0];
  if (!d) return [`database ${database} does not exist`];
  const obstacles: string[] = [];
  if (!d.owns) obstacles.push(`this role does not own ${database} (renaming it needs its owner)`);
  if (!d.createdb) obstacles.push("this role lacks CREATEDB (the copy is a database of its own)");
  if (d.slots > 0) obstacles.push(`${d.slots} replication slot(s) belong to ${database}: a renamed database takes them along`);
  if (d.subscriptions > 0) obstacles.push(`${d.subscriptions} logical replication subscription(s) live in ${database}`);
  // The publications and the objects' owners live inside the target: asked there when it is ours.
  if (client.database === database) {
    const inside = await client.query(
      `SELECT (SELECT count(*) FROM pg_publication)::int AS publications,
              (SELECT coalesce(array_agg(DISTINCT o.rolname::text), '{}') FROM (
                  SELECT c.oid, 'pg_class'::regclass AS classid, relowner AS owner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                  UNION SELECT oid, 'pg_namespace'::regclass, nspowner FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
                  UNION SELECT p.oid, 'pg_proc'::regclass, proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
                  UNION SELECT t.oid, 'pg_type'::regclass, typowner FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
                ) owners JOIN pg_roles o ON o.oid = owners.owner WHERE NOT pg_has_role(owners.owner, 'MEMBER')
                  -- an extension's objects are created by CREATE EXTENSION, not given owners by the restore
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = owners.classid AND d.objid = owners.oid AND d.deptype = 'e')) AS foreign_owners`);
    const i = inside.rows[0];
    if (i.publications > 0) obstacles.push(`${i.publications} publication(s) in ${database}: subscribers follow the database's contents, not its name`);
    if (i.foreign_owners.length > 0) obstacles.push(`objects are owned by ${i.foreign_owners.join(", ")}, roles this one is not a member of: a copy could not give them back their owners`);
  }
  if (freeBytes !== null && freeBytes < Number(d.bytes)) obstacles.push(`free space (${freeBytes} bytes) is less than the database (${d.bytes} bytes) the copy needs`);
  return obstacles;
}

/** The copy kept for `database`, with what it holds; null when there is none. */
export async function findCopy(admin: Client, database: string): Promise<{ name: string; marker: CopyMarker | null } | null> {
  const name = copyNameFor(database);
  const res = await admin.query("SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1", [name]);
  if (res.rowCount === 0) return null;
  const comment: string = res.rows[0].comment ?? "";
  let marker: CopyMarker | null = null;
  if (comment.startsWith(MARKER)) {
    try {
      const parsed = JSON.parse(comment.slice(MARKER.length)) as CopyMarker;
      if (parsed.copyOf === database && typeof parsed.sha256 === "string") marker = parsed;
    } catch {
      marker = null;
    }
  }
  return { name, marker };
}

/** Drops the copy kept for `database`: only one of ours (a database of that name without our
 * marker is someone else's, and is refused). Returns its name, or null when there was none. */
export async function dropCopy(admin: Client, database: string): Promise<string | null> {
  const copy = await findCopy(admin, database);
  if (!copy) return null;
  if (!copy.marker) {
    throw new StepError(`database ${copy.name} exists but is not a copy vibes-hooks kept for ${database}`,
      `rename or drop ${copy.name} by hand (it is not ours to drop), or set VIBES_ROLLBACK=restore`);
  }
  await admin.query(`DROP DATABASE ${quoteIdent(copy.name)} WITH (FORCE)`);
  return copy.name;
}

/** CREATE DATABASE options that make `name` like `like`: encoding, locale, tablespace. */
export async function createDatabaseLike(admin: Client, name: string, like: string): Promise<void> {
  const res = await admin.query(
    `SELECT pg_encoding_to_char(d.encoding) AS encoding, d.datcollate, d.datctype, d.datlocprovider, d.daticulocale, t.spcname
       FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = $1`, [like]);
  const d = res.rows[0];
  if (!d) throw new StepError(`database ${like} does not exist`, "check DATABASE_URL");
  const literal = (s: string) => admin.escapeLiteral(s);
  const options = ["TEMPLATE template0", `ENCODING ${literal(d.encoding)}`, `LC_COLLATE ${literal(d.datcollate)}`, `LC_CTYPE ${literal(d.datctype)}`];
  if (d.datlocprovider === "i") options.push("LOCALE_PROVIDER icu", `ICU_LOCALE ${literal(d.daticulocale)}`);
  if (d.spcname !== "pg_default") options.push(`TABLESPACE ${quoteIdent(d.spcname)}`);
  await admin.query(`CREATE DATABASE ${quoteIdent(name)} ${options.join(" ")}`);
}

/** Marks `name` as the proven copy for `marker.copyOf` and closes it to connections: nothing can
 * change it until it is swapped in. */
export async function sealCopy(admin: Client, name: string, marker: CopyMarker): Promise<void> {
  await admin.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${admin.escapeLiteral(MARKER + JSON.stringify(marker))}`);
  await admin.query(`ALTER DATABASE ${quoteIdent(name)} WITH ALLOW_CONNECTIONS false`);
}

/** Ends every session on `database` but ours, waiting until they are gone (new ones are refused by then). */
async function endSessions(admin: Client, database: string, log: (m: string) => void): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (let announced = false; ; announced = true) {
    // Signalled at once, then watched closely: a backend ends within milliseconds of the signal.
    const left = await admin.query(
      `SELECT pid, usename, application_name, pg_terminate_backend(pid) AS signalled FROM pg_stat_activity
        WHERE datname = $1 AND pid <> pg_backend_pid()`, [database]);
    if (left.rowCount === 0) return;
    if (!announced) log(`ending ${left.rowCount} session(s) on ${database}`);
    if (Date.now() > deadline) {
      const who = left.rows.map((r) => `pid ${r.pid} (${r.usename}, "${r.application_name}")`).join(", ");
      throw new StepError(`session(s) on ${database} did not end within 30s: ${who}`,
        "end them (SELECT pg_terminate_backend(pid) as a role that may), then rerun; nothing was swapped");
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export interface SwapResult {
  /** The database that was `database` before, kept under this name for inspection. */
  failedDatabase: string;
  /** What could not be carried over from it (a setting this role may not set), if anything. */
  notCarried: string[];
  swapMs: number;
}

/**
 * Swaps `copy` in as `database`: closes `database` to connections, ends its sessions, then in one
 * transaction renames it to `failedName` and the copy to `database`, and gives the copy the
 * database-level properties a rename leaves with the old one. Either everything happens or
 * nothing: on an error before the commit `database` is reopened as it was.
 */
export async function swapIn(admin: Client, copy: string, database: string, failedName: string, log: (m: string) => void): Promise<SwapResult> {
  const started = Date.now();
  const props = (await admin.query(
    `SELECT d.oid, r.rolname AS owner, d.datallowconn, d.datconnlimit, shobj_description(d.oid, 'pg_database') AS comment,
            (SELECT coalesce(jsonb_agg(jsonb_build_object('grantee', coalesce(g.rolname, 'PUBLIC'), 'privilege', a.privilege_type, 'grantable', a.is_grantable)), '[]')
               FROM aclexplode(d.datacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee) AS grants,
            d.datacl IS NULL AS default_acl,
            (SELECT coalesce(jsonb_agg(jsonb_build_object('role', sr.rolname, 'config', s.setconfig)), '[]')
               FROM pg_db_role_setting s LEFT JOIN pg_roles sr ON sr.oid = s.setrole WHERE s.setdatabase = d.oid) AS settings
       FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1`, [database])).rows[0];
  if (!props) throw new StepError(`database ${database} does not exist`, "check DATABASE_URL");
  const db = quoteIdent(database);
  await admin.query(`ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS false`);
  const notCarried: string[] = [];
  try {
    await endSessions(admin, database, log);
    await admin.query("BEGIN");
    await admin.query(`ALTER DATABASE ${db} RENAME TO ${quoteIdent(failedName)}`);
    await admin.query(`ALTER DATABASE ${quoteIdent(copy)} RENAME TO ${db}`);
    await admin.query(`ALTER DATABASE ${db} OWNER TO ${quoteIdent(props.owner)}`);
    await admin.query(`COMMENT ON DATABASE ${db} IS ${props.comment === null ? "NULL" : admin.escapeLiteral(props.comment)}`);
    await admin.query(`ALTER DATABASE ${db} CONNECTION LIMIT ${Number(props.datconnlimit)}`);
    if (!props.default_acl) {
      await admin.query(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC, ${quoteIdent(props.owner)}`);
      for (const g of props.grants as { grantee: string; privilege: string; grantable: boolean }[]) {
        const grantee = g.grantee === "PUBLIC" ? "PUBLIC" : quoteIdent(g.grantee);
        await admin.query(`GRANT ${g.privilege} ON DATABASE ${db} TO ${grantee}${g.grantable ? " WITH GRANT OPTION" : ""}`);
      }
    }
    for (const s of props.settings as { role: string | null; config: string[] }[]) {
      for (const item of s.config) {
        const eq = item.indexOf("=");
        const [name, value] = [item.slice(0, eq), item.slice(eq + 1)];
        // Set in this session first, so the value is parsed as the setting parses it (lists, units),
        // then stored FROM CURRENT; a savepoint keeps one that this role may not set from the rest.
        await admin.query("SAVEPOINT setting");
        try {
          await admin.query("SELECT set_config($1, $2, true)", [name, value]);
          await admin.query(`ALTER ${s.role ? `ROLE ${quoteIdent(s.role)} IN ` : ""}DATABASE ${db} SET ${quoteIdent(name)} FROM CURRENT`);
          await admin.query("RELEASE SAVEPOINT setting");
        } catch (err) {
          await admin.query("ROLLBACK TO SAVEPOINT setting");
          notCarried.push(`${s.role ? `role ${s.role} in ` : ""}database setting ${name} (${errorMessage(err)})`);
        }
      }
    }
    await admin.query(`ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS ${props.datallowconn ? "true" : "false"}`);
    await admin.query(`ALTER DATABASE ${quoteIdent(failedName)} WITH ALLOW_CONNECTIONS ${props.datallowconn ? "true" : "false"}`);
    await admin.query("COMMIT");
  } catch (err) {
    await admin.query("ROLLBACK").catch(() => undefined);
    await admin.query(`ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS ${props.datallowconn ? "true" : "false"}`).catch(() => undefined);
    throw err;
  }
  for (const n of notCarried) log(`warning: not carried over to the swapped-in database: ${n}`);
  return { failedDatabase: failedName, notCarried, swapMs: Date.now() - started };
}
