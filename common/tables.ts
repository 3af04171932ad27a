// The covered tables as configured: the program checks the names, the hooks look them up.

export const DEFAULT_TABLES = ["users", "journals", "tags", "journal_tags"];

/** A covered table's name as configured: an unquoted lowercase name, optionally schema-qualified. */
export const TABLE_NAME = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;
