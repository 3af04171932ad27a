// Copies of the app with a fault-injected 001 revision (app/testing/faulty_revisions/), for the
// tests that prove a failing or data-losing migration leaves the database as it was.
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
