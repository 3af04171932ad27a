// Schema faults for the tests that prove a failing or data-losing migration leaves the database as
// it was: copies of the app with a fault-injected 001 revision (app/testing/faulty_revisions/),
// and statements that change what the schema snapshot compares besides definitions.
import { execFileSync } from "node:child_process";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { APP_DIR, APP_PYTHON } from "./pgCluster";

export type Fault = "fail_halfway" | "drop_rows" | "reparent" | "drop_table" | "hang"
  | "drop_not_null" | "drop_check" | "on_delete_rule" | "drop_view" | "drop_trigger" | "downgrade_no_default" | "downgrade_nullable" | "real_world";

/** Copies app/ to `dest` (without run state or caches) and installs `fault` there with the app's
 * own installer, which keeps the real revision beside the variant. Returns `dest`. */
export function appWithFault(dest: string, fault: Fault): string {
  cpSync(APP_DIR, dest, { recursive: true, filter: (src) => !/(^|\/)(\.run|__pycache__)$/.test(src) });
  execFileSync(APP_PYTHON, [join("testing", "install_fault.py"), fault, dest], { cwd: APP_DIR });
  return dest;
}

export interface PropertyFault {
  what: string;
  /** Run after the real 001 (on a migrated copy, or appended to its SQL file), on a database with
   * SCHEMA_EXTRAS (test/hooks/migrateHelpers.ts). */
  sql: string;
  /** The one check it fails, and what that check says. */
  check: string;
  detail: RegExp;
  /** Only a superuser may do it. */
  superuser?: true;
}

/** A property of the schema changed, every definition and row kept. */
export const PROPERTY_FAULTS: PropertyFault[] = [
  { what: "a table's comment dropped", sql: "COMMENT ON TABLE users IS NULL", check: "schema.comment.users.table", detail: /comment none, was "people who sign in"/ },
  { what: "a column's comment changed", sql: "COMMENT ON COLUMN journals.title IS 'the title'", check: "schema.column.journals.title", detail: /column title: comment "the title", was "shown in lists"/ },
  { what: "a constraint's comment dropped", sql: "COMMENT ON CONSTRAINT journals_title_not_blank ON journals IS NULL",
    check: "schema.constraint.journals.journals_title_not_blank", detail: /has comment none, was "the app rejects blank titles too"/ },
  { what: "a unique constraint's index comment dropped", sql: "COMMENT ON INDEX users_email_key IS NULL",
    check: "schema.constraint.users.users_email_key", detail: /has index comment none, was "sign-in lookup"/ },
  { what: "an index comment added", sql: "COMMENT ON INDEX ix_journals_user_id IS 'by owner'", check: "schema.index.journals.ix_journals_user_id", detail: /has comment "by owner", was none/ },
  { what: "a column grant revoked", sql: "REVOKE SELECT (email) ON users FROM PUBLIC", check: "schema.column.users.email", detail: /privileges \[\], were \["=r\/vibes"\]/ },
  { what: "the replica identity reset", sql: "ALTER TABLE tags REPLICA IDENTITY DEFAULT", check: "schema.replica_identity.tags.table", detail: /replica identity DEFAULT, was FULL/ },
  // Disables the RI triggers on tags of journal_tags' key (PostgreSQL names them by OID).
  { what: "a foreign key's triggers disabled", sql: "ALTER TABLE tags DISABLE TRIGGER ALL", check: "schema.trigger.journal_tags.journal_tags_tag_id_fkey",
    detail: /constraint journal_tags_tag_id_fkey's internal triggers: action on delete D, was O; action on update D, was O/, superuser: true },
];
