import assert from "node:assert/strict";
import { HttpUnreachable, request } from "../../hooks/lib/app/http";
import { startReceiver as serve } from "../support/receiver";

describe("hooks/lib/http request", () => {
  it("sends the JSON body and the headers, and parses the JSON answer", async () => {
    const s = await serve((req, res) => res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ echoed: JSON.parse(req.body) })));
    try {
      const res = await request(s.url, "/x", { method: "POST", json: { name: "é" }, bearer: "b-1", adminToken: "adm-1" });
      assert.deepEqual(res, { status: 201, body: { echoed: { name: "é" } } });
      assert.equal(s.got[0].headers.authorization, "Bearer b-1");
      assert.equal(s.got[0].headers["x-admin-token"], "adm-1");
    } finally {
      await s.close();
    }
  });

  it("gives up after its timeout on a server that never answers, naming the time", async () => {
    const s = await serve(() => undefined);
    try {
      const started = Date.now();
      await assert.rejects(request(s.url, "/slow", { timeoutMs: 300 }), (err: Error) =>
        err instanceof HttpUnreachable && /GET http:\/\/127\.0\.0\.1:\d+\/slow: no answer within 300 ms/.test(err.message));
      assert.ok(Date.now() - started < 5_000);
    } finally {
      await s.close();
    }
  });

  it("does not follow a redirect (the admin token must not travel to another origin)", async () => {
    const other = await serve((_req, res) => res.end("{}"));
    const s = await serve((_req, res) => res.writeHead(307, { location: `${other.url}/steal` }).end());
    try {
      const res = await request(s.url, "/admin/maintenance/enable", { method: "POST", adminToken: "adm-secret" });
      assert.equal(res.status, 307);
      assert.equal(other.got.length, 0);
    } finally {
      await s.close();
      await other.close();
    }
  });

  it("retries a GET after a 5xx, never a POST", async () => {
    let calls = 0;
    const s = await serve((_req, res) => res.writeHead(++calls === 1 ? 503 : 200).end(JSON.stringify({ calls })));
    try {
      assert.deepEqual(await request(s.url, "/status", { retries: 2, retryDelayMs: 10 }), { status: 200, body: { calls: 2 } });
      calls = 0;
      assert.equal((await request(s.url, "/change", { method: "POST", retries: 2, retryDelayMs: 10 })).status, 503);
      assert.equal(calls, 1);
    } finally {
      await s.close();
    }
  });

  it("speaks TLS to an https URL (a plain-HTTP server fails the handshake)", async () => {
    const s = await serve((_req, res) => res.end("{}"));
    try {
      await assert.rejects(request(s.url.replace("http:", "https:"), "/health", { timeoutMs: 2_000 }), (err: Error) =>
        err instanceof HttpUnreachable && /EPROTO|SSL|TLS|wrong version/i.test(err.reason));
      assert.equal(s.got.length, 0, "a plain HTTP request reached the server");
    } finally {
      await s.close();
    }
  });

  it("reports a refused connection by its code", async () => {
    const s = await serve(() => undefined);
    await s.close();
    await assert.rejects(request(s.url, "/health", { timeoutMs: 2_000 }), /ECONNREFUSED/);
  });
});
