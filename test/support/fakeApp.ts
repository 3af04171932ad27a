// A small local HTTP server standing in for the Vibes app (app/vibes/main.py) where a test needs
// the app's HTTP behaviour without a database: same paths, status codes and JSON shapes.
// Tests flip its fields (healthy, maintenance, ...) and read `requests` to see what a step sent.
import { randomUUID } from "node:crypto";
import { createServer, IncomingMessage, Server, ServerResponse } from "node:http";
import { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

interface FakeUser {
  id: string;
  email: string;
  password: string;
}

const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class FakeApp {
  url = "";
  readonly adminToken: string;
  /** /health answers 200 {"status":"ok"} when true, else 503. */
  healthy = true;
  /** When set, /health stays unhealthy for this many more calls, then turns healthy. */
  unhealthyForCalls = 0;
  maintenance = false;
  /** When set, /api/v1/status reports this instead of the real flag (an app that ignores the switch). */
  statusMaintenanceOverride: boolean | undefined;
  /** The real app's /admin/* answers; the fake also honours X-Admin-Token as a write bypass. */
  maintenanceBypass = true;
  idType: "uuid" | "integer" = "uuid";
  schemaRevision: string | null = "001_uuid_schema_migration";
  /** Makes GET /api/v1/users/{id} answer 200 for any id, as an app without id validation would. */
  acceptAnyUserId = false;
  /** Paths answering 500 (e.g. "/api/v1/journals") to exercise a failing check. */
  failPaths = new Set<string>();
  readonly requests: RecordedRequest[] = [];
  readonly users = new Map<string, FakeUser>();
  private nextIntId = 1;
  private server?: Server;

  constructor(adminToken = "fake-admin-token-" + randomUUID()) {
    this.adminToken = adminToken;
  }

  static async start(adminToken?: string): Promise<FakeApp> {
    const app = new FakeApp(adminToken);
    app.server = createServer((req, res) => void app.handle(req, res));
    await new Promise<void>((resolve) => app.server!.listen(0, "127.0.0.1", resolve));
    app.url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    return app;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    const method = req.method ?? "GET";
    const path = (req.url ?? "/").split("?")[0];
    this.requests.push({ method, path, headers: req.headers, body });
    const send = (status: number, json: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(json));
    };
    const admin = req.headers["x-admin-token"] === this.adminToken;

    if (this.failPaths.has(path)) return send(500, { detail: "internal error" });
    if (WRITE_METHODS.has(method) && !path.startsWith("/admin") && this.maintenance && !(this.maintenanceBypass && admin)) {
      return send(503, { detail: "maintenance mode: writes are disabled", maintenance: true });
    }
    let parsed: Record<string, string> = {};
    try {
      parsed = body ? JSON.parse(body) : {};
    } catch {
      return send(422, { detail: "invalid JSON" });
    }

    if (method === "GET" && path === "/health") {
      if (this.unhealthyForCalls > 0) {
        this.unhealthyForCalls--;
        return send(503, { status: "error", database: "unreachable" });
      }
      return this.healthy ? send(200, { status: "ok", database: "ok" }) : send(503, { status: "error", database: "unreachable" });
    }
    if (method === "GET" && path === "/api/v1/status") {
      return send(200, {
        version: "1.0.0",
        schema_revision: this.schemaRevision,
        id_type: this.idType,
        maintenance: this.statusMaintenanceOverride ?? this.maintenance,
      });
    }
    const toggle = /^\/admin\/maintenance\/(enable|disable)$/.exec(path);
    if (method === "POST" && toggle) {
      if (!admin) return send(401, { detail: "admin token required (X-Admin-Token)" });
      const wanted = toggle[1] === "enable";
      const changed = this.maintenance !== wanted;
      this.maintenance = wanted;
      return send(200, { maintenance: wanted, changed });
    }
    if (method === "POST" && path === "/api/v1/users") {
      if (!parsed.email || !parsed.password) return send(422, { detail: "email and password required" });
      if ([...this.users.values()].some((u) => u.email === parsed.email)) return send(409, { detail: "email already registered" });
      const id = this.idType === "uuid" ? randomUUID() : String(this.nextIntId++);
      this.users.set(id, { id, email: parsed.email, password: parsed.password });
      return send(201, this.userJson(id));
    }
    if (method === "POST" && path === "/api/v1/auth/token") {
      const user = [...this.users.values()].find((u) => u.email === parsed.email && u.password === parsed.password);
      if (!user) return send(401, { detail: "wrong email or password" });
      return send(200, { access_token: `tok-${user.id}`, token_type: "bearer", expires_in: 3600 });
    }
    const subject = /^Bearer tok-(.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const me = subject ? this.users.get(subject) : undefined;
    if (method === "POST" && path === "/api/v1/journals") {
      if (!me) return send(401, { detail: "valid bearer token required" });
      return send(201, { id: randomUUID(), user_id: this.userJson(me.id).id, title: parsed.title, content: parsed.content, tags: [] });
    }
    if (method === "GET" && path === "/api/v1/users/me") {
      return me ? send(200, this.userJson(me.id)) : send(401, { detail: "valid bearer token required" });
    }
    const byId = /^\/api\/v1\/users\/([^/]+)$/.exec(path);
    if (byId) {
      const raw = decodeURIComponent(byId[1]);
      const valid = this.idType === "uuid" ? UUID_RE.test(raw) : /^-?\d+$/.test(raw);
      if (!valid && !this.acceptAnyUserId) return send(422, { detail: "id must be a valid UUID" });
      if (method === "GET") {
        return this.users.has(raw) ? send(200, this.userJson(raw)) : this.acceptAnyUserId ? send(200, {}) : send(404, { detail: "user not found" });
      }
      if (method === "DELETE") {
        if (!me) return send(401, { detail: "valid bearer token required" });
        if (me.id !== raw) return send(403, { detail: "you can only delete your own user" });
        const { id } = this.userJson(raw);
        this.users.delete(raw);
        return send(200, { deleted: true, id });
      }
    }
    return send(404, { detail: "Not Found" });
  }

  private userJson(id: string) {
    const user = this.users.get(id)!;
    return { id: this.idType === "uuid" ? id : Number(id), email: user.email, created_at: new Date().toISOString() };
  }
}
