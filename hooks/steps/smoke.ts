// `smoke`: the guide's API checks against the running app, with a throwaway user that is
// deleted again whatever happens. It runs while maintenance mode is on, so writes carry
// X-Admin-Token, which the app accepts as a maintenance bypass.
import { randomBytes } from "node:crypto";
import { parseStep } from "../lib/args";
import { StepError, UsageError } from "../lib/errors";
import { appUrlFromEnv, HttpUnreachable, request, type HttpResponse, type RequestOptions } from "../lib/app/http";
import { progress } from "../lib/progress";

interface Check {
  name: string;
  ok: boolean;
  /** HTTP status, or null when the app did not answer. */
  status: number | null;
  detail?: string;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function run(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const { values } = parseStep("smoke", args);
  const expectIdType = values["expect-id-type"];
  if (expectIdType !== undefined && expectIdType !== "uuid" && expectIdType !== "integer") {
    throw new UsageError(`smoke: --expect-id-type must be uuid or integer, not "${expectIdType}"`, "pass --expect-id-type uuid");
  }
  const base = appUrlFromEnv(env);
  const adminToken = env.VIBES_ADMIN_TOKEN || undefined;
  const log = progress("smoke");
  const checks: Check[] = [];

  // One check = one request; the password and tokens stay in this function's locals.
  const call = async (name: string, path: string, opts: RequestOptions, accept: (res: HttpResponse) => string | true) => {
    let res: HttpResponse | null = null;
    let check: Check;
    try {
      res = await request(base, path, { timeoutMs: 15_000, ...opts, adminToken: opts.method && opts.method !== "GET" ? adminToken : undefined });
      const verdict = accept(res);
      check = verdict === true ? { name, ok: true, status: res.status } : { name, ok: false, status: res.status, detail: verdict };
    } catch (err) {
      if (!(err instanceof HttpUnreachable)) throw err;
      check = { name, ok: false, status: null, detail: err.message };
    }
    checks.push(check);
    log(`${check.ok ? "ok  " : "FAIL"} ${name} (${check.status ?? "no answer"})${check.detail ? `: ${check.detail}` : ""}`);
    return check.ok ? res : null;
  };
  const expectStatus = (wanted: number[]) => (res: HttpResponse) =>
    wanted.includes(res.status) || `HTTP ${res.status}, expected ${wanted.join(" or ")}${maintenanceHint(res)}`;

  const email = `smoke+${randomBytes(8).toString("hex")}@example.invalid`;
  const password = randomBytes(24).toString("base64url");
  let userId: string | undefined;
  let token: string | undefined;
  let deleted = false;
  try {
    const created = await call("create-user", "/api/v1/users", { method: "POST", json: { email, password } }, (res) => {
      const r = expectStatus([201])(res);
      if (r !== true) return r;
      const id = (res.body as { id?: unknown } | null)?.id;
      return id === undefined || id === null ? "no id in the answer" : true;
    });
    if (!created) return finish();
    userId = String((created.body as { id: unknown }).id);
    if (expectIdType) {
      const isUuid = UUID_RE.test(userId);
      const ok = expectIdType === "uuid" ? isUuid : /^\d+$/.test(userId);
      checks.push({ name: `id-is-${expectIdType}`, ok, status: created.status, ...(ok ? {} : { detail: `id ${JSON.stringify(userId)} is not a ${expectIdType}` }) });
    }

    const tokenRes = await call("obtain-token", "/api/v1/auth/token", { method: "POST", json: { email, password } }, (res) => {
      const r = expectStatus([200])(res);
      if (r !== true) return r;
      return typeof (res.body as { access_token?: unknown } | null)?.access_token === "string" || "no access_token in the answer";
    });
    token = tokenRes ? (tokenRes.body as { access_token: string }).access_token : undefined;

    if (token) {
      await call("create-journal", "/api/v1/journals",
        { method: "POST", bearer: token, json: { title: "smoke test journal", content: "written by vibes-hooks smoke" } },
        (res) => {
          const r = expectStatus([201])(res);
          if (r !== true) return r;
          const owner = (res.body as { user_id?: unknown } | null)?.user_id;
          return String(owner) === userId || `journal belongs to ${JSON.stringify(owner)}, not the new user`;
        });
      await call("get-me", "/api/v1/users/me", { bearer: token }, (res) => {
        const r = expectStatus([200])(res);
        if (r !== true) return r;
        return String((res.body as { id?: unknown } | null)?.id) === userId || "users/me returned another user";
      });
    }
    await call("get-user-by-id", `/api/v1/users/${encodeURIComponent(userId)}`, {}, (res) => {
      const r = expectStatus([200])(res);
      if (r !== true) return r;
      return (res.body as { email?: unknown } | null)?.email === email || "the answer is not the new user";
    });
    await call("reject-invalid-id", "/api/v1/users/not-a-uuid", {}, (res) =>
      (res.status >= 400 && res.status < 500) || `HTTP ${res.status}, expected a 4xx for an id that is not a UUID`);
  } finally {
    if (userId !== undefined && token) {
      const removed = await call("delete-user", `/api/v1/users/${encodeURIComponent(userId)}`, { method: "DELETE", bearer: token }, expectStatus([200, 204]));
      deleted = removed !== null;
    }
  }
  return finish();

  function finish(): Record<string, unknown> {
    const failed = checks.filter((c) => !c.ok);
    const leftover = userId !== undefined && !deleted;
    if (failed.length === 0 && !leftover) return { checks };
    const cleanup = leftover ? `; the smoke user ${email} (id ${userId}) could not be deleted: remove it by hand` : "";
    throw new StepError(`${failed.length} of ${checks.length} smoke checks failed: ${failed.map((c) => `${c.name} (${c.detail})`).join("; ")}${cleanup}`,
      "look at the failing endpoints in the app's log; fix or roll back (migrate --to the previous revision) before turning maintenance off",
      { details: { checks } });
  }
}

function maintenanceHint(res: HttpResponse): string {
  return res.status === 503 && (res.body as { maintenance?: unknown } | null)?.maintenance === true
    ? " (maintenance mode blocks writes: set VIBES_ADMIN_TOKEN so smoke can use the app's admin bypass)"
    : "";
}
