// The audited escape hatch shared by the promotion gate and the maintenance window gate: an
// emergency deploy must say why, who approved it and which ticket records it.

export interface GateOverride {
  reason: string;
  approvedBy: string;
  ticket: string;
}

/** Checks a config value (already parsed from YAML/JSON) and names `key` and the fix when it is
 * malformed. `undefined`/`null` mean "no override". */
export function parseOverride(raw: unknown, key: string): GateOverride | undefined {
  if (raw === undefined || raw === null) return undefined;
  const example = `pulumi config set ${key} '{"reason": "...", "approvedBy": "...", "ticket": "..."}'`;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new Error(`config ${key} must be an object {reason, approvedBy, ticket}; set it with ${example} or remove it`);
  }
  const value = raw as Record<string, unknown>;
  const fields = ["reason", "approvedBy", "ticket"] as const;
  const missing = fields.filter((f) => typeof value[f] !== "string" || (value[f] as string).trim() === "");
  if (missing.length > 0) {
    throw new Error(`config ${key} needs non-empty ${missing.join(", ")}: an override is only accepted with a reason, an approver and a ticket; set it with ${example} or remove ${key}`);
  }
  const unknown = Object.keys(value).filter((k) => !(fields as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new Error(`config ${key} has unknown field(s) ${unknown.join(", ")}; only reason, approvedBy and ticket are read`);
  }
  return { reason: (value.reason as string).trim(), approvedBy: (value.approvedBy as string).trim(), ticket: (value.ticket as string).trim() };
}

export function describeOverride(o: GateOverride): string {
  return `reason "${o.reason}", approved by ${o.approvedBy}, ticket ${o.ticket}`;
}
