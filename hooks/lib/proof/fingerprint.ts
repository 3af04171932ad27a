// The data fingerprints: per covered table, one pass inside PostgreSQL that returns the row
// count, three order-independent sums of 64-bit row hashes and the row-level checks. The hook's
// memory does not grow with the data; PostgreSQL may run each pass with parallel workers.
//
//   content        each row's content columns (what the migration must not touch)
//   relationships  each row's content with its parents' identities, transitively: a journal's
//                  identity holds its owner's, a tag link's holds its journal's and so that
//                  user's; it survives any change of the key values and sees a row moved to
//                  another parent, also to one with the same content whose own parent differs.
//                  A self-reference (users.invited_by) is followed to the end of its chain, also
//                  around a loop in the data (see chain below)
//   ids            each row's content hash with its key values, so every column of the row:
//                  whether the rows, ids included, are the same ones (only comparable at the
//                  same revision: the unchanged check, a rollback). Equal ids and row counts
//                  imply equal relationships and orphans, so that pass needs no joins.
import { createHash } from "node:crypto";
import type { Client } from "pg";
import type { DataModel, Edge, TableModel } from "../database/dataModel";
import { quoteIdent, quoteTable } from "../database/tables";

export interface TableData {
  rows: number;
  contentFingerprint: string;
  /** Null when not computed (a pass with ids alone). */
  relationshipFingerprint: string | null;
  /** Null when not computed (after a change of the ids they cannot compare). */
  idFingerprint: string | null;
  /** Per parent edge (constraint name): rows whose key has no parent row; null with the relationships. */
  orphans: Record<string, number> | null;
  /** Rows with a NULL id (no primary key would allow it). */
  nullIds: number;
  /** uuid ids not of the expected version; null when not checked. */
  badUuids: number | null;
}

export interface FingerprintOptions {
  ids: boolean;
  /** The relationship fingerprints and orphans (the joins to each row's ancestors). */
  relationships: boolean;
  /** Check uuid ids for this RFC 9562 version (and variant); null: not checked. */
  uuidVersion: number | null;
}

// Types hashed by their own hash function, on the stored value: building each row's text cost
// 3x as much. Values equal under the type's equality hash equal (numeric 1.0 and 1.00 too).
// Text types are hashed byte for byte (COLLATE "C": a nondeterministic collation would hash 'A'
// like 'a'). Any other type (json, arrays, enums, domains...) is hashed through its text form.
const NATIVE_HASH_TYPES = new Set([
  "smallint", "integer", "bigint", "numeric", "real", "double precision", "boolean", "uuid", "bytea", "jsonb",
  "date", "time without time zone", "timestamp without time zone", "timestamp with time zone", "interval",
]);
const TEXT_TYPES = new Set(["text", "character varying", "character"]);

function hashedColumn(alias: string, column: string, type: string | undefined): string {
  const ref = `${alias}.${quoteIdent(column)}`;
  if (type !== undefined && TEXT_TYPES.has(type)) return `${ref} COLLATE "C"`;
  return type !== undefined && NATIVE_HASH_TYPES.has(type) ? ref : `${ref}::text COLLATE "C"`;
}

/**
 * A row's 64-bit hash over `fields` (hash_record_extended, PostgreSQL 14 or later), mixed as a
 * whole. The record hash alone only adds up its fields' hashes (31 * previous + next), so a sum of
 * such row hashes would depend on each column's values but not on which values share a row: two
 * rows swapping a title, or two journals swapping users, would leave it unchanged. Hashing the
 * record hash's 8 bytes once more (hash_any, a full 64-bit mix) ties each row's fields together.
 */
function rowHash(fields: string[]): string {
  return `hash_record_extended(ROW(int8send(hash_record_extended(ROW(${fields.join(", ")}), 0))), 0)`;
}

/** A hash as a record field: its 8 bytes (a bigint would be folded to 32 bits by hashint8extended). */
const bytes = (hash: string) => `int8send(${hash})`;

/** A row's hash over a hash and the hashes it hangs on (each NULL where there is none). */
const link = (hash: string, parents: string[]) => rowHash([hash, ...parents].map(bytes));

const selfEdges = (model: DataModel, table: string) => model[table].parents.filter((e) => e.table === table);

