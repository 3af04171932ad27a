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
