// What the id change changes, derived from the catalog: the id columns (a covered table's
// single-column integer or uuid primary key), the key columns whose values follow them (foreign
// keys into an id, transitively), and the foreign-key edges a row's identity follows. Every
// other column, a lookup key such as users.country_code -> countries(code) too, is content:
// the migration must leave it as it was.
import type { Client } from "pg";

export interface Edge {
  constraint: string;
  /** The child's columns, in the key's order. */
  columns: string[];
  /** The parent: a covered table, by its configured name. */
  table: string;
  refColumns: string[];
  /**
   * The edge closes a cycle of foreign keys (a self-reference too): across it the parent's
   * identity is its content and the ancestors it reaches without the cycle, so that every
   * identity is finite. A self-reference is followed anyway, through its chain of rows (see
   * fingerprint.ts).
   */
  cyclic: boolean;
}

export interface TableModel {
  /** The single-column integer or uuid primary key, null when there is none. */
  idColumn: string | null;
  /** The id column and every foreign-key column whose values follow an id: what the migration changes. */
  keyColumns: string[];
  /** Every other column, sorted: what the content fingerprint covers. */
  contentColumns: string[];
  /** Foreign keys to covered tables through a key column, in constraint-name order. */
  parents: Edge[];
}

export type DataModel = Record<string, TableModel>;

const ID_TYPES = new Set(["smallint", "integer", "bigint", "uuid"]);

/** Code-point order, not the locale's: backup and validation must order alike anywhere. */
export const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** table -> column -> type name (format_type, with modifiers when asked: varchar(255)), for every
 * column of the tables in `names` (oid -> name). */
export async function readColumnTypes(client: Client, names: Map<number, string>, modifiers = false): Promise<Map<string, Map<string, string>>> {
  const res = await client.query(
    `SELECT a.attrelid::oid AS rel, a.attname AS "column", format_type(a.atttypid, ${modifiers ? "a.atttypmod" : "NULL"}) AS type
       FROM pg_attribute a
      WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped`,
    [[...names.keys()]],
  );
  const out = new Map<string, Map<string, string>>([...names.values()].map((n) => [n, new Map()]));
  for (const r of res.rows) out.get(names.get(Number(r.rel))!)!.set(r.column, r.type);
  return out;
}

export async function readDataModel(client: Client, oids: Map<string, number>): Promise<DataModel> {
  const names = new Map([...oids].map(([name, oid]) => [oid, name]));
  const types = await readColumnTypes(client, names);
  const res = await client.query(
    `SELECT con.conname AS name, con.contype AS type, con.conrelid::oid AS rel, con.confrelid::oid AS ref,
            ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o)::text[] AS columns,
            ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                  JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)::text[] AS ref_columns
       FROM pg_constraint con
      WHERE con.conrelid = ANY($1::oid[]) AND (con.contype = 'p' OR (con.contype = 'f' AND con.confrelid = ANY($1::oid[])))`,
    [[...oids.values()]],
  );
  const idColumn = new Map<string, string>();
  const fks: { name: string; table: string; parent: string; columns: string[]; refColumns: string[] }[] = [];
  for (const r of res.rows) {
    const table = names.get(Number(r.rel))!;
    if (r.type === "p") {
      if (r.columns.length === 1 && ID_TYPES.has(types.get(table)!.get(r.columns[0]) ?? "")) idColumn.set(table, r.columns[0]);
    } else {
      fks.push({ name: r.name, table, parent: names.get(Number(r.ref))!, columns: r.columns, refColumns: r.ref_columns });
    }
  }

  // Key columns: the ids, then every foreign-key column that references a key column, until no more.
  const keys = new Set([...idColumn].map(([t, c]) => `${t}\u0000${c}`));
  const isKey = (table: string, column: string) => keys.has(`${table}\u0000${column}`);
  for (let grew = true; grew;) {
    grew = false;
    for (const fk of fks) {
      fk.columns.forEach((c, i) => {
        if (isKey(fk.parent, fk.refColumns[i]) && !isKey(fk.table, c)) {
          keys.add(`${fk.table}\u0000${c}`);
          grew = true;
        }
      });
    }
  }

  const model: DataModel = {};
  for (const table of [...oids.keys()].sort(byCodePoint)) {
    const columns = [...types.get(table)!.keys()];
    model[table] = {
      idColumn: idColumn.get(table) ?? null,
      keyColumns: columns.filter((c) => isKey(table, c)).sort(byCodePoint),
      contentColumns: columns.filter((c) => !isKey(table, c)).sort(byCodePoint),
      parents: fks
        .filter((fk) => fk.table === table && fk.refColumns.some((c) => isKey(fk.parent, c)))
        .sort((a, b) => byCodePoint(a.name, b.name))
        .map((fk) => ({ constraint: fk.name, columns: fk.columns, table: fk.parent, refColumns: fk.refColumns, cyclic: false })),
    };
  }
  markCycles(model);
  return model;
}

/** Marks the edges that close a cycle, found depth-first in table-name and constraint order. */
function markCycles(model: DataModel): void {
  const done = new Set<string>();
  const onPath = new Set<string>();
  const visit = (table: string) => {
    onPath.add(table);
    for (const edge of model[table].parents) {
      if (onPath.has(edge.table)) edge.cyclic = true;
      else if (!done.has(edge.table)) visit(edge.table);
    }
    onPath.delete(table);
    done.add(table);
  };
  for (const table of Object.keys(model).sort(byCodePoint)) if (!done.has(table)) visit(table);
}
