// One end-to-end environment: a freshly generated database in the shared throwaway cluster, the
// real sample app running on its own port and run folder, and the rehearsal pointed at both
// through --config overrides of the dev stack.
import { strict as assert } from "assert";
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PgCluster, TestDatabase, VibesShape, getCluster, APP_DIR, ROLE } from "../support/pgCluster";
import { REPO_ROOT } from "../support/hooks";
import { freePort } from "../support/net";
import { appWithFault, type Fault } from "../support/faults";
import { runRehearsal, RehearsalRun } from "../rehearsal/cli";

export const ADMIN_TOKEN_PREFIX = "adm-";
export const SHAPE = { users: 30, journalsPerUser: 3 };

/** The graph's stage order (docs/architecture.md), as the dev stack names its components. */
export const DEV_STAGE_ORDER = [
  "preflight", "gates", "backup-vault", "backup", "maintenance-on", "migration", "validation", "app-release", "post-deploy-checks", "maintenance-off",
];

export interface E2eEnv {
  pg: PgCluster;
  db: TestDatabase;
  dir: string;
  runDir: string;
  port: number;
  appUrl: string;
  adminToken: string;
  backupDir: string;
  /** Env for the rehearsal process: the app scripts read VIBES_RUN_DIR, VIBES_PORT, PGPASSFILE from it. */
  runnerEnv: NodeJS.ProcessEnv;
}

function appScript(e: Pick<E2eEnv, "db" | "runDir" | "port" | "dir" | "adminToken">, script: "start.sh" | "stop.sh"): void {
  execFileSync(path.join(APP_DIR, "scripts", script), [], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: e.db.env.DATABASE_URL,
      PGPASSFILE: path.join(e.dir, "pgpass"),
      VIBES_ADMIN_TOKEN: e.adminToken,
      VIBES_RUN_DIR: e.runDir,
      VIBES_PORT: String(e.port),
    },
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 60_000,
  });
}

export async function setUp(shape: VibesShape = SHAPE): Promise<E2eEnv> {
  const pg = await getCluster();
  const db = await pg.createVibesDatabase(shape);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vibes-e2e-"));
  const runDir = path.join(dir, "run");
  const port = await freePort();
  const adminToken = ADMIN_TOKEN_PREFIX + crypto.randomBytes(12).toString("hex");
  const backupDir = path.join(dir, "backups");
  const write = (name: string, content: string) => fs.writeFileSync(path.join(dir, name), content, { mode: 0o600 });
  write("db-password", `${pg.password}\n`);
  write("admin-token", `${adminToken}\n`);
  // libpq's passfile escapes ':' and '\' in its fields.
  write("pgpass", `${pg.host}:${pg.port}:*:${ROLE}:${pg.password.replace(/([:\\])/g, "\\$1")}\n`);
  const e: E2eEnv = {
    pg, db, dir, runDir, port, adminToken, backupDir,
    appUrl: `http://127.0.0.1:${port}`,
    runnerEnv: { ...process.env, VIBES_RUN_DIR: runDir, VIBES_PORT: String(port), PGPASSFILE: path.join(dir, "pgpass") },
  };
  appScript(e, "start.sh");
  return e;
}

/** Restarts the app as the dev stack's restartCommand does (stop.sh, then start.sh, which returns once /health answers). */
export function restartApp(e: E2eEnv): void {
  appScript(e, "stop.sh");
  appScript(e, "start.sh");
}

export async function tearDown(e: E2eEnv | undefined): Promise<void> {
  if (!e) return;
  try {
    appScript(e, "stop.sh");
  } finally {
    await e.pg.dropDatabase(e.db.name);
    fs.rmSync(e.dir, { recursive: true, force: true });
  }
}

/** Runs the whole program (dev stack) against this environment; `overrides` win. */
export function rehearse(e: E2eEnv, overrides: Record<string, string> = {}, timeoutMs?: number): Promise<RehearsalRun> {
  const config: Record<string, string> = {
    databaseUrl: e.db.env.DATABASE_URL!,
    databasePasswordFile: path.join(e.dir, "db-password"),
    adminTokenFile: path.join(e.dir, "admin-token"),
    appUrl: e.appUrl,
    backupDir: e.backupDir,
    // The dev stack restarts through scripts/dev-env.sh (its own cluster); this app runs on
    // its own port and run folder, which the scripts read from the runner's environment.
    restartCommand: "app/scripts/stop.sh && app/scripts/start.sh",
    healthGateTimeoutSeconds: "30",
    healthGateIntervalSeconds: "1",
    ...overrides,
  };
  const args = ["--stack", "dev", ...Object.entries(config).flatMap(([k, v]) => ["--config", `${k}=${v}`])];
  return runRehearsal(args, e.runnerEnv, timeoutMs);
}

