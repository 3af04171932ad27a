// `report slow-queries|unused-indexes|invalid-ids`: the guide's troubleshooting queries, for an
// operator at a terminal (aligned table on stderr) and for scripts (JSON rows on stdout).
import type { Client } from "pg";
import { parseStep } from "../lib/args";
import { connect, connectionFromEnv } from "../lib/database/connection";
import { StepError, UsageError } from "../lib/errors";
import { readColumnTypes, readDataModel } from "../lib/database/dataModel";
import { quoteIdent, quoteTable, tableOids, tablesFromEnv } from "../lib/database/tables";

type Row = Record<string, unknown>;

const ENABLE_PGSS = "add pg_stat_statements to shared_preload_libraries (RDS: in the DB parameter group), restart the server, " +
  "then run CREATE EXTENSION pg_stat_statements; in this database";

async function slowQueries(client: Client, minMeanMs: number, limit: number): Promise<Row[]> {
  const ext = await client.query("SELECT extnamespace::regnamespace::text AS schema FROM pg_extension WHERE extname = 'pg_stat_statements'");
  if (ext.rows.length === 0) throw new StepError("pg_stat_statements is not installed in this database", ENABLE_PGSS);
  const view = `${quoteIdent(ext.rows[0].schema)}.pg_stat_statements`;
  // PostgreSQL 13 renamed total_time/mean_time to total_exec_time/mean_exec_time.
  const cols = await client.query(
    "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attname IN ('total_exec_time', 'total_time')", [view]);
  const modern = cols.rows.some((r) => r.attname === "total_exec_time");
  const [total, mean] = modern ? ["total_exec_time", "mean_exec_time"] : ["total_time", "mean_time"];
  try {
    const res = await client.query(
      `SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query, calls::bigint AS calls,
              round(${total}::numeric, 1)::float8 AS total_ms, round(${mean}::numeric, 1)::float8 AS mean_ms, rows::bigint AS rows
         FROM ${view}
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND ${mean} > $1
        ORDER BY ${mean} DESC LIMIT $2`, [minMeanMs, limit]);
    return res.rows.map((r) => ({ ...r, calls: Number(r.calls), rows: Number(r.rows) }));
  } catch (err) {
    // 55000: the extension exists but the library was not preloaded.
    if ((err as { code?: string }).code === "55000") throw new StepError(`pg_stat_statements is not loaded: ${(err as Error).message}`, ENABLE_PGSS);
    throw err;
  }
}

async function unusedIndexes(client: Client): Promise<Row[]> {
  const res = await client.query(
    `SELECT s.schemaname AS schema, s.relname AS "table", s.indexrelname AS index, s.idx_scan::bigint AS scans,
            pg_relation_size(s.indexrelid)::bigint AS bytes, x.indisunique AS "unique", x.indisprimary AS "primary"
       FROM pg_stat_user_indexes s JOIN pg_index x ON x.indexrelid = s.indexrelid
      WHERE s.idx_scan = 0
      ORDER BY pg_relation_size(s.indexrelid) DESC, s.relname, s.indexrelname`);
  return res.rows.map((r) => ({ ...r, scans: Number(r.scans), bytes: Number(r.bytes) }));
}

const UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/** Per key column of the covered tables (the ids and the foreign keys that follow them, as
 * migrate sees them): values that are NULL or not UUID-shaped. */
async function invalidIds(client: Client, tables: string[]): Promise<Row[]> {
  const oids = await tableOids(client, tables);
  const model = await readDataModel(client, oids);
  const types = await readColumnTypes(client, new Map([...oids].map(([name, oid]) => [oid, name])), true);
  const rows: Row[] = [];
  for (const table of tables) {
    for (const column of model[table].keyColumns) {
      const col = quoteIdent(column);
      const res = await client.query(
        `SELECT count(*)::bigint AS invalid, (array_agg(${col}::text ORDER BY ${col}::text) FILTER (WHERE ${col} IS NOT NULL))[1:5] AS samples
           FROM ${quoteTable(table)} WHERE ${col} IS NULL OR lower(${col}::text) !~ $1`, [UUID_PATTERN]);
      rows.push({ table, column, type: types.get(table)!.get(column)!, invalid: Number(res.rows[0].invalid), samples: res.rows[0].samples ?? [] });
    }
  }
  return rows;
}

function printTable(rows: Row[]): void {
  if (rows.length === 0) {
    process.stderr.write("(no rows)\n");
    return;
  }
  const columns = Object.keys(rows[0]);
  const cell = (v: unknown) => (v === null || v === undefined ? "" : Array.isArray(v) ? v.join(",") : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i])).join("  ").trimEnd() + "\n";
  process.stderr.write(line(columns));
  process.stderr.write(line(widths.map((w) => "-".repeat(w))));
  for (const r of rows) process.stderr.write(line(columns.map((c) => cell(r[c]))));
}

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values, positionals } = parseStep("report", args);
  const minMeanMs = Number(values["min-mean-ms"] ?? "1000");
  const limit = Number(values.limit ?? "20");
  if (!Number.isFinite(minMeanMs) || minMeanMs < 0) throw new UsageError("report: --min-mean-ms must be a non-negative number", "pass --min-mean-ms 1000");
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError("report: --limit must be a positive integer", "pass --limit 20");
  const tables = tablesFromEnv(env);
  const client = await connect(connectionFromEnv(env), { statementTimeout: "5min", applicationName: "vibes-hooks report" });
  try {
    const kind = positionals[0];
    const rows = kind === "slow-queries" ? await slowQueries(client, minMeanMs, limit)
      : kind === "unused-indexes" ? await unusedIndexes(client)
      : await invalidIds(client, tables);
    printTable(rows);
    if (rows.some((r) => r.query === "<insufficient privilege>")) {
      process.stderr.write("some query texts are hidden: grant pg_read_all_stats (or pg_monitor) to this role to see other roles' queries\n");
    }
    return { report: kind, rows };
  } finally {
    await client.end();
  }
}