/**
 * A chain's rows grouped by their key, one row per key already, for the planner: it then counts
 * 200 of them instead of the recursion's guess (ten times its first level, many times the table),
 * with which it hashed all of journals to join their users rather than the users. Only for a
 * query run with hash joins only (withHashJoinsOnly): otherwise, counting so few, it read all of
 * the chain again for each user.
 */
const grouped = (chain: string, keys: string[]) => `SELECT ${keys.join(", ")}, min(h) AS h FROM (${chain}) c GROUP BY ${keys.join(", ")}`;

/** Builds one table's pass: the joins to its ancestors and the hash expressions over them. */
class TablePass {
  private readonly joins: string[] = [];
  /** The chains' WITH entries, each after those it reads. */
  private readonly ctes: string[] = [];
  private readonly chains = new Map<string, string>();
  private aliases = 0;

  /** `hashJoinsOnly`: the query will run with hash joins only (withHashJoinsOnly). */
  constructor(private readonly model: DataModel, private readonly types: Map<string, Map<string, string>>, private readonly hashJoinsOnly = false) {}

  /** Whether the expressions built so far follow a self-reference's chain. */
  get followsChains(): boolean {
    return this.ctes.length > 0;
  }

  content(table: string, alias: string): string {
    return rowHash(this.model[table].contentColumns.map((c) => hashedColumn(alias, c, this.types.get(table)?.get(c))));
  }

  /** Identity through the edges that close no cycle: content, then each parent's identity. Its
   * parents' joins go to `joins`. */
  private base(table: string, alias: string, joins: string[]): string {
    const parents = this.model[table].parents.filter((e) => !e.cyclic).map((e) => this.parent(alias, e, joins).hash);
    const content = this.content(table, alias);
    return parents.length === 0 ? content : link(content, parents);
  }

  /** A row's identity: its base, and the chain of each of its self-references (their joins to
   * `joins`). Without self-references, the base: the fingerprints of such schemas are those of
   * manifests written before chains were followed. Across an edge of a cycle through other tables
   * (a -> b -> a) a parent's identity still stops at the cycle. */
  identity(table: string, alias: string, joins: string[]): string {
    const base = this.base(table, alias, joins);
    const chains = selfEdges(this.model, table).map((e) => {
      const name = this.chain(table, e);
      const a = `a${this.aliases++}`;
      joins.push(`LEFT JOIN ${name} ${a} ON ${e.columns.map((c, i) => `${alias}.${quoteIdent(c)} = ${a}.k${i}`).join(" AND ")}`);
      return `${a}.h`;
    });
    return chains.length === 0 ? base : link(base, chains);
  }

