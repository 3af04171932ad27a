/**
 * A throwaway PostgreSQL 15 cluster for the tests: one per test process, shared by every file
 * (getCluster() is memoized), stopped and deleted when the process exits, also on SIGINT,
 * SIGTERM or SIGHUP.
 *
 *   const pg = await getCluster();
 *   const db = await pg.createVibesDatabase({ users: 20, journalsPerUser: 3 }); // real app: alembic + generator
 *   const res = await runHooks("backup", [], { ...db.env, VIBES_BACKUP_TARGET: "local", ... });
 *   await pg.query(db.name, "DELETE FROM journals WHERE ...");          // as superuser
 *   await pg.dropDatabase(db.name);
 *
 * The hooks connect as the role `vibes` over TCP with a password (scram-sha-256), given in the
 * env as DATABASE_URL (no password) + VIBES_DB_PASSWORD, as in production. The test process
 * itself administers through the Unix socket as `postgres` (trust).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { constants as osConstants, tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Client } from "pg";
import { freePort } from "./net";
import { REPO_ROOT } from "./hooks";
import { withPassfile } from "../../hooks/lib/database/childEnv";
import { connectionFromEnv } from "../../hooks/lib/database/connection";
import { runChild, assertSucceeded } from "../../hooks/lib/processes/run";

export const PG_BIN = process.env.VIBES_TEST_PG_BIN ?? "/usr/lib/postgresql/15/bin";
export const APP_DIR = join(REPO_ROOT, "app");
/** The Python that has alembic/sqlalchemy/psycopg2 (the pyenv one first on PATH has not). */
export const APP_PYTHON = process.env.VIBES_TEST_PYTHON ?? "/usr/bin/python3";
export const ROLE = "vibes";

export interface VibesShape {
  users?: number;
  journalsPerUser?: number;
  tags?: number;
  seed?: number;
  /** Alembic revision to build (default 0000_initial: integer ids). */
  revision?: string;
}

export interface TestDatabase {
  name: string;
  /** Env for hooks: DATABASE_URL (no password), VIBES_DB_PASSWORD, VIBES_APP_DIR, PATH. */
  env: NodeJS.ProcessEnv;
}

const asPostgres = process.getuid?.() === 0;

