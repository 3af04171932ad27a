// The proof before the swap, in one REPEATABLE READ snapshot, exact:
//   - every new foreign-key column equals its parent's new id through the integer value (and is
//     NULL exactly where the integer value is);
//   - no new id is NULL, and (uuidVersion) every new id is of that version;
//   - the links by fingerprint: the relationship fingerprints (each row's content with its
//     ancestors', transitively: fingerprint.ts) taken through the integer keys and through the
//     uuid keys are equal, as are the orphans;
//   - with `expected` (a state captured before expand, while nothing else wrote): content, ids and
//     relationships as then (captureState / compareState), so the backfill changed nothing else.
import type { Client } from "pg";
import type { Check } from "../../common/types";
import { readDataModel, type DataModel } from "../lib/database/dataModel";
import { fingerprintTable } from "../lib/proof/fingerprint";
import { captureState, compareState, fingerprintSession, type DatabaseState } from "../lib/proof/manifest";
import { quoteIdent } from "../lib/database/tables";
import { INT, UUID, readPhase, uuidName, type OnlinePlan } from "./plan";
import { StepError } from "../lib/errors";

const q = quoteIdent;

export interface OnlineProofOptions {
  /** The covered tables, as configured (also those without keys: their content is fingerprinted). */
  tables: string[];
  expected?: DatabaseState;
  /** Check the new ids' uuid version; null or absent: any. */
  uuidVersion?: number | null;
}

export interface OnlineProof {
  ok: boolean;
  checks: Check[];
}

const ours = (c: string) => c.endsWith(UUID) || c.endsWith(INT);

/** The data model through the integer keys (the new columns left out of the content), and the
 * same one through the uuid keys. */
export function models(model: DataModel, plan: OnlinePlan): { integer: DataModel; uuid: DataModel } {
  const integer: DataModel = {};
  const uuid: DataModel = {};
  for (const [table, m] of Object.entries(model)) {
    const base = { ...m, keyColumns: m.keyColumns.filter((c) => !ours(c)), contentColumns: m.contentColumns.filter((c) => !ours(c)) };
    integer[table] = base;
    const planned = plan.tables.some((t) => t.table === table);
    uuid[table] = !planned ? base : {
      idColumn: base.idColumn === null ? null : uuidName(base.idColumn),
      keyColumns: base.keyColumns.map(uuidName),
      contentColumns: base.contentColumns,
      parents: base.parents.map((e) => ({ ...e, columns: e.columns.map(uuidName), refColumns: e.refColumns.map(uuidName) })),
    };
  }
  return { integer, uuid };
}

/** Proves the expanded, backfilled state (see above). Read only; one snapshot. */
export async function proveBeforeSwap(client: Client, plan: OnlinePlan, opts: OnlineProofOptions): Promise<OnlineProof> {
  const checks: Check[] = [];
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  try {
    const phase = await readPhase(client, plan);
    if (phase !== "expanded") throw new StepError(`proof before the swap: the change is ${phase}, not expanded`, "prove between the backfill and the swap");
    for (const t of plan.tables) {
      if (t.id) {
        const id = q(uuidName(t.id));
        const r = (await client.query(
          `SELECT count(*) FILTER (WHERE ${id} IS NULL)::bigint AS nulls,
                  count(*) FILTER (WHERE ${id} IS NOT NULL AND ${opts.uuidVersion == null ? "false" : `(get_byte(uuid_send(${id}), 6) >> 4 <> ${Number(opts.uuidVersion)} OR get_byte(uuid_send(${id}), 8) >> 6 <> 2)`})::bigint AS bad,
                  count(*)::bigint - count(DISTINCT ${id})::bigint - greatest(count(*) FILTER (WHERE ${id} IS NULL) - 1, 0)::bigint AS duplicates
             FROM ${t.sql}`)).rows[0];
        checks.push({ name: `online.null_ids.${t.table}.${uuidName(t.id)}`, ok: Number(r.nulls) === 0, detail: `${r.nulls} rows without their new id` });
        checks.push({ name: `online.duplicate_ids.${t.table}.${uuidName(t.id)}`, ok: Number(r.duplicates) === 0, detail: `${r.duplicates} duplicate new ids` });
        if (opts.uuidVersion != null) {
          checks.push({ name: `online.uuid_version.${t.table}.${uuidName(t.id)}`, ok: Number(r.bad) === 0, detail: `${r.bad} new ids are not uuid version ${opts.uuidVersion}` });
        }
      }
      for (const fk of t.foreignKeys) {
        const parent = plan.tables.find((p) => p.table === fk.parent)!;
        const [col, ncol] = [q(fk.column), q(uuidName(fk.column))];
        const r = (await client.query(
          `SELECT count(*) FILTER (WHERE c.${ncol} IS DISTINCT FROM p.${q(uuidName(fk.parentColumn))})::bigint AS wrong,
                  count(*) FILTER (WHERE c.${col} IS NOT NULL AND c.${ncol} IS NULL)::bigint AS missing
             FROM ${t.sql} c LEFT JOIN ${parent.sql} p ON p.${q(fk.parentColumn)} = c.${col}`)).rows[0];
        checks.push({
          name: `online.link.${t.table}.${fk.constraint}`, ok: Number(r.wrong) === 0,
          detail: Number(r.wrong) === 0 ? `every ${uuidName(fk.column)} is its ${fk.parent} row's ${uuidName(fk.parentColumn)} through ${fk.column}`
            : `${r.wrong} rows whose ${uuidName(fk.column)} is not their ${fk.parent} row's new id through ${fk.column} (${r.missing} of them NULL)`,
        });
      }
    }
    // The links by fingerprint, through both keys, in the same snapshot.
    const { oids, types } = await fingerprintSession(client, opts.tables);
    const both = models(await readDataModel(client, oids), plan);
    for (const table of opts.tables) {
      const fp = { ids: false, relationships: true, uuidVersion: null };
      const a = await fingerprintTable(client, both.integer, table, types, fp);
      const b = await fingerprintTable(client, both.uuid, table, types, fp);
      const same = a.relationshipFingerprint === b.relationshipFingerprint && a.rows === b.rows;
      checks.push({
        name: `online.relationships.${table}`, ok: same,
        detail: same ? `${a.rows} rows: the same links through the uuid keys as through the integer keys` : `links differ: ${a.relationshipFingerprint} through the integer keys, ${b.relationshipFingerprint} through the uuid keys`,
      });
      const orphans = JSON.stringify(Object.values(a.orphans ?? {})) === JSON.stringify(Object.values(b.orphans ?? {}));
      checks.push({ name: `online.orphans.${table}`, ok: orphans, detail: `integer keys ${JSON.stringify(a.orphans)}, uuid keys ${JSON.stringify(b.orphans)}` });
    }
    if (opts.expected) {
      const now = await captureState(client, opts.tables, { reference: opts.expected, ids: true });
      checks.push(...compareState(opts.expected, now, { ids: true }));
    }
  } finally {
    await client.query("COMMIT").catch(() => undefined);
  }
  return { ok: checks.every((c) => c.ok), checks };
}