  /**
   * The WITH entries giving, per row of `table` that `edge` can point at (its referenced columns
   * k0.. not NULL), its identity with its ancestors along `edge`: h = link(base, parent's h), the
   * parent's NULL where there is none (a NULL key or an orphan). The bases are computed once
   * (`_nodes`), the chains top-down (`_down`): from the rows without a parent to their children,
   * one level per step, each row once. Each step finds the children in the table itself: given
   * its statistics the planner hashes it (with the bases) once for all the steps; a copy without
   * statistics it sorted again at every level, as it does the table itself just after a migration,
   * before its new columns have any (hence withHashJoinsOnly). Rows never reached are in a loop of
   * the data or below one (a invites b invites a): each walks up (`_loop`) until its first
   * repeated row and hashes the bases met, in order, and where the loop closes, in which no id
   * takes part. The walk costs such a row its distance to the loop and the loop's length; there
   * are normally none, and then it does not start. Only `edge` is followed along the chain: with
   * several self-references (manager_id, mentor_id) a row's identity holds each one's chain.
   */
  private chain(table: string, edge: Edge): string {
    const key = `${table}\u0000${edge.constraint}`;
    const known = this.chains.get(key);
    if (known !== undefined) return known;
    // A WITH entry would hide a covered table of its name.
    let name = `chain${this.chains.size}`;
    while (["", "_nodes", "_down", "_loop"].some((suffix) => this.model[`${name}${suffix}`] !== undefined)) name = `_${name}`;
    const k = edge.refColumns.map((_, i) => `k${i}`);
    const p = edge.columns.map((_, i) => `p${i}`);
    const s = k.map((c) => `s${c}`);
    const list = (alias: string, cs: string[]) => cs.map((c) => `${alias}.${c}`).join(", ");
    const eq = (as: string[], bs: string[]) => as.map((c, i) => `${c} = ${bs[i]}`).join(" AND ");
    const ref = (alias: string) => edge.refColumns.map((c) => `${alias}.${quoteIdent(c)}`);
    const fk = (alias: string) => edge.columns.map((c) => `${alias}.${quoteIdent(c)}`);
    const t = quoteTable(table);
    const withBase = `${t} x JOIN ${name}_nodes n ON ${eq(ref("x"), k.map((c) => `n.${c}`))}`;
    const a = `a${this.aliases++}`;
    const joins: string[] = [];
    const base = this.base(table, a, joins);
    const chain = `
    SELECT ${k.join(", ")}, h FROM ${name}_down
    UNION ALL
    SELECT ${s.join(", ")}, ${rowHash([bytes("h"), "array_position(path, path[cardinality(path)])"])} FROM ${name}_loop WHERE looped`;
    this.ctes.push(
      `${name}_nodes(${k.join(", ")}, base) AS MATERIALIZED (
    SELECT ${ref(a).join(", ")}, ${base} FROM ${t} ${a} ${joins.join(" ")} WHERE ${ref(a).map((c) => `${c} IS NOT NULL`).join(" AND ")})`,
      `${name}_down(${k.join(", ")}, h) AS (
    SELECT ${list("n", k)}, ${link("n.base", ["NULL::bigint"])} FROM ${withBase}
     WHERE ${[...fk("x").map((c) => `${c} IS NULL`), `NOT EXISTS (SELECT FROM ${t} y WHERE ${eq(ref("y"), fk("x"))})`].join(" OR ")}
    UNION ALL
    SELECT ${list("n", k)}, ${link("n.base", ["d.h"])} FROM ${name}_down d JOIN ${withBase} ON ${eq(fk("x"), k.map((c) => `d.${c}`))})`,
      `${name}_loop(${[...s, ...k, ...p].join(", ")}, h) AS (
    SELECT ${list("n", k)}, ${list("n", k)}, ${fk("x").join(", ")}, n.base FROM ${withBase}
     WHERE (SELECT count(*) FROM ${name}_down) < (SELECT count(*) FROM ${name}_nodes)
       AND NOT EXISTS (SELECT FROM ${name}_down d WHERE ${eq(k.map((c) => `d.${c}`), k.map((c) => `n.${c}`))})
    UNION ALL
    SELECT ${list("w", s)}, ${list("n", k)}, ${fk("x").join(", ")}, ${link("w.h", ["n.base"])} FROM ${name}_loop w JOIN ${withBase} ON ${eq(ref("x"), p.map((c) => `w.${c}`))}
  ) CYCLE ${k.join(", ")} SET looped USING path`,
      `${name}(${k.join(", ")}, h) AS (${this.hashJoinsOnly ? grouped(chain, k) : chain})`,
    );
    this.chains.set(key, name);
    return name;
  }

  /**
   * Joins the parent of `childAlias` through `edge` (to `joins`); its identity, NULL when there is
   * no parent row (a NULL key or an orphan), which the record hash tells from any parent's. The
   * parent is a subquery of its key, the `exposed` columns and its identity: PostgreSQL flattens it
   * and computes the identity once per parent row, below the join (the join's hash table holds a
   * key and a hash, not the parent's columns), not once per child row: a journal's identity is
   * hashed once, not once for each of its tags. The same values; the relationship pass is 1.5x as
   * fast at 10^5 and 10^6 journals.
   */
  parent(childAlias: string, edge: Edge, joins: string[], exposed: string[] = []): { hash: string; alias: string } {
    const alias = `a${this.aliases++}`;
    const parentJoins: string[] = [];
    const identity = this.identity(edge.table, alias, parentJoins);
    const columns = [...new Set([...edge.refColumns, ...exposed])];
    let name = "identity";
    while (this.types.get(edge.table)?.has(name)) name = `_${name}`;
    const select = [...columns.map((c) => `${alias}.${quoteIdent(c)}`), `${identity} AS ${quoteIdent(name)}`].join(", ");
    const on = edge.columns.map((c, i) => `${childAlias}.${quoteIdent(c)} = ${alias}.${quoteIdent(edge.refColumns[i])}`).join(" AND ");
    joins.push(`LEFT JOIN (SELECT ${select} FROM ${quoteTable(edge.table)} ${alias} ${parentJoins.join(" ")}) ${alias} ON ${on}`);
    const present = `${alias}.${quoteIdent(edge.refColumns[0])} IS NOT NULL`;
    return { hash: `CASE WHEN ${present} THEN ${alias}.${quoteIdent(name)} END`, alias };
  }

