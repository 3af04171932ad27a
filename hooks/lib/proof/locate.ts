// Where the data differs: when a table's content or relationship fingerprint differs from the
// backup's, which rows. The backup's rows are read from a scratch restore of its dump (data only,
// no indexes). Both sides are bucketed by the top 12 bits of each row's hash, as data-diff tools
// bisect key ranges (the ids cannot be the key: the migration changes them); a bucket whose count
// or sum differs is split by the next 12 bits until it holds few rows, whose hashes are then
// matched. Memory stays flat: 4096 buckets, or one bucket's rows, at a time.
import type { Client } from "pg";
import { setSessionSettings, withClient, type ConnectionSettings } from "../database/connection";
import { errorMessage } from "../errors";
import { rowHashesSql } from "./fingerprint";
import type { Check } from "../../../common/types";
import { fingerprintSession, type Manifest } from "./manifest";
import { withRestoredScratch } from "../database/scratchRestore";

export interface DifferingRows {
  table: string;
  /** The hash that found them: content, or relationships (same content, other parents). */
  by: "content" | "relationships";
  /** Rows as the backup has them and the database does not: each row's content columns and its parents'. */
  onlyInBackup: string[];
  /** Rows as the database has them and the backup does not. */
  onlyNow: string[];
  /** Whether more rows differ than are named. */
  more: boolean;
}

const BITS = 12;
const LEVELS = 5; // 5 x 12 of the hash's 64 bits
const ROWS_PER_FETCH = 2000;
const ROWS_NAMED = 5;
const BUCKETS_PER_LEVEL = 5;

interface Side {
  client: Client;
  /** Each row's two hashes and label (rowHashesSql), computed once per row. */
  rows: string;
}

/** Both queries to their end, also when one fails: none may run on after this returns (on the
 * live database it would hold locks the rollback's ALTERs wait for). */
async function both<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [x, y] = await Promise.allSettled([a, b]);
  if (x.status === "rejected") throw x.reason;
  if (y.status === "rejected") throw y.reason;
  return [x.value, y.value];
}

const bucketOf = (level: number) => `((h >> ${64 - BITS * (level + 1)}) & ${(1 << BITS) - 1})`;
const within = (path: number[]) => (path.length === 0 ? "true" : path.map((b, level) => `${bucketOf(level)} = ${b}`).join(" AND "));

async function buckets(side: Side, by: DifferingRows["by"], path: number[]): Promise<Map<number, { n: number; sum: string }>> {
  const res = await side.client.query(
    `SELECT ${bucketOf(path.length)} AS b, count(*)::bigint AS n, sum(h)::text AS sum
       FROM (SELECT ${by} AS h FROM (${side.rows}) r OFFSET 0) x WHERE ${within(path)} GROUP BY 1`);
  return new Map(res.rows.map((r) => [Number(r.b), { n: Number(r.n), sum: r.sum as string }]));
}

async function rowsIn(side: Side, by: DifferingRows["by"], path: number[]): Promise<{ h: string; label: string }[]> {
  const res = await side.client.query(
    `SELECT h::text AS h, label FROM (SELECT ${by} AS h, label FROM (${side.rows}) r OFFSET 0) x WHERE ${within(path)} LIMIT ${ROWS_PER_FETCH}`);
  return res.rows;
}

/** The rows of `table` whose `by` hash is on one side only, narrowed down bucket by bucket. */
async function locateTable(live: Side, backup: Side, table: string, by: DifferingRows["by"]): Promise<DifferingRows> {
  const out: DifferingRows = { table, by, onlyInBackup: [], onlyNow: [], more: false };
  const enough = () => out.onlyInBackup.length >= ROWS_NAMED && out.onlyNow.length >= ROWS_NAMED;
  const name = (list: string[], label: string) => (list.length < ROWS_NAMED ? list.push(label) : (out.more = true));

  async function match(path: number[]): Promise<void> {
    const [now, then] = await both(rowsIn(live, by, path), rowsIn(backup, by, path));
    const count = new Map<string, number>();
    for (const r of then) count.set(r.h, (count.get(r.h) ?? 0) + 1);
    const unmatchedNow = now.filter((r) => {
      const n = count.get(r.h) ?? 0;
      if (n > 0) count.set(r.h, n - 1);
      return n === 0;
    });
    for (const r of unmatchedNow) name(out.onlyNow, r.label);
    for (const r of then) {
      const n = count.get(r.h) ?? 0;
      if (n > 0) {
        count.set(r.h, n - 1);
        name(out.onlyInBackup, r.label);
      }
    }
  }

  async function narrow(path: number[]): Promise<void> {
    const [now, then] = await both(buckets(live, by, path), buckets(backup, by, path));
    const differing = [...new Set([...now.keys(), ...then.keys()])]
      .filter((b) => now.get(b)?.n !== then.get(b)?.n || now.get(b)?.sum !== then.get(b)?.sum)
      .sort((a, b) => a - b);
    if (differing.length > BUCKETS_PER_LEVEL) out.more = true;
    for (const b of differing.slice(0, BUCKETS_PER_LEVEL)) {
      if (enough()) {
        out.more = true;
        return;
      }
      const rows = Math.max(now.get(b)?.n ?? 0, then.get(b)?.n ?? 0);
      if (rows <= ROWS_PER_FETCH || path.length + 1 >= LEVELS) await match([...path, b]);
      else await narrow([...path, b]);
    }
  }

  await narrow([]);
  return out;
}

