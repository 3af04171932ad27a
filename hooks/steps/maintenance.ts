// `maintenance on|off`: the app's admin switch. Idempotent (the result says whether this call
// changed anything), and it trusts the switch only once /api/v1/status agrees.
import { parseStep } from "../lib/args";
import { StepError } from "../lib/errors";
import { adminTokenFromEnv, appUrlFromEnv, HttpUnreachable, request } from "../lib/app/http";
import { progress } from "../lib/progress";

async function reportedMaintenance(base: string): Promise<boolean> {
  let res;
  try {
    res = await request(base, "/api/v1/status", { retries: 2 });
  } catch (err) {
    if (err instanceof HttpUnreachable) {
      throw new StepError(`the app does not answer: ${err.message}`, "start the app (app/scripts/start.sh) or fix VIBES_APP_URL, then re-run");
    }
    throw err;
  }
  const flag = (res.body as { maintenance?: unknown } | null)?.maintenance;
  if (res.status !== 200 || typeof flag !== "boolean") {
    throw new StepError(`GET /api/v1/status answered HTTP ${res.status} without a maintenance flag`,
      "check that VIBES_APP_URL points at the Vibes app and that it is healthy");
  }
  return flag;
}

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { positionals } = parseStep("maintenance", args);
  const wanted = positionals[0] === "on";
  const base = appUrlFromEnv(env);
  const adminToken = adminTokenFromEnv(env);
  const log = progress("maintenance");

  const before = await reportedMaintenance(base);
  const path = `/admin/maintenance/${wanted ? "enable" : "disable"}`;
  let res;
  try {
    res = await request(base, path, { method: "POST", adminToken, timeoutMs: 15_000 });
  } catch (err) {
    if (err instanceof HttpUnreachable) {
      throw new StepError(`the app does not answer: ${err.message}`, `check the app, then re-run maintenance ${positionals[0]} (it is idempotent)`);
    }
    throw err;
  }
  if (res.status === 401 || res.status === 403) {
    throw new StepError(`the app refused the admin token (HTTP ${res.status} from POST ${path})`,
      "set VIBES_ADMIN_TOKEN to the token the app was started with");
  }
  if (res.status < 200 || res.status >= 300) {
    throw new StepError(`POST ${path} answered HTTP ${res.status}`, `check the app's log, then re-run maintenance ${positionals[0]}`);
  }
  const reported = (res.body as { changed?: unknown } | null)?.changed;
  const changed = typeof reported === "boolean" ? reported : before !== wanted;

  const after = await reportedMaintenance(base);
  if (after !== wanted) {
    throw new StepError(`POST ${path} succeeded but /api/v1/status still reports maintenance=${after}`,
      "every app instance must share the maintenance flag (same VIBES_RUN_DIR); check which instance VIBES_APP_URL reaches");
  }
  log(`maintenance ${wanted ? "on" : "off"} (${changed ? "changed" : "already so"})`);
  return { enabled: wanted, changed };
}
