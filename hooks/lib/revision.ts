import type { Client } from "pg";

/**
 * The alembic revision recorded in the database, or null when alembic_version does not exist.
 * Several rows (several heads) are joined with ",".
 */
export async function currentRevision(client: Client): Promise<string | null> {
  const exists = await client.query("SELECT to_regclass('alembic_version') IS NOT NULL AS present");
  if (!exists.rows[0].present) return null;
  const res = await client.query("SELECT version_num FROM alembic_version ORDER BY version_num");
  if (res.rows.length === 0) return null;
  return res.rows.map((r: { version_num: string }) => r.version_num).join(",");
}

const RECORD = /^vibes-hooks: at (\S+) with migration files sha256 ([0-9a-f]{64})$/;

/**
 * Records which migration files brought the database to `revision`, as the comment of
 * alembic_version (no schema of our own; it travels with dumps). The promotion gate compares
 * these, not the files a later run merely has on disk. Returns what is recorded: the checksum,
 * or null when it could not be.
 */
export async function recordMigrationFiles(client: Client, revision: string, filesSha256: string, log: (msg: string) => void): Promise<string | null> {
  try {
    const sql = await client.query("SELECT format('COMMENT ON TABLE alembic_version IS %L', $1::text) AS sql",
      [`vibes-hooks: at ${revision} with migration files sha256 ${filesSha256}`]);
    await client.query(sql.rows[0].sql);
    return filesSha256;
  } catch (err) {
    // The migration itself succeeded; only the record is missing (e.g. another role owns the table).
    log(`warning: cannot record the migration files' checksum on alembic_version: ${(err as Error).message}`);
    return null;
  }
}

/** The files checksum recorded for `revision`, or null when none is (migrated by other means). */
export async function recordedMigrationFiles(client: Client, revision: string): Promise<string | null> {
  const res = await client.query("SELECT obj_description(to_regclass('alembic_version'), 'pg_class') AS c");
  const m = RECORD.exec(res.rows[0]?.c ?? "");
  return m && m[1] === revision ? m[2] : null;
}