/** A copy of app/ whose 001 revision is one of app/testing/faulty_revisions/<name>.py. */
export function faultyAppDir(e: E2eEnv, name: Fault): string {
  return appWithFault(path.join(e.dir, `app-${name}`), name);
}

export function appPid(e: E2eEnv): number {
  return Number(fs.readFileSync(path.join(e.runDir, "vibes.pid"), "utf8").trim());
}

export async function getJson(e: E2eEnv, urlPath: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(e.appUrl + urlPath, { headers, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.json() };
}

export async function maintenanceOn(e: E2eEnv): Promise<boolean> {
  const r = await getJson(e, "/admin/maintenance", { "X-Admin-Token": e.adminToken });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.maintenance as boolean;
}

export interface DataPicture {
  revision: string;
  idTypes: Record<string, string>;
  counts: Record<string, number>;
  /** email -> password hash and creation time: every user's content. */
  users: Record<string, string>;
  /** email -> sorted titles of that user's journals (with content digest). */
  journalsByOwner: Record<string, string[]>;
  /** owner email + journal title -> sorted tag names. */
  tagsByJournal: Record<string, string[]>;
  tags: string[];
}

/** Everything the change must keep, independent of how ids are spelled. */
export async function dataPicture(pg: PgCluster, database: string): Promise<DataPicture> {
  const q = (sql: string) => pg.query(database, sql);
  const [rev] = await q("SELECT version_num FROM alembic_version");
  const types = await q(`SELECT table_name || '.' || column_name AS col, data_type FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name IN ('users','journals','tags','journal_tags')
          AND column_name IN ('id','user_id','journal_id','tag_id') ORDER BY 1`);
  const counts: Record<string, number> = {};
  for (const t of ["users", "journals", "tags", "journal_tags"]) counts[t] = Number((await q(`SELECT count(*) AS n FROM ${t}`))[0].n);
  const users = await q("SELECT email, password_hash || '|' || created_at::text AS v FROM users ORDER BY email");
  const journals = await q(`SELECT u.email, json_agg(j.title || '|' || md5(j.content) || '|' || j.created_at::text ORDER BY j.title, j.created_at) AS titles
        FROM users u JOIN journals j ON j.user_id = u.id GROUP BY u.email ORDER BY u.email`);
  const tagged = await q(`SELECT u.email || '/' || j.title || '/' || j.created_at::text AS k, json_agg(t.name ORDER BY t.name) AS tags
        FROM journal_tags jt JOIN journals j ON j.id = jt.journal_id JOIN users u ON u.id = j.user_id JOIN tags t ON t.id = jt.tag_id
        GROUP BY 1 ORDER BY 1`);
  const tags = await q("SELECT name FROM tags ORDER BY name");
  return {
    revision: rev?.version_num,
    idTypes: Object.fromEntries(types.map((r) => [r.col, r.data_type])),
    counts,
    users: Object.fromEntries(users.map((r) => [r.email, r.v])),
    journalsByOwner: Object.fromEntries(journals.map((r) => [r.email, r.titles])),
    tagsByJournal: Object.fromEntries(tagged.map((r) => [r.k, r.tags])),
    tags: tags.map((r) => r.name),
  };
}

/** Columns, constraints and indexes: "exactly as before" for a failed migration. */
export async function schemaPicture(pg: PgCluster, database: string): Promise<unknown> {
  return {
    columns: await pg.query(database, `SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns
            WHERE table_schema = 'public' ORDER BY 1, 2`),
    constraints: await pg.query(database, `SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def, convalidated
            FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2`),
    indexes: await pg.query(database, "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2"),
  };
}

export function assertIdTypes(p: DataPicture, type: "uuid" | "integer"): void {
  assert.equal(Object.keys(p.idTypes).length, 6, JSON.stringify(p.idTypes));
  for (const [col, t] of Object.entries(p.idTypes)) assert.equal(t, type, `${col} is ${t}`);
}

/** The data part of a picture, for comparing before and after (revision and id types differ). */
export function content(p: DataPicture): Omit<DataPicture, "revision" | "idTypes"> {
  return { counts: p.counts, users: p.users, journalsByOwner: p.journalsByOwner, tagsByJournal: p.tagsByJournal, tags: p.tags };
}

/** Fails when a secret appears anywhere the rehearsal printed. */
export function assertNoSecrets(run: RehearsalRun, e: E2eEnv): void {
  for (const s of [e.pg.password, encodeURIComponent(e.pg.password), e.adminToken]) {
    assert.ok(!run.output.includes(s), `a secret leaked into the rehearsal output`);
  }
}

/** Stage statuses by name, e.g. { migration: "failed", "app-release": "not-run" }. */
export function stageStatus(run: RehearsalRun): Record<string, string> {
  return Object.fromEntries(run.summary.stages.map((s) => [s.name, s.status]));
}

export { REPO_ROOT };
