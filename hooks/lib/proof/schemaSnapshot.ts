// The schema of the covered tables as an app depends on it, read from the catalog in a form that
// compares by meaning: definitions as PostgreSQL prints them (pg_get_constraintdef,
// pg_get_indexdef, pg_get_triggerdef, pg_get_viewdef), never OIDs or column positions.
//
// Compared by name: tables, columns, constraints, indexes, triggers, policies and dependent
// views (apps and later migrations refer to them by name). Not compared by name: sequences,
// which are known by the column they serve (a default's own sequence reads `nextval(<sequence>)`),
// the indexes behind primary-key, unique and exclusion constraints (they are the constraint), and
// a constraint's internal triggers (named after OIDs: they are known by their constraint).
import type { Client } from "pg";
import type { Check } from "../../../common/types";
import { byCodePoint } from "../database/dataModel";
import { quoteIdent, quoteTable } from "../database/tables";

export interface SequenceSchema {
  type: string;
  start: string;
  increment: string;
  min: string;
  max: string;
  cache: string;
  cycle: boolean;
  /** Owned by the column (serial, identity, OWNED BY): dropped with it. */
  owned: boolean;
  owner: string;
  acl: string[];
}

export interface ColumnSchema {
  /** With modifiers: varchar(255), numeric(10,2). */
  type: string;
  notNull: boolean;
  /** The default expression; the column's own sequence is written `<sequence>`. */
  default: string | null;
  identity: "always" | "by default" | null;
  /** A generated column's expression. */
  generated: string | null;
  /** A collation other than the type's own. */
  collation: string | null;
  /** The sequence the column's default or identity draws from. */
  sequence: SequenceSchema | null;
  comment: string | null;
  /** Column privileges (GRANT SELECT (col) ...), sorted. */
  acl: string[];
}

export interface ObjectSchema {
  definition: string;
}

export interface IndexSchema extends ObjectSchema {
  comment: string | null;
}

export interface ConstraintSchema extends ObjectSchema {
  /** The definition without NOT VALID; whether the rows were checked is this. */
  validated: boolean;
  comment: string | null;
  /** The comment of the index behind a primary-key, unique or exclusion constraint. */
  indexComment: string | null;
  /**
   * pg_trigger.tgenabled of the constraint's internal triggers (a foreign key's, a deferrable
   * unique's), by what each does: "check on insert", "action on delete", ... ALTER TABLE ...
   * DISABLE TRIGGER ALL (superusers only) turns a foreign key's off.
   */
  triggers: Record<string, string>;
}

export interface TriggerSchema extends ObjectSchema {
  /** pg_trigger.tgenabled: O (origin), D (disabled), R (replica), A (always). */
  enabled: string;
}

export interface TableSchema {
  owner: string;
  acl: string[];
  rowSecurity: "off" | "on" | "forced";
  comment: string | null;
  unlogged: boolean;
  /** As ALTER TABLE sets it: DEFAULT, NOTHING, FULL or USING INDEX name (logical decoding's key). */
  replicaIdentity: string;
  columns: Record<string, ColumnSchema>;
  constraints: Record<string, ConstraintSchema>;
  indexes: Record<string, IndexSchema>;
  triggers: Record<string, TriggerSchema>;
  policies: Record<string, ObjectSchema>;
}

export interface ViewSchema extends ObjectSchema {
  kind: "view" | "materialized view";
  owner: string;
  acl: string[];
}

export interface SchemaSnapshot {
  tables: Record<string, TableSchema>;
  /** Views and materialized views over the covered tables (also through other views), by name. */
  views: Record<string, ViewSchema>;
}

const sortedAcl = (acl: string[] | null) => [...(acl ?? [])].sort(byCodePoint);
const ROW_SECURITY = (on: boolean, forced: boolean): TableSchema["rowSecurity"] => (forced ? "forced" : on ? "on" : "off");

