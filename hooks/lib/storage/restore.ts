// Putting a verified backup back in place of the database: the restore step, migrate's last
// resort and the rollback after a failure past the migration. Objects created after the backup
// (a table a failed migration added with a key to a covered table, a version table in another
// schema) never make it fail: where a swap can be exact the backup is restored into a fresh
// database that is swapped in (the one it replaces is kept); elsewhere those objects are named,
// saved to the backup store and removed before the backup replaces its own.
import { PassThrough } from "node:stream";
import type { Client } from "pg";
import { fetchVerified, pgRestoreInto } from "./backupFile";
import { withPassfile } from "../database/childEnv";
import { connect, type ConnectionSettings } from "../database/connection";
import { swapObstacles } from "../database/databaseSwap";
import { StepError } from "../errors";
import type { Check } from "../../../common/types";
import { isCurrent } from "../proof/manifest";
import { assertToolCanHandle, pgTool } from "../database/pgTools";
import { progress } from "../progress";
import { assertSucceeded, runChild } from "../processes/run";
import { openBackupStore } from "./storage";
import { swapInCopy } from "./swapInCopy";
import { quoteIdent } from "../database/tables";
import { compareWithManifest, verifyBackup } from "../proof/verify";

export interface RestoreResult extends Record<string, unknown> {
  uri: string;
  sha256: string;
  database: string;
  checks: Check[];
  /** False for a backup of an earlier manifest format: counts, schema and revision only. */
  fingerprintsCompared: boolean;
  /** How: into the empty database, into a fresh one swapped in, or in place. */
  how: "into-empty" | "swapped-in" | "in-place";
  /** The database the swap replaced, kept for inspection. */
  failedDatabase?: string;
  /** Objects removed before an in-place restore, and where they were saved. */
  removed?: { objects: string[]; savedTo: string };
}

/** What the dump holds, from its table of contents: relations as schema.name, schemas it creates. */
async function dumpContents(dumpPath: string, env: NodeJS.ProcessEnv): Promise<{ relations: Set<string>; schemas: Set<string> }> {
  const res = await runChild(pgTool("pg_restore", env), ["--list", dumpPath], { env, label: "pg_restore --list" });
  assertSucceeded(res, "pg_restore --list", "the dump's table of contents cannot be read: use another backup");
  const relations = new Set<string>();
  const schemas = new Set<string>();
  // "215; 1259 16390 TABLE public users vibes": id; catalog oid; type schema name owner.
  const entry = /^\d+; \d+ \d+ (TABLE|VIEW|MATERIALIZED VIEW|SEQUENCE|FOREIGN TABLE|SCHEMA) (\S+) (\S+)/;
  for (const line of res.stdout.split("\n")) {
    const m = entry.exec(line);
    if (!m) continue;
    if (m[1] === "SCHEMA") schemas.add(m[3]);
    else relations.add(`${m[2]}.${m[3]}`);
  }
  return { relations, schemas };
}

interface Removal {
  /** What is removed, named for people. */
  names: string[];
  /** pg_dump arguments that save all of it. */
  dumpArgs: string[];
  statements: string[];
}

/**
 * What stands in the way of replacing the backup's objects: objects not in the backup in the
 * schemas it holds (whole schemas where the backup creates them: pg_restore --clean drops those),
 * and outside them views and foreign keys that depend on the backup's tables.
 */