function pgExec(file: string, args: string[]): string {
  // initdb and pg_ctl refuse to run as root.
  const [cmd, argv] = asPostgres ? ["runuser", ["-u", "postgres", "--", file, ...args]] : [file, args];
  return execFileSync(cmd, argv, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export class PgCluster {
  readonly host = "127.0.0.1";
  readonly password = `t3st:pw\\${randomBytes(6).toString("hex")}`;
  private readonly templates = new Map<string, Promise<string>>();
  private stopped = false;

  private constructor(readonly dir: string, readonly port: number) {}

  get dataDir(): string {
    return join(this.dir, "data");
  }

  get socketDir(): string {
    return this.dir;
  }

  static async start(): Promise<PgCluster> {
    const dir = mkdtempSync(join(tmpdir(), "vibes-pg-"));
    if (asPostgres) {
      const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }));
      const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }));
      chownSync(dir, uid, gid);
    }
    const cluster = new PgCluster(dir, await freePort());
    process.once("exit", () => cluster.stopSync());
    // A run stopped by a signal (Ctrl-C, a CI job's timeout) must not leave the cluster running:
    // 'exit' listeners do not run when a signal kills the process, but they do on process.exit.
    // `on`, not `once`: a second signal during the cleanup (mocha forwards Ctrl-C to its worker,
    // which also gets it from the terminal) must not kill the process halfway through it.
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      process.on(signal, () => process.exit(128 + osConstants.signals[signal]));
    }
    const pwfile = join(dir, "superuser.pw");
    writeFileSync(pwfile, "unused\n");
    if (asPostgres) execFileSync("chown", ["postgres", pwfile]);
    pgExec(join(PG_BIN, "initdb"), [
      "-D", cluster.dataDir, "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync",
      "--auth-local=trust", "--auth-host=scram-sha-256", `--pwfile=${pwfile}`,
    ]);
    // Durability is irrelevant for a throwaway cluster; speed matters (CI has 2 cores).
    appendFileSync(join(cluster.dataDir, "postgresql.conf"), [
      `port = ${cluster.port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`,
      "fsync = off", "synchronous_commit = off", "full_page_writes = off", "max_connections = 50",
      "shared_buffers = 64MB", "max_wal_size = 1GB", "",
    ].join("\n"));
    pgExec(join(PG_BIN, "pg_ctl"), ["-D", cluster.dataDir, "-l", join(dir, "server.log"), "-w", "-t", "60", "start"]);
    const quoted = cluster.password.replace(/'/g, "''");
    await cluster.query("postgres", `CREATE ROLE ${ROLE} LOGIN CREATEDB PASSWORD '${quoted}'`);
    return cluster;
  }

  /** A superuser client over the Unix socket. Caller ends it. */
  async adminClient(database = "postgres"): Promise<Client> {
    const client = new Client({ host: this.socketDir, port: this.port, user: "postgres", database });
    await client.connect();
    return client;
  }

  /** Runs SQL as superuser in `database`; returns the rows. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async query(database: string, sql: string, params: unknown[] = []): Promise<any[]> {
    const client = await this.adminClient(database);
    try {
      return (await client.query(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  /** Env for hooks against `database` (no secrets other than VIBES_DB_PASSWORD). */
  env(database: string): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: `postgresql://${ROLE}@${this.host}:${this.port}/${database}`,
      VIBES_DB_PASSWORD: this.password,
      VIBES_APP_DIR: APP_DIR,
    };
  }

  async createDatabase(name = `t_${randomBytes(5).toString("hex")}`, template?: string): Promise<TestDatabase> {
    await this.query("postgres", `CREATE DATABASE ${name} OWNER ${ROLE}${template ? ` TEMPLATE ${template}` : ""}`);
    return { name, env: this.env(name) };
  }

  async dropDatabase(name: string): Promise<void> {
    await this.query("postgres", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }

  async databaseExists(name: string): Promise<boolean> {
    return (await this.query("postgres", "SELECT 1 FROM pg_database WHERE datname = $1", [name])).length > 0;
  }

  /**
   * A database built by the real sample app: `alembic upgrade <revision>` then
   * `python3 -m vibes.generate`. Each shape is built once into a template; later calls copy it
   * (CREATE DATABASE ... TEMPLATE), which takes milliseconds.
   */
  async createVibesDatabase(shape: VibesShape = {}): Promise<TestDatabase> {
    const s = { users: 20, journalsPerUser: 3, tags: 5, seed: 7, revision: "0000_initial", ...shape };
    const key = `${s.revision}/${s.users}/${s.journalsPerUser}/${s.tags}/${s.seed}`;
    if (!this.templates.has(key)) this.templates.set(key, this.buildTemplate(s));
    return this.createDatabase(undefined, await this.templates.get(key)!);
  }

  private async buildTemplate(s: Required<VibesShape>): Promise<string> {
    const db = await this.createDatabase(`tmpl_${randomBytes(5).toString("hex")}`);
    await this.runApp(db.env, ["-m", "alembic", "upgrade", s.revision], "alembic upgrade");
    await this.runApp(db.env, [
      "-m", "vibes.generate", "--users", String(s.users), "--journals-per-user", String(s.journalsPerUser),
      "--tags", String(s.tags), "--seed", String(s.seed),
    ], "vibes.generate");
    // Statistics as a real, analyzed database would have them (the planner's choices depend on it).
    await this.query(db.name, "ANALYZE");
    return db.name;
  }

  /** Runs the app's Python (in `appDir`, default app/) with the database in DATABASE_URL and the
   * password in a PGPASSFILE. */
  async runApp(env: NodeJS.ProcessEnv, args: string[], label: string, appDir = APP_DIR): Promise<void> {
    const settings = connectionFromEnv(env);
    await withPassfile(settings, async (childEnv) => {
      const res = await runChild(APP_PYTHON, args, { env: childEnv, cwd: appDir, label, timeoutMs: 300_000 });
      assertSucceeded(res, label, "see the app's output");
    }, env);
  }

  stopSync(): void {
    if (this.stopped) return;
    this.stopped = true;
    stopPostgres(this.dataDir);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Stops the postmaster of `dataDir` at once (immediate mode), when one runs there. */
export function stopPostgres(dataDir: string): void {
  if (!existsSync(join(dataDir, "postmaster.pid"))) return;
  const [cmd, argv] = asPostgres
    ? ["runuser", ["-u", "postgres", "--", join(PG_BIN, "pg_ctl"), "-D", dataDir, "-m", "immediate", "-w", "stop"]]
    : [join(PG_BIN, "pg_ctl"), ["-D", dataDir, "-m", "immediate", "-w", "stop"]];
  spawnSync(cmd, argv, { stdio: "ignore" });
}

let shared: Promise<PgCluster> | undefined;

/** The test process's cluster, started on first use. */
export function getCluster(): Promise<PgCluster> {
  shared ??= PgCluster.start();
  return shared;
}