/**
 * The columns that name a row of `table`: its first unique key made of content columns alone
 * (users.email), else all its content columns. Not a column the app keeps to itself
 * (password_hash) where a unique one will do.
 */
export function labelColumns(manifest: Manifest, table: string): string[] {
  const content = manifest.tables[table].contentColumns;
  for (const c of Object.values(manifest.schema.tables[table]?.constraints ?? {})) {
    const m = /^(?:UNIQUE|PRIMARY KEY) \(([^)]+)\)$/.exec(c.definition);
    const columns = m?.[1].split(", ").map((x) => x.replace(/^"(.*)"$/, "$1").replace(/""/g, '"'));
    if (columns && columns.every((x) => content.includes(x))) return columns;
  }
  return content;
}

/** The tables whose content or relationship checks failed, and the hash that finds their rows. */
export function tablesToLocate(failed: Check[]): [string, DifferingRows["by"]][] {
  const of = (kind: string) => new Set(failed.filter((c) => !c.ok && c.name.startsWith(`data.${kind}.`)).map((c) => c.name.slice(`data.${kind}.`.length)));
  const content = of("content");
  const relationships = of("relationships");
  return [...new Set([...content, ...relationships])].map((t) => [t, content.has(t) ? "content" : "relationships"]);
}

/**
 * Names up to a few differing rows of each table whose data checks failed, reading the backup's
 * rows from a scratch restore of its dump, or from `backup.database`, a database proven equal to
 * it (the copy swapped in after a rollback: no restore then). `backup.budgetMs` bounds each query,
 * and no table is begun after it has passed: the database is back already, the names are a help.
 * Never fails: what cannot be located is reported (a dropped column, a missing CREATEDB privilege)
 * and the caller goes on (a rollback must not wait on it). Returns null when nothing could be located.
 */
export async function locateDifferingRows(
  live: Client,
  settings: ConnectionSettings,
  manifest: Manifest,
  failed: Check[],
  env: NodeJS.ProcessEnv,
  log: (m: string) => void,
  backup?: { database: ConnectionSettings; budgetMs: number },
): Promise<DifferingRows[] | null> {
  const wanted = tablesToLocate(failed);
  if (wanted.length === 0) return null;
  const started = Date.now();
  log(`locating the differing rows of ${wanted.map(([t]) => t).join(", ")} (${backup ? `against ${backup.database.database}, proven equal to the backup` : "a scratch restore of the backup's data"})`);
  try {
    const tables = Object.keys(manifest.tables);
    const compare = async (backupClient: Client) => {
      const session = async (client: Client) => {
        const fingerprinting = await fingerprintSession(client, tables, manifest);
        if (backup) await setSessionSettings(client, [["statement_timeout", String(backup.budgetMs)]]);
        return { client, ...fingerprinting };
      };
      const sides = await both(session(live), session(backupClient));
      const out: DifferingRows[] = [];
      for (const [table, by] of wanted) {
        if (backup && Date.now() - started > backup.budgetMs) {
          log(`warning: not located within ${backup.budgetMs / 1000}s: ${table}`);
          continue;
        }
        const [l, b] = sides.map((s): Side => ({ client: s.client, rows: rowHashesSql(s.model, table, s.types, (t) => labelColumns(manifest, t)) }));
        try {
          out.push(await locateTable(l, b, table, by));
        } catch (err) {
          log(`warning: cannot locate the rows of ${table}: ${errorMessage(err)}`);
        }
      }
      return out;
    };
    const located = backup
      ? await withClient(backup.database, "locate", compare)
      : await withRestoredScratch(settings, manifest.dump.uri, env, { log, purpose: "locate", sections: ["pre-data", "data"] }, compare);
    for (const d of located) {
      log(`${d.table} (${d.by}): ${d.onlyInBackup.length + d.onlyNow.length}${d.more ? "+" : ""} rows differ`);
      for (const r of d.onlyInBackup) log(`  in the backup, not now: ${r}`);
      for (const r of d.onlyNow) log(`  now, not in the backup: ${r}`);
    }
    log(`located in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return located;
  } catch (err) {
    log(`warning: the differing rows could not be located (${errorMessage(err)}); compare by hand: restore it into a scratch database (DATABASE_URL=<scratch> vibes-hooks restore --uri ${manifest.dump.uri})`);
    return null;
  }
}