async function objectsNotInBackup(client: Client, contents: { relations: Set<string>; schemas: Set<string> }): Promise<Removal> {
  const held = [...new Set([...contents.schemas, ...[...contents.relations].map((r) => r.slice(0, r.indexOf(".")))])];
  const res = await client.query(
    `WITH rel AS (
       SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))),
     backup AS (SELECT oid FROM rel WHERE nspname || '.' || relname = ANY($1::text[]))
     SELECT 'relation' AS kind, nspname, relname, relkind, NULL AS constraint_name FROM rel
      WHERE nspname = ANY($2::text[]) AND oid NOT IN (SELECT oid FROM backup)
     UNION
     SELECT 'view', v.nspname, v.relname, v.relkind, NULL FROM rel v JOIN pg_rewrite w ON w.ev_class = v.oid
       JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid AND d.refclassid = 'pg_class'::regclass
      WHERE d.refobjid IN (SELECT oid FROM backup) AND v.oid NOT IN (SELECT oid FROM backup) AND NOT v.nspname = ANY($2::text[])
     UNION
     SELECT 'foreign key', t.nspname, t.relname, t.relkind, k.conname FROM pg_constraint k JOIN rel t ON t.oid = k.conrelid
      WHERE k.contype = 'f' AND k.confrelid IN (SELECT oid FROM backup) AND k.conrelid NOT IN (SELECT oid FROM backup) AND NOT t.nspname = ANY($2::text[])
     ORDER BY 1, 2, 3`, [[...contents.relations], held]);
  const removal: Removal = { names: [], dumpArgs: [], statements: [] };
  const whole = new Set<string>();
  for (const r of res.rows) {
    const qualified = `${quoteIdent(r.nspname)}.${quoteIdent(r.relname)}`;
    if (r.kind === "relation" && contents.schemas.has(r.nspname)) {
      // The backup creates this schema: --clean drops it, which fails while it holds anything else.
      whole.add(r.nspname);
      removal.names.push(`${r.nspname}.${r.relname}`);
    } else if (r.kind === "foreign key") {
      removal.names.push(`foreign key ${r.constraint_name} on ${r.nspname}.${r.relname}`);
      removal.dumpArgs.push(`--table=${qualified}`);
      removal.statements.push(`ALTER TABLE ${qualified} DROP CONSTRAINT IF EXISTS ${quoteIdent(r.constraint_name)}`);
    } else {
      removal.names.push(`${r.kind === "view" ? "view " : ""}${r.nspname}.${r.relname}`);
      removal.dumpArgs.push(`--table=${qualified}`);
      const kind = { v: "VIEW", m: "MATERIALIZED VIEW", S: "SEQUENCE", f: "FOREIGN TABLE" }[r.relkind as string] ?? "TABLE";
      removal.statements.push(`DROP ${kind} IF EXISTS ${qualified} CASCADE`);
    }
  }
  for (const schema of whole) {
    removal.dumpArgs.push(`--schema=${quoteIdent(schema)}`);
    removal.statements.push(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
  }
  return removal;
}

/** Saves what `removal` removes (pg_dump -Fc of those objects, their data too) to the backup store. */
async function saveRemoved(settings: ConnectionSettings, removal: Removal, env: NodeJS.ProcessEnv, log: (m: string) => void): Promise<string> {
  const store = openBackupStore(env);
  const name = `vibes_removed_${new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "Z")}_from_${settings.database}.dump`;
  log(`saving what the restore removes to ${store.uriFor(name)}`);
  return withPassfile(settings, async (childEnv) => {
    const out = new PassThrough();
    const stored = store.put(name, out);
    const res = await runChild(pgTool("pg_dump", env), ["-Fc", "--no-password", ...removal.dumpArgs], { env: childEnv, stdout: out, label: "pg_dump (removed objects)" });
    if (res.code !== 0) out.destroy(new Error(`pg_dump exited ${res.code}`));
    const { uri } = await stored;
    assertSucceeded(res, "pg_dump of the objects to remove", "nothing was removed or restored: fix the cause shown and rerun");
    return uri;
  }, env);
}

/**
 * Restores the backup at `uri` into settings.database and checks it against the manifest.
 * A database holding anything is refused unless `force`.
 */
export async function restoreBackup(
  settings: ConnectionSettings,
  uri: string,
  env: NodeJS.ProcessEnv,
  opts: { force: boolean; log?: (msg: string) => void },
): Promise<RestoreResult> {
  const log = opts.log ?? progress("restore");
  const dump = await fetchVerified(uri, env, log);
  const fingerprintsCompared = isCurrent(dump.manifest);
  try {
    const tables = Object.keys(dump.manifest.tables);
    const client = await connect(settings, { applicationName: "vibes-hooks restore" });
    try {
      await assertToolCanHandle(pgTool("pg_restore", env), env, client);
      // Anything in the database counts, not only the backup's tables: a restore must not mix a
      // backup into another database.
      const present = await client.query(
        `SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_%'
            -- an extension's own relations (pg_stat_statements' view) are not the database's content
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
          ORDER BY 1`);
      const existing = present.rows.map((r) => r.name as string);
      const named = existing.length > 8 ? `${existing.slice(0, 8).join(", ")} and ${existing.length - 8} more` : existing.join(", ");
      if (existing.length > 0 && !opts.force) {
        throw new StepError(`${settings.database} is not empty: it has ${named}`,
          `to replace the backup's tables (${tables.join(", ")}) with its contents pass --force (take a backup of the current state first if it matters)`);
      }
      if (existing.length === 0) {
        log(`restoring into the empty ${settings.database}`);
        await pgRestoreInto(settings, dump.path, env, ["--single-transaction"],
          "the restore was rolled back (single transaction), nothing changed: fix the cause shown (locks: stop the app) and rerun");
        return { ...(await provenRestore(client, dump.manifest, log)), uri, sha256: dump.sha256, database: settings.database, fingerprintsCompared, how: "into-empty" };
      }
      const obstacles = await swapObstacles(client, env, settings.database);
      if (obstacles.length === 0) {
        await client.end().catch(() => undefined);
        // Exact and never blocked by what is in the database: a fresh copy, proven, then swapped in.
        log(`restoring into a fresh database that replaces ${settings.database} (it has ${named})`);
        await verifyBackup(settings, uri, env, { keepCopy: true, log });
        const swapped = await swapInCopy(settings, env, dump.sha256, log);
        if ("unavailable" in swapped) throw new StepError(`the fresh copy could not be swapped in: ${swapped.unavailable}`, "rerun the restore; nothing was replaced");
        return { uri, sha256: dump.sha256, database: settings.database, checks: swapped.checks, fingerprintsCompared, how: "swapped-in", failedDatabase: swapped.failedDatabase };
      }
      log(`replacing the backup's objects in ${settings.database} in place (it has ${named}; no swap: ${obstacles.join("; ")})`);
      const removal = await objectsNotInBackup(client, await dumpContents(dump.path, env));
      let removed: RestoreResult["removed"];
      if (removal.names.length > 0) {
        log(`not in the backup, in its way: ${removal.names.join(", ")}`);
        const savedTo = await saveRemoved(settings, removal, env, log);
        await client.query("BEGIN");
        for (const sql of removal.statements) await client.query(sql);
        await client.query("COMMIT");
        removed = { objects: removal.names, savedTo };
        log(`removed ${removal.names.length} object(s); saved in ${savedTo}`);
      }
      await pgRestoreInto(settings, dump.path, env, ["--clean", "--if-exists", "--single-transaction"],
        `the restore was rolled back (single transaction)${removed ? `; the objects removed before it are saved in ${removed.savedTo} (pg_restore it to bring them back)` : ", nothing changed"}: fix the cause shown (locks: stop the app) and rerun`);
      return { ...(await provenRestore(client, dump.manifest, log)), uri, sha256: dump.sha256, database: settings.database, fingerprintsCompared, how: "in-place", ...(removed ? { removed } : {}) };
    } finally {
      await client.end().catch(() => undefined);
    }
  } finally {
    await dump.cleanup();
  }
}

/** The checks of a restored database against the manifest, owners and grants included; throws unless all pass. */
async function provenRestore(client: Client, manifest: Parameters<typeof compareWithManifest>[1], log: (m: string) => void): Promise<{ checks: Check[] }> {
  const checks = await compareWithManifest(client, manifest, { privileges: true });
  const failed = checks.filter((c) => !c.ok);
  if (failed.length > 0) {
    throw new StepError(`the restored database differs from the manifest: ${failed.map((c) => c.name).join(", ")}`,
      "check for writers (maintenance mode) and objects outside the backup; inspect the checks", { details: { checks } });
  }
  log(`restored; ${checks.length} checks match the manifest`);
  return { checks };
}
