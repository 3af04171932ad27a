// What proves a database against a backup's manifest: its schema and its data, in one snapshot.
// The one rule that validate and migrate share for which schema the database must have:
//   at the manifest's revision               the manifest's schema, exactly; and the same ids
//   at a revision proven before (recorded)   that revision's recorded schema, exactly
//   elsewhere (the id change)                the manifest's schema except the id change: key
//                                            columns of the target id type, the id default
//                                            (idDefault for uuid ids, a sequence for integers)
import type { Client } from "pg";
import type { IdType } from "../../../common/types";
import { UsageError } from "../errors";
import type { Check } from "../../../common/types";
import { captureState, compareState, type Manifest } from "./manifest";
import { currentRevision, readRecord } from "../database/revision";
import { diffSchema, isCurrentSnapshot, readSchemaSnapshot, sequenceChecks, type IdChange, type SchemaSnapshot } from "./schemaSnapshot";
import { tableOids } from "../database/tables";


export interface ProofOptions {
  /** The key columns' type at the database's revision, when that is not the manifest's. */
  idType: IdType;
  /** The uuid ids' default: an expression, or null where the app makes the ids. */
  idDefault: string | null;
  /** Checked on uuid ids after the change; null: any version. */
  uuidVersion: number | null;
  /** False: the schema alone (no pass over the data). */
  data?: boolean;
  /** False: owners and privileges are not compared (a scratch restore without them). */
  privileges?: boolean;
  /** The database is a pg_restore of the manifest's dump: what pg_dump cannot carry (the enabled
   * state of constraints' internal triggers) is reported, not compared. */
  restored?: boolean;
  /** Also the links (relationship fingerprints, orphans) at the backup's revision, where equal ids
   * would imply them: to accept renumbered ids, the links must be proven on their own. */
  relationships?: boolean;
}

export interface Proof {
  checks: Check[];
  revision: string | null;
  /** Whether the schema and ids were compared exactly (the manifest's revision, or a recorded one). */
  basis: "backup" | "recorded" | "id change";
  /** The schema the database has now. */
  schema: SchemaSnapshot;
}

/** What the id change from `manifest` to `idType` may alter. */
export function idChangeFrom(manifest: Manifest, opts: Pick<ProofOptions, "idType" | "idDefault">): IdChange {
  const tables = Object.entries(manifest.tables);
  return {
    keyColumns: Object.fromEntries(tables.map(([t, s]) => [t, s.keyColumns])),
    idColumns: Object.fromEntries(tables.map(([t, s]) => [t, s.idColumn])),
    type: opts.idType,
    idDefault: opts.idType === "uuid" ? opts.idDefault : "sequence",
  };
}

/** Proves `client`'s database against `manifest` (see the rule above), in one snapshot. */
export async function prove(client: Client, manifest: Manifest, opts: ProofOptions): Promise<Proof> {
  await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  try {
    const revision = await currentRevision(client);
    const found = revision === manifest.revision ? undefined : (await readRecord(client))?.schemas[revision ?? ""];
    // A schema recorded by an earlier vibes-hooks lacks what is compared since: against it, all of
    // that would read as changed. Without it the rule is the id change's, as for an unrecorded revision.
    const outdated = found !== undefined && !isCurrentSnapshot(found);
    const recorded = outdated ? undefined : found;
    const basis: Proof["basis"] = revision === manifest.revision ? "backup" : recorded ? "recorded" : "id change";
    const sameIds = basis === "backup";
    const tables = Object.keys(manifest.tables);
    const withData = opts.data ?? true;
    const state = withData
      // At the backup's revision every row, ids included, must be as backed up: one pass without
      // joins decides it. Across the id change, the links are compared through the joins.
      ? await captureState(client, tables, { reference: manifest, ids: sameIds, relationships: !sameIds || opts.relationships === true, uuidVersion: !sameIds && opts.idType === "uuid" ? opts.uuidVersion : null })
      : { schema: await readSchemaSnapshot(client, await tableOids(client, tables)) };
    const schemaBasis: Check = {
      name: "schema.basis",
      ok: true,
      detail: basis === "backup" ? `compared with the backup's schema (the database is at its revision ${revision ?? "(none)"})`
        : basis === "recorded" ? `compared with the schema recorded when ${revision} was last proven`
          : `compared with the backup's schema (${manifest.revision ?? "no revision"}) and the id change to ${opts.idType}${outdated ? ` (the schema recorded for ${revision} is of an earlier vibes-hooks)` : ""}`,
    };
    const idColumns = Object.fromEntries(Object.entries(manifest.tables).map(([t, s]) => [t, s.idColumn]));
    return {
      revision,
      basis,
      schema: state.schema,
      checks: [
        schemaBasis,
        ...diffSchema(recorded ?? manifest.schema, state.schema, basis === "id change" ? idChangeFrom(manifest, opts) : undefined, { privileges: opts.privileges, restored: opts.restored }),
        ...(await sequenceChecks(client, state.schema, idColumns)),
        ...("tables" in state ? compareState(manifest, state, { ids: sameIds }) : []),
      ],
    };
  } finally {
    // Commit at once: holding even AccessShareLock would block a migration's ALTERs.
    await client.query("COMMIT").catch(() => undefined);
  }
}

/** The flags validate and migrate share, and what they mean. */
export function proofOptions(step: string, values: { "id-type": string; "id-default": string; "uuid-version": string }): ProofOptions {
  const idType = values["id-type"];
  if (idType !== "uuid" && idType !== "integer") {
    throw new UsageError(`${step}: --id-type "${idType}" is not uuid or integer`, "pass the target revision's id type: --id-type uuid (or integer)");
  }
  const idDefault = values["id-default"].trim();
  if (idDefault === "") throw new UsageError(`${step}: --id-default is empty`, "pass the uuid ids' default expression, e.g. --id-default 'gen_random_uuid()', or --id-default none");
  const version = values["uuid-version"];
  const uuidVersion = version === "any" ? null : Number(version);
  if (uuidVersion !== null && !(Number.isInteger(uuidVersion) && uuidVersion >= 1 && uuidVersion <= 8)) {
    throw new UsageError(`${step}: --uuid-version "${version}" is not 1-8 or any`, "pass --uuid-version 4 (or 7, or any)");
  }
  return { idType, idDefault: idDefault === "none" ? null : idDefault, uuidVersion };
}
