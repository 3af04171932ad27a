import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadManifest } from "../../hooks/lib/proof/manifest";
import { connect, connectionFromEnv, urlWithoutPassword } from "../../hooks/lib/database/connection";
import { withPassfile } from "../../hooks/lib/database/childEnv";
import { redact, secretsIn } from "../../common/redact";
import { StepError } from "../../hooks/lib/errors";
import { pgToolMajor } from "../../hooks/lib/database/pgTools";
import { getCluster } from "../support/pgCluster";

describe("hooks lib: connection settings, passfile, redaction", () => {
  it("reads DATABASE_URL, prefers VIBES_DB_PASSWORD, and never echoes the URL in errors", () => {
    const s = connectionFromEnv({ DATABASE_URL: "postgresql://app:url%3Apw@db.example:6543/vibes?sslmode=require", VIBES_DB_PASSWORD: "env-pw" });
    assert.deepEqual(s, { host: "db.example", port: 6543, database: "vibes", user: "app", password: "env-pw", sslmode: "require" });
    assert.equal(connectionFromEnv({ DATABASE_URL: "postgres://app:url%3Apw@db/v" }).password, "url:pw");
    assert.equal(urlWithoutPassword(s), "postgresql://app@db.example:6543/vibes?sslmode=require");

    for (const bad of ["not a url sekret-9", "mysql://u:sekret-9@h/db", "postgresql://u:sekret-9@h:99999/db", "postgresql://u:sekret-9@h/"]) {
      assert.throws(() => connectionFromEnv({ DATABASE_URL: bad }), (err: StepError) => {
        assert.match(`${err.message} ${err.next}`, /DATABASE_URL/);
        assert.ok(!err.message.includes("sekret-9"));
        return true;
      });
    }
    assert.throws(() => connectionFromEnv({}), /DATABASE_URL is not set/);
    // A malformed %-escape is named, not echoed, and not a raw URIError.
    assert.throws(() => connectionFromEnv({ DATABASE_URL: "postgresql://u:sek%zzret@h/db" }), (err: StepError) => {
      assert.ok(err instanceof StepError);
      assert.match(err.message, /DATABASE_URL has a malformed %-escape in its password/);
      assert.ok(!err.message.includes("sek"));
      return true;
    });
    assert.equal(connectionFromEnv({ DATABASE_URL: "postgresql://u@[::1]:5433/db" }).host, "::1");
    assert.deepEqual(connectionFromEnv({ PGHOST: "h", PGUSER: "u", PGDATABASE: "d" }),
      { host: "h", port: 5432, database: "d", user: "u", password: undefined, sslmode: undefined });
  });

  it("withPassfile: 0600 file with escaped fields, no secrets in the child env, removed even on failure", async () => {
    let seen = "";
    const settings = { host: "h", port: 5432, database: "d", user: "u", password: "a:b\\c" };
    const base = { VIBES_DB_PASSWORD: "a:b\\c", PGPASSWORD: "x", VIBES_ADMIN_TOKEN: "tok", KEEP: "1", PGSERVICE: "other", PGHOSTADDR: "10.9.9.9",
      VIBES_NOTIFY_WEBHOOK_URL: "https://hooks.example/T0K3N", AWS_SECRET_ACCESS_KEY: "wJalr", AWS_SESSION_TOKEN: "sess" };
    await assert.rejects(withPassfile(settings, async (env) => {
      seen = env.PGPASSFILE!;
      assert.equal(statSync(seen).mode & 0o777, 0o600);
      assert.equal(statSync(dirname(seen)).mode & 0o077, 0, "private temp dir");
      assert.equal(readFileSync(seen, "utf8"), "h:5432:*:u:a\\:b\\\\c\n");
      assert.equal(env.VIBES_DB_PASSWORD, undefined);
      assert.equal(env.PGPASSWORD, undefined);
      assert.equal(env.VIBES_ADMIN_TOKEN, undefined);
      for (const name of ["VIBES_NOTIFY_WEBHOOK_URL", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]) assert.equal(env[name], undefined, name);
      assert.equal(env.KEEP, "1");
      assert.equal(env.PGSERVICE, undefined, "a service would override PGHOST");
      assert.equal(env.PGHOSTADDR, undefined, "hostaddr would override PGHOST");
      assert.equal(env.DATABASE_URL, "postgresql://u@h:5432/d");
      assert.ok(!JSON.stringify(env).includes("a:b"));
      throw new Error("boom");
    }, base), /boom/);
    assert.ok(seen && !existsSync(seen), "passfile removed after a failure");
    // A Unix socket matches its directory, or "localhost" when it is libpq's default one: both lines.
    await withPassfile({ ...settings, host: "/run/pg sock" }, async (env) => {
      assert.equal(readFileSync(env.PGPASSFILE!, "utf8"), "/run/pg sock:5432:*:u:a\\:b\\\\c\nlocalhost:5432:*:u:a\\:b\\\\c\n");
    }, base);
  });

  it("a client program asked its version gets no secret (a VIBES_PG_* override may be a wrapper)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vibes-tool-"));
    try {
      const tool = join(dir, "pg_restore");
      writeFileSync(tool, `#!/bin/sh\nenv > "${dir}/env"\necho "pg_restore (PostgreSQL) 15.4"\n`, { mode: 0o755 });
      const major = await pgToolMajor(tool, { PATH: process.env.PATH, KEEP: "1", VIBES_DB_PASSWORD: "s3cret-1", PGPASSWORD: "s3cret-2",
        DATABASE_URL: "postgresql://u:s3cret-3@h/d", VIBES_ADMIN_TOKEN: "s3cret-4" });
      assert.equal(major, 15);
      const seen = readFileSync(join(dir, "env"), "utf8");
      assert.match(seen, /^KEEP=1$/m);
      assert.doesNotMatch(seen, /s3cret/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps its sessions alive against a server-wide idle_session_timeout (migrate's holds the lock while it waits)", async function () {
    this.timeout(60_000);
    const pg = await getCluster();
    const db = await pg.createDatabase();
    try {
      await pg.query("postgres", `ALTER DATABASE ${db.name} SET idle_session_timeout = '1s'`);
      const client = await connect(connectionFromEnv(db.env), { lockTimeout: "5s" });
      try {
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        const res = await client.query("SELECT current_setting('idle_session_timeout') AS idle, current_setting('lock_timeout') AS lock");
        assert.deepEqual(res.rows[0], { idle: "0", lock: "5s" });
      } finally {
        await client.end();
      }
    } finally {
      await pg.dropDatabase(db.name);
    }
  });

  it("names the CA bundle setting when PGSSLROOTCERT cannot be read (verify-full)", async () => {
    const settings = connectionFromEnv({ DATABASE_URL: "postgresql://u@127.0.0.1:1/d?sslmode=verify-full", PGSSLROOTCERT: "/nonexistent/ca.pem" });
    assert.equal(settings.sslRootCert, "/nonexistent/ca.pem");
    await assert.rejects(connect(settings, { connectTimeoutMs: 1000 }), /PGSSLROOTCERT \/nonexistent\/ca.pem cannot be read.*|databaseSslRootCert/);
  });

  it("refuses a manifest of another fingerprint format instead of reporting a data mismatch", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vibes-manifest-"));
    try {
      const file = join(dir, "old.manifest.json");
      writeFileSync(file, JSON.stringify({ format: 5, tables: {}, schema: {}, dump: { sha256: "ab".repeat(32) } }));
      await assert.rejects(loadManifest(pathToFileURL(file).href, {}), /is a format 5 manifest; this vibes-hooks computes format 6 fingerprints/);
      writeFileSync(file, "{}");
      await assert.rejects(loadManifest(pathToFileURL(file).href, {}), /is not a vibes backup manifest/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("redacts every secret form from text", () => {
    const secrets = secretsIn({ VIBES_DB_PASSWORD: "p@ss:w/rd", VIBES_ADMIN_TOKEN: "tok-123", DATABASE_URL: "postgresql://u:other%2Fpw@h/d" });
    const text = redact("a p@ss:w/rd b p%40ss%3Aw%2Frd c tok-123 d other/pw e other%2Fpw", secrets);
    assert.equal(text, "a *** b *** c *** d *** e ***");
  });

  it("masks only secret-named variables, and not values short enough to be ordinary words", () => {
    const secrets = secretsIn({ XDG_SESSION_TYPE: "tty", XDG_SESSION_CLASS: "user", USER: "root", VIBES_ADMIN_TOKEN: "abc" });
    assert.deepEqual(secrets, []);
    assert.equal(redact('{"ok":true,"user":"root","tty":1}', secrets), '{"ok":true,"user":"root","tty":1}');
  });
});
