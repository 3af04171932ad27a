// Words the program and the hooks both use for the same things.

/** The covered tables' key type at a revision. */
export type IdType = "integer" | "uuid";

/** One check of a proof or a validation, as results report it. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}