/** The schema snapshot of the covered tables (`oids`: configured name -> oid). */
export async function readSchemaSnapshot(client: Client, oids: Map<string, number>): Promise<SchemaSnapshot> {
  const names = new Map([...oids].map(([name, oid]) => [oid, name]));
  const relOids = [...oids.values()];
  const tables: Record<string, TableSchema> = {};
  const rel = await client.query(
    `SELECT c.oid::oid AS rel, pg_get_userbyid(c.relowner) AS owner, c.relacl::text[] AS acl, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
            -- alembic_version's comment is the deployment record (revision.ts): it changes with every migrate.
            CASE WHEN c.oid IS DISTINCT FROM to_regclass('alembic_version') THEN obj_description(c.oid, 'pg_class') END AS comment,
            c.relpersistence = 'u' AS unlogged,
            CASE c.relreplident WHEN 'd' THEN 'DEFAULT' WHEN 'n' THEN 'NOTHING' WHEN 'f' THEN 'FULL'
              -- Its index dropped, the table keeps 'i' and logs no key (as NOTHING).
              ELSE 'USING INDEX ' || coalesce((SELECT quote_ident(i.relname) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                                                WHERE x.indrelid = c.oid AND x.indisreplident), '(dropped)') END AS replident
       FROM pg_class c WHERE c.oid = ANY($1::oid[])`, [relOids]);
  for (const r of rel.rows) {
    tables[names.get(Number(r.rel))!] = {
      owner: r.owner, acl: sortedAcl(r.acl), rowSecurity: ROW_SECURITY(r.rls, r.forced), comment: r.comment, unlogged: r.unlogged, replicaIdentity: r.replident,
      columns: {}, constraints: {}, indexes: {}, triggers: {}, policies: {},
    };
  }
  const of = (r: { rel: string | number }) => tables[names.get(Number(r.rel))!];

  const columns = await client.query(
    `WITH cols AS (
       SELECT a.attrelid, a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull, a.attidentity, a.attgenerated, a.attcollation, a.attacl,
              ad.oid AS defoid, ad.adbin, ad.adrelid,
              coalesce(
                (SELECT d.refobjid FROM pg_depend d JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
                  WHERE d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass LIMIT 1),
                (SELECT d.objid FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = a.attrelid
                    AND d.refobjsubid = a.attnum AND d.deptype = 'i' LIMIT 1)) AS seq
         FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped)
     SELECT c.attrelid::oid AS rel, c.attname AS name, format_type(c.atttypid, c.atttypmod) AS type, c.attnotnull AS not_null,
            col_description(c.attrelid, c.attnum) AS comment, c.attacl::text[] AS acl,
            CASE WHEN c.attgenerated <> '' THEN NULL WHEN c.seq IS NULL THEN pg_get_expr(c.adbin, c.adrelid)
                 ELSE replace(pg_get_expr(c.adbin, c.adrelid), quote_literal(c.seq::regclass::text) || '::regclass', '<sequence>') END AS "default",
            CASE c.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END AS identity,
            CASE WHEN c.attgenerated <> '' THEN pg_get_expr(c.adbin, c.adrelid) END AS generated,
            CASE WHEN c.attcollation <> t.typcollation THEN (SELECT collname FROM pg_collation WHERE oid = c.attcollation) END AS collation,
            c.seq IS NOT NULL AS has_seq, format_type(s.seqtypid, NULL) AS seq_type, s.seqstart::text AS seq_start, s.seqincrement::text AS seq_increment,
            s.seqmin::text AS seq_min, s.seqmax::text AS seq_max, s.seqcache::text AS seq_cache, s.seqcycle AS seq_cycle,
            EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.seq AND d.refobjid = c.attrelid
                      AND d.refobjsubid = c.attnum AND d.deptype IN ('a', 'i')) AS seq_owned,
            pg_get_userbyid(sc.relowner) AS seq_owner, sc.relacl::text[] AS seq_acl
       FROM cols c JOIN pg_type t ON t.oid = c.atttypid
       LEFT JOIN pg_sequence s ON s.seqrelid = c.seq LEFT JOIN pg_class sc ON sc.oid = c.seq`, [relOids]);
  for (const r of columns.rows) {
    of(r).columns[r.name] = {
      type: r.type, notNull: r.not_null, default: r.default, identity: r.identity, generated: r.generated, collation: r.collation,
      sequence: r.has_seq
        ? {
          type: r.seq_type, start: r.seq_start, increment: r.seq_increment, min: r.seq_min, max: r.seq_max, cache: r.seq_cache,
          cycle: r.seq_cycle, owned: r.seq_owned, owner: r.seq_owner, acl: sortedAcl(r.seq_acl),
        }
        : null,
      comment: r.comment, acl: sortedAcl(r.acl),
    };
  }

  const constraints = await client.query(
    `SELECT conrelid::oid AS rel, conname AS name, regexp_replace(pg_get_constraintdef(oid), ' NOT VALID$', '') AS definition, convalidated AS validated,
            obj_description(oid, 'pg_constraint') AS comment,
            CASE WHEN contype IN ('p', 'u', 'x') THEN obj_description(conindid, 'pg_class') END AS index_comment
       FROM pg_constraint WHERE conrelid = ANY($1::oid[])`, [relOids]);
  for (const r of constraints.rows) {
    of(r).constraints[r.name] = { definition: r.definition, validated: r.validated, comment: r.comment, indexComment: r.index_comment, triggers: {} };
  }
  // Known by what they do, not by their function: a changed ON DELETE changes the function, and
  // the constraint's definition already shows that.
  const internalTriggers = await client.query(
    `SELECT c.conrelid::oid AS rel, c.conname AS constraint, t.tgenabled AS enabled,
            CASE WHEN p.proname IN ('RI_FKey_check_ins', 'RI_FKey_check_upd') THEN 'check' WHEN c.contype = 'f' THEN 'action' ELSE p.proname END
              || ' on ' || concat_ws(' or ', CASE WHEN t.tgtype & 4 <> 0 THEN 'insert' END, CASE WHEN t.tgtype & 8 <> 0 THEN 'delete' END,
                                     CASE WHEN t.tgtype & 16 <> 0 THEN 'update' END) AS does
       FROM pg_trigger t JOIN pg_constraint c ON c.oid = t.tgconstraint JOIN pg_proc p ON p.oid = t.tgfoid
      WHERE t.tgisinternal AND c.conrelid = ANY($1::oid[])`, [relOids]);
  for (const r of internalTriggers.rows) of(r).constraints[r.constraint].triggers[r.does] = r.enabled;

  const indexes = await client.query(
    `SELECT x.indrelid::oid AS rel, i.relname AS name, obj_description(x.indexrelid, 'pg_class') AS comment,
            replace(pg_get_indexdef(x.indexrelid), 'INDEX ' || quote_ident(i.relname) || ' ON ', 'INDEX ON ')
              -- A failed CREATE INDEX CONCURRENTLY leaves an index that reads the same and is never used.
              || CASE WHEN x.indisvalid THEN '' ELSE ' (INVALID)' END AS definition
       FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
      WHERE x.indrelid = ANY($1::oid[])
        AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x'))`,
    [relOids]);
  for (const r of indexes.rows) of(r).indexes[r.name] = { definition: r.definition, comment: r.comment };

  const triggers = await client.query(
    `SELECT tgrelid::oid AS rel, tgname AS name, tgenabled AS enabled,
            replace(pg_get_triggerdef(oid), 'TRIGGER ' || quote_ident(tgname) || ' ', 'TRIGGER ') AS definition
       FROM pg_trigger WHERE tgrelid = ANY($1::oid[]) AND NOT tgisinternal`, [relOids]);
  for (const r of triggers.rows) of(r).triggers[r.name] = { definition: r.definition, enabled: r.enabled };

  const policies = await client.query(
    `SELECT p.polrelid::oid AS rel, p.polname AS name,
            concat_ws(' ', CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                      'FOR', CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                      'TO', (SELECT string_agg(n, ', ' ORDER BY n) FROM (SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END AS n FROM unnest(p.polroles) r) q),
                      'USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', 'WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')') AS definition
       FROM pg_policy p WHERE p.polrelid = ANY($1::oid[])`, [relOids]);
  for (const r of policies.rows) of(r).policies[r.name] = { definition: r.definition };

  const views = await client.query(
    `WITH RECURSIVE dependents(oid) AS (
         SELECT r.ev_class FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
          WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY($1::oid[]) AND r.ev_class <> d.refobjid
       UNION
         SELECT r.ev_class FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN dependents v ON d.refobjid = v.oid
          WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND r.ev_class <> d.refobjid
     )
     SELECT c.oid::regclass::text AS name, c.relkind AS kind, pg_get_viewdef(c.oid, true) AS definition,
            pg_get_userbyid(c.relowner) AS owner, c.relacl::text[] AS acl
       FROM dependents v JOIN pg_class c ON c.oid = v.oid AND c.relkind IN ('v', 'm')`, [relOids]);
  const viewList: Record<string, ViewSchema> = {};
  for (const r of views.rows) {
    viewList[r.name] = { kind: r.kind === "m" ? "materialized view" : "view", definition: r.definition, owner: r.owner, acl: sortedAcl(r.acl) };
  }
  return {
    tables: sortKeys(tables, (t) => ({
      ...t, columns: sortKeys(t.columns), constraints: sortKeys(t.constraints, (c) => ({ ...c, triggers: sortKeys(c.triggers) })),
      indexes: sortKeys(t.indexes), triggers: sortKeys(t.triggers), policies: sortKeys(t.policies),
    })),
    views: sortKeys(viewList),
  };
}

