// What the migrate tests share (alembic mode in migrate.test.ts, SQL files in migrate-sql.test.ts):
// a database with a verified backup, `migrate` bound to it, and looks at the database's state.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { captureState, compareState, loadManifest } from "../../hooks/lib/proof/manifest";
import { plannedMigrationFilesSha256, type MigrationFilesSpec } from "../../common/migrationFiles";
import { APP_PYTHON, type PgCluster, type TestDatabase } from "../support/pgCluster";
import { runHooks, type HooksResult, type RunHooksOptions } from "../support/hooks";

export const TARGET = "001_uuid_schema_migration";
export const BEFORE = "0000_initial";

/** Temporary folders, all removed by `remove()` (call it in `after`). */
export function scratchDirs() {
  const dirs: string[] = [];
  return {
    make(prefix: string): string {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(dir);
      return dir;
    },
    remove: () => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })),
  };
}

export interface Prepared {
  db: TestDatabase;
  env: NodeJS.ProcessEnv;
  manifestUri: string;
  /** `migrate --to <to>` with the latest backup's manifest, the files' planned checksum and the mode's flags. */
  migrate(to: string, extra?: string[], opts?: RunHooksOptions): Promise<HooksResult>;
  /** Takes a backup now (as the program does before a reviewed rollback); later migrates use it. */
  backupNow(label: string): Promise<string>;
}

/** Objects besides the keys that an app depends on, none on an id column (001 rebuilds those): a
 * check constraint, a trigger and a view, owned by the app's role; comments, a column grant and a
 * replica identity that 001 keeps. The schema faults (test/support/faults.ts) drop or change them. */
export const SCHEMA_EXTRAS = `ALTER TABLE journals ADD CONSTRAINT journals_title_not_blank CHECK (title <> '');
  CREATE FUNCTION keep_created_at() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.created_at := OLD.created_at; RETURN NEW; END $$;
  ALTER FUNCTION keep_created_at() OWNER TO vibes;
  CREATE TRIGGER journals_keep_created_at BEFORE UPDATE ON journals FOR EACH ROW EXECUTE FUNCTION keep_created_at();
  CREATE VIEW journal_titles AS SELECT title, created_at FROM journals; ALTER VIEW journal_titles OWNER TO vibes;
  COMMENT ON TABLE users IS 'people who sign in';
  COMMENT ON COLUMN journals.title IS 'shown in lists';
  COMMENT ON CONSTRAINT journals_title_not_blank ON journals IS 'the app rejects blank titles too';
  COMMENT ON INDEX users_email_key IS 'sign-in lookup';
  GRANT SELECT (email) ON users TO PUBLIC;
  ALTER TABLE tags REPLICA IDENTITY FULL`;

/** A fresh Vibes database at 0000_initial (with `setupSql` run as superuser) and a verified backup in `backupDir`. In sql mode the
 * hook gets neither the app's folder nor a Python: the SQL files must be all it needs. `extraEnv` (VIBES_TABLES, ...) is the hooks' too. */
export async function prepareDatabase(pg: PgCluster, backupDir: string, files: MigrationFilesSpec, setupSql = "", extraEnv: NodeJS.ProcessEnv = {}): Promise<Prepared> {
  const db = await pg.createVibesDatabase({ users: 12, journalsPerUser: 3, tags: 4 });
  if (setupSql) await pg.query(db.name, setupSql);
  const env: NodeJS.ProcessEnv = { ...db.env, VIBES_BACKUP_TARGET: "local", VIBES_BACKUP_DIR: backupDir, ...extraEnv };
  if (files.mode === "alembic") {
    Object.assign(env, { VIBES_APP_DIR: files.appDir, VIBES_PYTHON: APP_PYTHON });
  } else {
    delete env.VIBES_APP_DIR;
    env.VIBES_PYTHON = "/nonexistent/python3";
  }
  let latest = "";
  const backupNow = async (label: string) => {
    const backup = await runHooks("backup", ["--label", label], env);
    assert.equal(backup.code, 0, backup.stderr);
    latest = backup.json.manifestUri;
    return latest;
  };
  const manifestUri = await backupNow(`for-${TARGET}`);
  const sha = plannedMigrationFilesSha256(files);
  const modeFlags = files.mode === "sql" ? ["--mode", "sql", "--sql-dir", files.sqlDir] : [];
  const migrate = (to: string, extra: string[] = [], opts: RunHooksOptions = {}) =>
    runHooks("migrate", ["--to", to, "--manifest", latest, "--files-sha256", sha, ...modeFlags, ...extra], env, opts);
  return { db, env, manifestUri, migrate, backupNow };
}

export const revisionOf = async (pg: PgCluster, db: string) => (await pg.query(db, "SELECT version_num FROM alembic_version"))[0]?.version_num;
export const idType = async (pg: PgCluster, db: string) =>
  (await pg.query(db, "SELECT data_type FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'id'"))[0].data_type;

/** The checks that fail when comparing the database's data with the manifest (empty: all data is
 * there); the ids too with `ids` (at the manifest's revision). */
export async function dataDifferences(pg: PgCluster, db: string, manifestUri: string, env: NodeJS.ProcessEnv, opts = { ids: false }): Promise<string[]> {
  const manifest = await loadManifest(manifestUri, env);
  const client = await pg.adminClient(db);
  try {
    const state = await captureState(client, Object.keys(manifest.tables), { reference: manifest, ids: opts.ids });
    return compareState(manifest, state, opts).filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
  } finally {
    await client.end();
  }
}

export const resultOf = (res: HooksResult) => {
  const { revisionBefore, revisionAfter, changed, rolledBack, restoredFromBackup } = res.json;
  return { revisionBefore, revisionAfter, changed, rolledBack, restoredFromBackup };
};