  /** The row hashes of `table` (alias t), joining its parents (with their `exposed` columns). */
  rowHashes(table: string, exposed: (table: string) => string[] = () => []): { content: string; relationship: string; parents: { edge: Edge; hash: string; alias: string }[] } {
    const content = this.content(table, "t");
    const parents = this.model[table].parents.map((e) => ({ edge: e, ...this.parent("t", e, this.joins, exposed(e.table)) }));
    const relationship = parents.length === 0 ? content : link(content, parents.map((p) => p.hash));
    return { content, relationship, parents };
  }

  /** The query of `select` over the table, with the chains and joins the expressions built so far need. */
  private query(table: string, select: string): string {
    const chains = this.ctes.length === 0 ? "" : `WITH RECURSIVE ${this.ctes.join(",\n  ")}\n`;
    return `${chains}SELECT ${select}\n  FROM ${quoteTable(table)} t ${this.joins.join(" ")}`;
  }

  sql(table: string, opts: FingerprintOptions): string {
    const m: TableModel = this.model[table];
    const { content, relationship, parents } = opts.relationships ? this.rowHashes(table) : { content: this.content(table, "t"), relationship: null, parents: [] };
    const keys = m.keyColumns.map((c) => hashedColumn("t", c, this.types.get(table)?.get(c)));
    const id = m.idColumn === null ? null : `t.${quoteIdent(m.idColumn)}`;
    const isUuid = m.idColumn !== null && this.types.get(table)?.get(m.idColumn) === "uuid";
    const columns = [
      "count(*)::bigint AS rows",
      `coalesce(sum(${content}), 0)::text AS content`,
      relationship === null ? "NULL::text AS relationships" : `coalesce(sum(${relationship}), 0)::text AS relationships`,
      opts.ids ? `coalesce(sum(${rowHash([bytes(content), ...keys])}), 0)::text AS ids` : "NULL::text AS ids",
      ...parents.map(({ edge, alias }, i) =>
        `count(*) FILTER (WHERE ${edge.columns.map((c) => `t.${quoteIdent(c)} IS NOT NULL`).join(" AND ")} AND ${alias}.${quoteIdent(edge.refColumns[0])} IS NULL)::bigint AS orphans${i}`),
      id === null ? "0::bigint AS null_ids" : `count(*) FILTER (WHERE ${id} IS NULL)::bigint AS null_ids`,
      // The version is the high nibble of byte 6, the RFC variant the top bits (10) of byte 8.
      isUuid && opts.uuidVersion !== null
        ? `count(*) FILTER (WHERE get_byte(uuid_send(${id}), 6) >> 4 <> ${opts.uuidVersion} OR get_byte(uuid_send(${id}), 8) >> 6 <> 2)::bigint AS bad_uuids`
        : "NULL::bigint AS bad_uuids",
    ];
    return this.query(table, columns.join(",\n       "));
  }

  /** Each row's hashes and a short description of it: its `labels` columns and its parents'
   * (its natural key as far as the schema shows it), each value cut to 60 characters. */
  rowsSql(table: string, labels: (table: string) => string[]): string {
    const { content, relationship, parents } = this.rowHashes(table, labels);
    const values = (t: string, alias: string) =>
      labels(t).flatMap((c) => [`'${c.replace(/'/g, "''")}'`, `left(${alias}.${quoteIdent(c)}::text, 60)`]);
    const label = [
      ...values(table, "t"),
      ...parents.flatMap(({ edge, alias }) => [`'${edge.table.replace(/'/g, "''")}'`, `jsonb_build_object(${values(edge.table, alias).join(", ")})`]),
    ];
    return this.query(table, `${content} AS content, ${relationship} AS relationships, jsonb_build_object(${label.join(", ")})::text AS label`);
  }
}