/** Whether `snapshot` has this version's shape; one recorded by an earlier vibes-hooks (format 5
 * manifests' shape) has no comments, persistence or replica identity. */
export const isCurrentSnapshot = (snapshot: SchemaSnapshot) => Object.values(snapshot.tables).every((t) => typeof t.replicaIdentity === "string");

/** Keys in code-point order: a snapshot prints (and digests) the same whatever the catalog's order. */
function sortKeys<T>(record: Record<string, T>, map: (v: T) => T = (v) => v): Record<string, T> {
  return Object.fromEntries(Object.keys(record).sort(byCodePoint).map((k) => [k, map(record[k])]));
}

/** What the id change may alter in the schema (forward, or back to a revision whose snapshot is unknown). */
export interface IdChange {
  /** Key columns per table: their type becomes `type`. */
  keyColumns: Record<string, string[]>;
  idColumns: Record<string, string | null>;
  type: string;
  /**
   * The id columns' default after the change: an expression, null for none (ids made by the
   * app), or "sequence" for a sequence of the column's own (nextval or identity).
   */
  idDefault: string | null | "sequence";
}

/** A definition as one line, for messages (pg_get_viewdef spans lines). */
const oneLine = (text: string) => text.replace(/\s*\n\s*/g, " ");
const show = (v: unknown) => (v === null || v === undefined ? "none" : typeof v === "string" ? v : JSON.stringify(v));
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const showComment = (c: string | null) => (c === null ? "none" : JSON.stringify(c));
const commentChange = (what: string, e: string | null, a: string | null) => (a === e ? [] : [`${what} ${showComment(a)}, was ${showComment(e)}`]);

