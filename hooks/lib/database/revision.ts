import type { Client } from "pg";
import type { Check } from "../../../common/types";
import { quoteIdent } from "./tables";
import type { SchemaSnapshot } from "../proof/schemaSnapshot";

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

/** The schema of the version table this session sees (where a new one would be created when there is none). */
export async function versionTableSchema(client: Client): Promise<string> {
  const res = await client.query(
    `SELECT coalesce((SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('alembic_version')),
                     current_schema(), 'public') AS schema`);
  return res.rows[0].schema;
}

/**
 * What migrate proved about this database, kept as the comment of alembic_version (no schema of
 * our own; it travels with dumps and restores).
 */
export interface DeploymentRecord {
  revision: string;
  /** The migration files that brought the database to `revision`: the promotion gate compares
   * these, not the files a later run merely has on disk. */
  filesSha256: string;
  /** The schema snapshot of each revision the database was proven at: a later rollback to one of
   * them must give back exactly that schema. */
  schemas: Record<string, SchemaSnapshot>;
  /** The validation that proved `revision`, against the backup whose dump has this checksum. */
  validation: { backupSha256: string; at: string; checks: Check[] } | null;
  /** After an online swap: the revision before it, which a swap-back records again. */
  onlineRevisionBefore?: string | null;
}

const PREFIX = "vibes-hooks record ";
// The record of earlier versions: the files checksum only.
const LINE_RECORD = /^vibes-hooks: at (\S+) with migration files sha256 ([0-9a-f]{64})$/;

export async function readRecord(client: Client): Promise<DeploymentRecord | null> {
  const res = await client.query("SELECT obj_description(to_regclass('alembic_version'), 'pg_class') AS c");
  const comment: string = res.rows[0]?.c ?? "";
  const line = LINE_RECORD.exec(comment);
  if (line) return { revision: line[1], filesSha256: line[2], schemas: {}, validation: null };
  if (!comment.startsWith(PREFIX)) return null;
  try {
    const record = JSON.parse(comment.slice(PREFIX.length)) as DeploymentRecord;
    return typeof record.revision === "string" && typeof record.filesSha256 === "string" && record.schemas ? record : null;
  } catch {
    return null;
  }
}

/** Writes the record; false (with a warning) when it cannot, e.g. when another role owns alembic_version. */
export async function writeRecord(client: Client, record: DeploymentRecord, log: (msg: string) => void): Promise<boolean> {
  try {
    const sql = await client.query("SELECT format('COMMENT ON TABLE alembic_version IS %L', $1::text) AS sql", [PREFIX + JSON.stringify(record)]);
    await client.query(sql.rows[0].sql);
    return true;
  } catch (err) {
    // The migration itself succeeded; only the record is missing.
    log(`warning: cannot record the migration files' checksum and schema on alembic_version: ${(err as Error).message}`);
    return false;
  }
}

/** Whether this role may write the record (COMMENT needs the table's owner's privileges). */
export async function canWriteRecord(client: Client): Promise<boolean> {
  const res = await client.query("SELECT pg_has_role(relowner, 'USAGE') AS ok FROM pg_class WHERE oid = to_regclass('alembic_version')");
  return res.rows[0]?.ok === true;
}

/** The files checksum recorded for `revision`, or null when none is (migrated by other means). */
export async function recordedMigrationFiles(client: Client, revision: string): Promise<string | null> {
  const record = await readRecord(client);
  return record?.revision === revision ? record.filesSha256 : null;
}

/**
 * After an online swap the schema is `revision`'s (the app, preflight and a later offline
 * deployment read it from the version table): recorded there, with the revision before it kept
 * in the record for a swap-back. Idempotent; nothing where there is no version table.
 */
export async function recordOnlineSwap(client: Client, revision: string, filesSha256: string, log: (msg: string) => void): Promise<void> {
  const before = await currentRevision(client);
  if (before === null || before === revision) return;
  const table = `${quoteIdent(await versionTableSchema(client))}.alembic_version`;
  await client.query(`UPDATE ${table} SET version_num = $1`, [revision]);
  const previous = await readRecord(client);
  await writeRecord(client, { revision, filesSha256, schemas: previous?.schemas ?? {}, validation: null, onlineRevisionBefore: before }, log);
  log(`revision ${revision} recorded (was ${before})`);
}

/** After a swap-back: the revision recorded before the swap, recorded again. */
export async function recordOnlineSwapBack(client: Client, log: (msg: string) => void): Promise<void> {
  const record = await readRecord(client);
  const before = record?.onlineRevisionBefore;
  if (!record || !before) return;
  const table = `${quoteIdent(await versionTableSchema(client))}.alembic_version`;
  await client.query(`UPDATE ${table} SET version_num = $1`, [before]);
  await writeRecord(client, { ...record, revision: before, validation: null, onlineRevisionBefore: null }, log);
  log(`revision ${before} recorded again`);
}