/** The query listing each row of `table` with its content and relationship hashes (bigint) and a
 * label naming it by `labels` columns; hooks/lib/proof/locate.ts narrows it down to the rows that
 * differ. Its sessions plan with PostgreSQL's defaults: its chains are not grouped (see grouped). */
export function rowHashesSql(model: DataModel, table: string, types: Map<string, Map<string, string>>, labels: (table: string) => string[]): string {
  return new TablePass(model, types).rowsSql(table, labels);
}

/** Columns `model` needs that the database lacks (a migration dropped them), as table.column. */
export function missingColumns(model: DataModel, table: string, types: Map<string, Map<string, string>>): string[] {
  const needed = new Set<string>();
  const identities = new Set<string>();
  // As TablePass reads them: the row itself follows every edge, a parent's identity its
  // self-references and the edges that close no cycle.
  const walk = (t: string, asParent: boolean) => {
    const m = model[t];
    for (const c of m.contentColumns) needed.add(`${t}.${c}`);
    for (const e of m.parents) {
      if (asParent && e.cyclic && e.table !== t) continue;
      e.columns.forEach((c) => needed.add(`${t}.${c}`));
      e.refColumns.forEach((c) => needed.add(`${e.table}.${c}`));
      if (!identities.has(e.table)) {
        identities.add(e.table);
        walk(e.table, true);
      }
    }
  };
  walk(table, false);
  model[table].keyColumns.forEach((c) => needed.add(`${table}.${c}`));
  return [...needed].filter((tc) => {
    const dot = tc.lastIndexOf(".");
    return !types.get(tc.slice(0, dot))?.has(tc.slice(dot + 1));
  });
}

/**
 * Runs `sql` with hash joins only in the caller's transaction (outside one the settings do not
 * last), then restores the settings; a failed query leaves them to the transaction's rollback.
 * Just after a migration the key columns have no statistics yet, and a chain's row count is a
 * guess: the planner then sorted a chain's rows again at every level to merge them with the
 * level's, or read all of a chain again for each user, rather than hash it once.
 */
async function withHashJoinsOnly(client: Client, sql: string) {
  const was = (await client.query("SELECT current_setting('enable_mergejoin') AS merge, current_setting('enable_nestloop') AS loop")).rows[0];
  await client.query("SELECT set_config('enable_mergejoin', 'off', true), set_config('enable_nestloop', 'off', true)");
  const result = await client.query(sql);
  await client.query("SELECT set_config('enable_mergejoin', $1, true), set_config('enable_nestloop', $2, true)", [was.merge, was.loop]);
  return result;
}

function digest(sum: string): string {
  return createHash("sha256").update(sum).digest("hex").slice(0, 32);
}

/** One table's data, in the caller's transaction (REPEATABLE READ gives all tables one snapshot). */
export async function fingerprintTable(
  client: Client,
  model: DataModel,
  table: string,
  types: Map<string, Map<string, string>>,
  opts: FingerprintOptions,
): Promise<TableData> {
  const missing = missingColumns(model, table, types);
  if (missing.length > 0) {
    const count = await client.query(`SELECT count(*)::bigint AS n FROM ${quoteTable(table)}`);
    const why = `columns missing: ${missing.join(", ")}`;
    return { rows: Number(count.rows[0].n), contentFingerprint: why, relationshipFingerprint: opts.relationships ? why : null, idFingerprint: opts.ids ? why : null, orphans: opts.relationships ? {} : null, nullIds: 0, badUuids: null };
  }
  const pass = new TablePass(model, types, true);
  const sql = pass.sql(table, opts);
  const r = (await (pass.followsChains ? withHashJoinsOnly(client, sql) : client.query(sql))).rows[0];
  return {
    rows: Number(r.rows),
    contentFingerprint: digest(r.content),
    relationshipFingerprint: r.relationships === null ? null : digest(r.relationships),
    idFingerprint: r.ids === null ? null : digest(r.ids),
    orphans: opts.relationships ? Object.fromEntries(model[table].parents.map((e, i) => [e.constraint, Number(r[`orphans${i}`])])) : null,
    nullIds: Number(r.null_ids),
    badUuids: r.bad_uuids === null ? null : Number(r.bad_uuids),
  };
}