function defaultProblem(col: ColumnSchema, expected: IdChange["idDefault"]): string | undefined {
  if (expected === "sequence") {
    return col.identity !== null || col.default === "nextval(<sequence>)" ? undefined
      : `default ${show(col.default)}, expected a sequence's nextval() or an identity (without one, inserts that leave out the id fail)`;
  }
  if (col.identity !== null) return `is an identity column (${col.identity}), expected default ${show(expected)}`;
  return col.default === expected ? undefined : `default ${show(col.default)}, expected ${show(expected)}`;
}

/** The differences of one column, `change` (when given) allowing what the id change implies. */
function columnDifferences(exp: ColumnSchema, act: ColumnSchema, role: "id" | "key" | "other", change: IdChange | undefined, privileges: boolean): string[] {
  const out: string[] = [];
  const changing = change !== undefined && role !== "other";
  if (changing) {
    if (act.type !== change.type) out.push(`type ${act.type}, expected ${change.type} (was ${exp.type})`);
  } else if (act.type !== exp.type) {
    out.push(`type ${act.type}, was ${exp.type}`);
  }
  if (act.notNull !== exp.notNull) out.push(exp.notNull ? "NOT NULL was dropped" : "became NOT NULL");
  if (changing && role === "id") {
    const problem = defaultProblem(act, change.idDefault);
    if (problem) out.push(problem);
  } else {
    if (act.default !== exp.default) out.push(`default ${show(act.default)}, was ${show(exp.default)}`);
    if (act.identity !== exp.identity) out.push(`identity ${show(act.identity)}, was ${show(exp.identity)}`);
    const seqDiff = exp.sequence && act.sequence ? sequenceDifference(exp.sequence, act.sequence, privileges) : "";
    if (!changing && (exp.sequence === null) !== (act.sequence === null)) out.push(act.sequence === null ? "no longer draws from its sequence" : "now draws from a sequence");
    else if (!changing && seqDiff) out.push(`its sequence changed: ${seqDiff}`);
  }
  if (act.generated !== exp.generated) out.push(`generated ${show(act.generated)}, was ${show(exp.generated)}`);
  if (act.collation !== exp.collation) out.push(`collation ${show(act.collation)}, was ${show(exp.collation)}`);
  // The id change alters type and default only: a migration that rebuilds the column (add, copy,
  // drop, rename) must give it back its comment and grants.
  const rebuilt = changing ? " (set it again on the rebuilt column)" : "";
  out.push(...commentChange("comment", exp.comment, act.comment).map((d) => d + rebuilt));
  if (privileges && !same(act.acl, exp.acl)) out.push(`privileges ${show(act.acl)}, were ${show(exp.acl)}${rebuilt}`);
  return out;
}

function constraintDifference(e: ConstraintSchema, a: ConstraintSchema): string | undefined {
  if (e.definition !== a.definition) return `is now ${a.definition}; was ${e.definition}`;
  const out = [
    ...(e.validated && !a.validated ? ["is NOT VALID now: its rows were not checked"] : []),
    ...commentChange("has comment", e.comment, a.comment),
    ...commentChange("has index comment", e.indexComment, a.indexComment),
  ];
  return out.length > 0 ? out.join("; ") : undefined;
}

/** A constraint's internal triggers whose enabled state differs, as "action on delete D, was O". */
function triggerStateChanges(e: ConstraintSchema, a: ConstraintSchema): string[] {
  return [...new Set([...Object.keys(e.triggers), ...Object.keys(a.triggers)])].sort(byCodePoint)
    .filter((does) => e.triggers[does] !== a.triggers[does])
    .map((does) => `${does} ${show(a.triggers[does])}, was ${show(e.triggers[does])}`);
}

function sequenceDifference(exp: SequenceSchema, act: SequenceSchema, privileges: boolean): string {
  return (Object.keys(exp) as (keyof SequenceSchema)[])
    .filter((k) => !same(exp[k], act[k]) && (privileges || (k !== "owner" && k !== "acl")))
    .map((k) => `${k} ${show(act[k])}, was ${show(exp[k])}`)
    .join(", ");
}

/** Missing, added and changed entries of two name -> object maps, as check details. */
function objectDifferences<T extends ObjectSchema>(
  kind: string,
  exp: Record<string, T>,
  act: Record<string, T>,
  detail: (e: T, a: T) => string | undefined = (e, a) => (e.definition === a.definition ? undefined : `is now ${a.definition}; was ${e.definition}`),
): [string, string][] {
  const out: [string, string][] = [];
  for (const [name, e] of Object.entries(exp)) {
    const a = act[name];
    if (!a) out.push([name, `${kind} ${name} is missing (was ${e.definition})`]);
    else {
      const d = detail(e, a);
      if (d) out.push([name, `${kind} ${name} ${d}`]);
    }
  }
  for (const [name, a] of Object.entries(act)) if (!exp[name]) out.push([name, `${kind} ${name} was added: ${a.definition}`]);
  return out;
}

/**
 * The schema now against a snapshot: equal, or (with `change`) equal except the id change: key
 * columns become change.type, id columns get change.idDefault, their sequences may go or come.
 * One failed check per difference, one passing check per table (and for the views) without any.
 * `privileges: false`: owners and grants (of tables, columns, sequences, views) are not compared.
 * `restored`: the database is a pg_restore of the snapshot's dump, which cannot carry the enabled
 * state of constraints' internal triggers (pg_dump leaves them out): a difference there is a
 * passing check that says so, not a failure.
 */
export function diffSchema(expected: SchemaSnapshot, actual: SchemaSnapshot, change?: IdChange, opts: { privileges?: boolean; restored?: boolean } = {}): Check[] {
  const privileges = opts.privileges ?? true;
  const checks: Check[] = [];
  for (const [table, exp] of Object.entries(expected.tables)) {
    const act = actual.tables[table];
    if (!act) {
      checks.push({ name: `schema.table.${table}`, ok: false, detail: `table ${table} is missing` });
      continue;
    }
    const failed: Check[] = [];
    const fail = (kind: string, object: string, detail: string) => failed.push({ name: `schema.${kind}.${table}.${object}`, ok: false, detail: `${table}: ${oneLine(detail)}` });
    const keys = new Set(change?.keyColumns[table] ?? []);
    const id = change?.idColumns[table] ?? null;
    for (const [column, e] of Object.entries(exp.columns)) {
      const a = act.columns[column];
      if (!a) {
        fail("column", column, `column ${column} (${e.type}) is missing`);
        continue;
      }
      const diffs = columnDifferences(e, a, column === id ? "id" : keys.has(column) ? "key" : "other", change, privileges);
      if (diffs.length > 0) fail("column", column, `column ${column}: ${diffs.join("; ")}`);
    }
    for (const [column, a] of Object.entries(act.columns)) if (!exp.columns[column]) fail("column", column, `column ${column} (${a.type}) was added`);
    const notes: Check[] = [];
    for (const [name, d] of objectDifferences("constraint", exp.constraints, act.constraints, constraintDifference)) fail("constraint", name, d);
    for (const [name, e] of Object.entries(exp.constraints)) {
      const a = act.constraints[name];
      const changes = a && a.definition === e.definition ? triggerStateChanges(e, a) : [];
      if (changes.length === 0) continue;
      // Named by the constraint: the triggers' own names carry OIDs.
      const detail = `constraint ${name}'s internal triggers: ${changes.join("; ")}`;
      if (!opts.restored) fail("trigger", name, detail);
      else notes.push({ name: `schema.trigger.${table}.${name}`, ok: true, detail: `${table}: ${detail}; not compared: pg_dump does not carry their enabled state, a restore enables them` });
    }
    for (const [name, d] of objectDifferences("index", exp.indexes, act.indexes, (e, a) =>
      e.definition !== a.definition ? `is now ${a.definition}; was ${e.definition}` : commentChange("has comment", e.comment, a.comment)[0])) fail("index", name, d);
    for (const [name, d] of objectDifferences("trigger", exp.triggers, act.triggers, (e, a) =>
      e.definition !== a.definition ? `is now ${a.definition}; was ${e.definition}`
        : e.enabled !== a.enabled ? `is enabled ${a.enabled}, was ${e.enabled}` : undefined)) fail("trigger", name, d);
    for (const [name, d] of objectDifferences("policy", exp.policies, act.policies)) fail("policy", name, d);
    if (privileges && act.owner !== exp.owner) fail("owner", "table", `owner ${act.owner}, was ${exp.owner}`);
    if (privileges && !same(act.acl, exp.acl)) fail("privileges", "table", `privileges ${show(act.acl)}, were ${show(exp.acl)}`);
    if (act.rowSecurity !== exp.rowSecurity) fail("row_security", "table", `row security ${act.rowSecurity}, was ${exp.rowSecurity}`);
    for (const d of commentChange("comment", exp.comment, act.comment)) fail("comment", "table", d);
    if (act.unlogged !== exp.unlogged) fail("persistence", "table", act.unlogged ? "UNLOGGED now, was logged" : "logged now, was UNLOGGED");
    if (act.replicaIdentity !== exp.replicaIdentity) fail("replica_identity", "table", `replica identity ${act.replicaIdentity}, was ${exp.replicaIdentity}`);
    checks.push(...notes);
    if (failed.length > 0) {
      checks.push(...failed);
    } else {
      const changed = [...keys].map((c) => `${c} ${exp.columns[c]?.type} -> ${change!.type}${c === id ? `, default ${change!.idDefault === "sequence" ? "a sequence" : show(change!.idDefault)}` : ""}`);
      const counts = `${Object.keys(exp.columns).length} columns, ${Object.keys(exp.constraints).length} constraints, ${Object.keys(exp.indexes).length} other indexes, ${Object.keys(exp.triggers).length} triggers`;
      checks.push({ name: `schema.${table}`, ok: true, detail: changed.length > 0 ? `as in the snapshot except the id change (${changed.join("; ")}): ${counts}` : `as in the snapshot: ${counts}` });
    }
  }
  const viewDiffs = objectDifferences("view", expected.views, actual.views, (e, a) =>
    e.definition !== a.definition ? `is now ${a.definition}; was ${e.definition}`
      : e.kind !== a.kind || (privileges && (e.owner !== a.owner || !same(e.acl, a.acl))) ? `changed its kind, owner or privileges (${a.kind}, ${a.owner}, ${show(a.acl)})` : undefined);
  for (const [name, d] of viewDiffs) checks.push({ name: `schema.view.${name}`, ok: false, detail: oneLine(d) });
  if (viewDiffs.length === 0 && Object.keys(expected.views).length > 0) {
    checks.push({ name: "schema.views", ok: true, detail: `${Object.keys(expected.views).join(", ")} as in the snapshot` });
  }
  return checks;
}

/**
 * Whether each id column's own sequence would hand out a value past the ids the table holds (a
 * downgrade that recreates the sequence and forgets setval() makes every later insert collide).
 * Call in the caller's snapshot; needs no privilege beyond reading the tables.
 */
export async function sequenceChecks(client: Client, snapshot: SchemaSnapshot, idColumns: Record<string, string | null>): Promise<Check[]> {
  const checks: Check[] = [];
  for (const [table, column] of Object.entries(idColumns)) {
    const col = column === null ? undefined : snapshot.tables[table]?.columns[column];
    if (!col?.sequence || !/^(smallint|integer|bigint)$/.test(col.type)) continue;
    const res = await client.query(
      `SELECT s.seqrelid::regclass::text AS seq, s.seqincrement::text AS increment, readable,
              (SELECT max(${quoteIdent(column!)})::text FROM ${quoteTable(table)}) AS max
         FROM pg_sequence s, LATERAL (SELECT has_sequence_privilege(s.seqrelid, 'SELECT') AS readable) p
        WHERE s.seqrelid = pg_get_serial_sequence($1, $2)::regclass
           OR s.seqrelid = (SELECT d.refobjid FROM pg_attrdef ad
                              JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
                              JOIN pg_class sc ON sc.oid = d.refobjid AND sc.relkind = 'S'
                             WHERE ad.adrelid = $1::regclass AND ad.adnum = (SELECT attnum FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2)
                             LIMIT 1)
        LIMIT 1`, [quoteTable(table), column]);
    const r = res.rows[0];
    if (!r || !r.readable) continue;
    // The sequence's own state: after RESTART or setval(.., false) the next value is last_value itself.
    const state = (await client.query(`SELECT last_value::text AS last, is_called FROM ${r.seq}`)).rows[0];
    const next = state.is_called ? BigInt(state.last) + BigInt(r.increment) : BigInt(state.last);
    const ok = r.max === null || BigInt(r.increment) < 0 || next > BigInt(r.max);
    checks.push({
      name: `schema.sequence.${table}.${column}`, ok,
      detail: ok ? `its sequence hands out ${next} next${r.max === null ? "" : `, past the largest ${column} ${r.max}`}`
        : `its sequence would hand out ${next} next, but ${table}.${column} already holds up to ${r.max}: inserts would fail as duplicates (setval() it past the largest id)`,
    });
  }
  return checks;
}
