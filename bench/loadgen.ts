/**
 * A load generator for the sample app: `writers` concurrent clients writing over HTTP to an app
 * on 127.0.0.1 (users, journals for them with tags, so new tags and journal-tag links, and
 * updates of their journals: title, content and tag set), until `durationMs` or `maxWrites`,
 * or stop(). It behaves as a patient client: a write refused (503: maintenance, or the database
 * unavailable) or failed (no answer, a 5xx, the app restarting) is tried again until it is
 * acknowledged, and its wait counts from its first try to its acknowledgement. A token that no
 * longer parses (401: it carries an integer id after the change to uuid) is fetched again, and a
 * journal id of the old type (422) is read again from the owner's journal list, by its title.
 *
 * What it keeps is what the app acknowledged (ids and content, the last acknowledged update of
 * each journal), so that checkAcknowledged() can prove through the database that every
 * acknowledged write is there with its links.
 *
 * In process: startLoad(opts). In a process of its own (its timers then never wait for the
 * caller's synchronous work, e.g. the harness's app restart): spawnLoad(opts).
 */
import { fork } from "node:child_process";
import { performance } from "node:perf_hooks";
import type { Client } from "pg";
import { HttpUnreachable, request, type HttpResponse, type RequestOptions } from "../hooks/lib/app/http";

/** Milliseconds since the epoch, sub-millisecond: the same clock in every process here. */
export const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface LoadOptions {
  /** http://127.0.0.1:PORT: nothing else is accepted. */
  baseUrl: string;
  writers: number;
  /** No write starts after this (a write being retried is given graceMs more). */
  durationMs: number;
  /** Nor after this many writes started in all (default: no bound but the time). */
  maxWrites?: number;
  /** A write still unacknowledged this long after the end is abandoned (default 120 s). */
  graceMs?: number;
  /** Pause after a refused or failed attempt, ms (default 50). */
  retryPauseMs?: number;
  /** Pause between one writer's writes, ms (default 0: as fast as the app answers). */
  thinkMs?: number;
  /** Names every email and title, so that the check finds this load's rows (letters, digits, '-'). */
  prefix: string;
  /** Tag names already in the database, linked as well as the load's own. */
  existingTags?: string[];
  /** Progress on stderr this often, ms (0: none; default 0). */
  progressEveryMs?: number;
}

export type WriteKind = "user" | "journal" | "update";

export interface WriteRecord {
  kind: WriteKind;
  writer: number;
  /** First try, and acknowledgement (or abandonment): now() clock. */
  start: number;
  end: number;
  outcome: "acknowledged" | "abandoned";
  attempts: number;
  /** Attempts answered 503 with the maintenance flag. */
  refused: number;
  /** Other failed attempts by cause: an HTTP status, or the network error's code. */
  failures: Record<string, number>;
}

export type Id = number | string;

export interface AckedUser {
  email: string;
  /** As the app returned it when the user was made (an integer before the change, a uuid after). */
  id: Id;
}

export interface JournalState {
  title: string;
  content: string;
  /** Sorted, as the app returns them. */
  tags: string[];
}

export interface AckedJournal extends JournalState {
  email: string;
  /** Every id the app gave for it, in order (the integer one, then the uuid read after the change). */
  ids: Id[];
  createdAt: string;
  /** An update abandoned at the end: the journal may hold this state instead. */
  maybe?: JournalState;
}

export interface LoadResult {
  prefix: string;
  startedAt: number;
  endedAt: number;
  writes: WriteRecord[];
  users: AckedUser[];
  journals: AckedJournal[];
}

export interface LoadHandle {
  /** Ends the load early (writes in flight are finished, within graceMs); resolves with its result. */
  stop(): Promise<LoadResult>;
  /** Resolves with the result once the load has ended by itself or by stop(). */
  done: Promise<LoadResult>;
}

const PASSWORD = "load-password-1";
const SHARED_TAGS = 20;

function checkOptions(opts: LoadOptions): void {
  const url = new URL(opts.baseUrl);
  // Only the loopback: the load is for a local app started by a bench or test.
  if (url.protocol !== "http:" || url.hostname !== "127.0.0.1") throw new Error(`load generator: ${opts.baseUrl} is not http://127.0.0.1:PORT`);
  if (!/^[A-Za-z0-9-]+$/.test(opts.prefix)) throw new Error(`load generator: prefix "${opts.prefix}" must be letters, digits and '-' (it is matched with LIKE)`);
  if (!(opts.writers >= 1 && opts.durationMs > 0)) throw new Error("load generator: needs writers >= 1 and durationMs > 0");
}

interface Owned {
  user: AckedUser;
  token?: string;
  journals: AckedJournal[];
}

/** The load in this process. */
export function startLoad(opts: LoadOptions): LoadHandle {
  checkOptions(opts);
  const startedAt = now();
  const endAt = startedAt + opts.durationMs;
  const graceMs = opts.graceMs ?? 120_000;
  const pause = opts.retryPauseMs ?? 50;
  const result: LoadResult = { prefix: opts.prefix, startedAt, endedAt: 0, writes: [], users: [], journals: [] };
  let stopping = false;
  let started = 0;
  const over = () => stopping || now() >= endAt || (opts.maxWrites !== undefined && started >= opts.maxWrites);

  const call = (path: string, o: RequestOptions) => request(opts.baseUrl, path, { timeoutMs: 60_000, ...o });

  /**
   * One write, tried until acknowledged: `attempt` returns the acknowledged answer's outcome, or
   * null for "try again" after it dealt with the answer (a token or an id read again).
   */
  async function write<T>(kind: WriteKind, writer: number, attempt: (rec: WriteRecord) => Promise<T | null>): Promise<T | undefined> {
    started++;
    const rec: WriteRecord = { kind, writer, start: now(), end: 0, outcome: "abandoned", attempts: 0, refused: 0, failures: {} };
    result.writes.push(rec);
    for (;;) {
      if (now() > Math.min(endAt, stopAt) + graceMs) {
        rec.end = now();
        return undefined;
      }
      rec.attempts++;
      let value: T | null;
      try {
        value = await attempt(rec);
      } catch (err) {
        // Anything but a refusal or a lost answer is a bug here: it stops the load.
        if (!(err instanceof HttpUnreachable || err instanceof Refused)) throw err;
        const why = err instanceof HttpUnreachable ? err.reason : err.why;
        if (why === "maintenance") rec.refused++;
        else rec.failures[why] = (rec.failures[why] ?? 0) + 1;
        await sleep(pause);
        continue;
      }
      if (value === null) continue;
      rec.end = now();
      rec.outcome = "acknowledged";
      return value;
    }
  }

  /** The answer when it is `ok`; a Refused error otherwise (maintenance, or any other status). */
  function expect(res: HttpResponse, ok: number): HttpResponse {
    if (res.status === ok) return res;
    const maintenance = res.status === 503 && (res.body as { maintenance?: boolean } | null)?.maintenance === true;
    throw new Refused(maintenance ? "maintenance" : String(res.status));
  }

  async function token(o: Owned): Promise<string> {
    if (o.token) return o.token;
    const res = expect(await call("/api/v1/auth/token", { method: "POST", json: { email: o.user.email, password: PASSWORD } }), 200);
    o.token = (res.body as { access_token: string }).access_token;
    return o.token;
  }

  /** A journal's id as the app spells ids now, read from its owner's list by title and creation time. */
  async function reread(o: Owned, j: AckedJournal): Promise<void> {
    const res = await call("/api/v1/journals?limit=500", { bearer: await token(o) });
    if (res.status === 401) {
      o.token = undefined;
      return;
    }
    expect(res, 200);
    const found = (res.body as { id: Id; title: string; created_at: string }[]).find((x) => x.title === j.title && x.created_at === j.createdAt);
    if (!found) throw new Refused("422, and the journal is not in its owner's list");
    if (found.id !== j.ids.at(-1)) j.ids.push(found.id);
  }

  let tagSerial = 0;
  function someTags(writer: number): string[] {
    const names = new Set<string>();
    const n = Math.floor(Math.random() * 4);
    for (let i = 0; i < n; i++) {
      const r = Math.random();
      const existing = opts.existingTags ?? [];
      if (r < 0.5 && existing.length > 0) names.add(existing[Math.floor(Math.random() * existing.length)]);
      else if (r < 0.75) names.add(`${opts.prefix}-tag-${Math.floor(Math.random() * SHARED_TAGS)}`); // shared by the writers: ON CONFLICT races
      else names.add(`${opts.prefix}-tag-w${writer}-${++tagSerial}`);
    }
    return [...names].sort();
  }

  async function newUser(writer: number, serial: number): Promise<Owned | undefined> {
    const email = `${opts.prefix}-w${writer}-u${serial}@load.test`;
    let lostAnswer = false;
    const user = await write("user", writer, async (rec) => {
      let res: HttpResponse;
      try {
        res = await call("/api/v1/users", { method: "POST", json: { email, password: PASSWORD } });
      } catch (err) {
        lostAnswer = true; // the user may have been made: a 409 next is then our own
        throw err;
      }
      if (res.status === 409 && lostAnswer) {
        // Made by an attempt whose answer was lost: its id from the user itself.
        const o: Owned = { user: { email, id: 0 }, journals: [] };
        const me = expect(await call("/api/v1/users/me", { bearer: await token(o) }), 200);
        rec.failures["409 (answer lost before)"] = 1;
        return { email, id: (me.body as { id: Id }).id };
      }
      const body = expect(res, 201).body as { id: Id; email: string };
      return { email: body.email, id: body.id };
    });
    if (!user) return undefined;
    result.users.push(user);
    return { user, journals: [] };
  }

  async function newJournal(writer: number, o: Owned, serial: number): Promise<void> {
    const state: JournalState = { title: `${opts.prefix} w${writer} j${serial}`, content: `written by writer ${writer} at ${new Date().toISOString()} (${Math.random().toString(36).slice(2)})`, tags: someTags(writer) };
    const body = await write("journal", writer, async () => {
      const res = await call("/api/v1/journals", { method: "POST", bearer: await token(o), json: state });
      if (res.status === 401) {
        o.token = undefined; // issued before the change: its subject is an integer id
        return null;
      }
      return expect(res, 201).body as { id: Id; title: string; content: string; tags: string[]; created_at: string };
    });
    if (!body) return;
    const j: AckedJournal = { email: o.user.email, ids: [body.id], createdAt: body.created_at, title: body.title, content: body.content, tags: body.tags };
    o.journals.push(j);
    result.journals.push(j);
  }

  async function update(writer: number, o: Owned, serial: number): Promise<void> {
    const j = o.journals[Math.floor(Math.random() * o.journals.length)];
    const next: JournalState = { title: `${j.title.replace(/ v\d+$/, "")} v${serial}`, content: `${j.content.slice(0, 200)} / updated ${serial}`, tags: someTags(writer) };
    const body = await write("update", writer, async () => {
      // request() sends any method as given; its type names only the steps' own methods.
      const res = await call(`/api/v1/journals/${j.ids.at(-1)}`, { method: "PUT" as string as RequestOptions["method"], bearer: await token(o), json: next });
      if (res.status === 401) {
        o.token = undefined;
        return null;
      }
      if (res.status === 422) {
        // An id of the old type: the journal's id as the app spells it now.
        await reread(o, j);
        return null;
      }
      return expect(res, 200).body as JournalState;
    });
    if (!body) {
      j.maybe = next;
      return;
    }
    Object.assign(j, { title: body.title, content: body.content, tags: body.tags });
  }

  async function writer(w: number): Promise<void> {
    const owned: Owned[] = [];
    let serial = 0;
    while (!over()) {
      const r = Math.random();
      if (owned.length === 0 || r < 0.05) {
        const o = await newUser(w, ++serial);
        if (o) owned.push(o);
      } else {
        const o = owned[Math.floor(Math.random() * owned.length)];
        if (o.journals.length === 0 || r < 0.7) await newJournal(w, o, ++serial);
        else await update(w, o, ++serial);
      }
      if (opts.thinkMs) await sleep(opts.thinkMs);
    }
  }

  let stopAt = Infinity;
  let timer: NodeJS.Timeout | undefined;
  if (opts.progressEveryMs) {
    timer = setInterval(() => {
      const acked = result.writes.filter((x) => x.outcome === "acknowledged").length;
      const waiting = result.writes.filter((x) => x.end === 0);
      const longest = waiting.length > 0 ? Math.max(...waiting.map((x) => now() - x.start)) : 0;
      process.stderr.write(`[load +${((now() - startedAt) / 1000).toFixed(0)}s] ${acked} writes acknowledged, ${waiting.length} in flight (longest ${(longest / 1000).toFixed(1)} s)\n`);
    }, opts.progressEveryMs);
    timer.unref();
  }
  const done = Promise.all(Array.from({ length: opts.writers }, (_, i) => writer(i + 1))).then(() => {
    if (timer) clearInterval(timer);
    result.endedAt = now();
    return result;
  });
  return {
    done,
    stop() {
      stopping = true;
      stopAt = now();
      return done;
    },
  };
}

class Refused extends Error {
  constructor(readonly why: string) {
    super(`refused: ${why}`);
  }
}

/** The load in a child process (this module run by itself); the same handle. */
export function spawnLoad(opts: LoadOptions): Promise<LoadHandle> {
  checkOptions(opts);
  const child = fork(__filename, [], { execArgv: process.execArgv, serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const done = new Promise<LoadResult>((resolve, reject) => {
    child.on("message", (m: { type: string; result?: LoadResult; error?: string }) => {
      if (m.type === "result") resolve(m.result!);
      if (m.type === "error") reject(new Error(`load generator: ${m.error}`));
    });
    child.on("exit", (code) => reject(new Error(`load generator exited (code ${code}) without a result`)));
  });
  return new Promise((resolve, reject) => {
    child.once("message", (m: { type: string }) => {
      if (m.type === "started") resolve({ done, stop: () => (child.send({ type: "stop" }), done) });
    });
    child.once("error", reject);
    done.catch(reject);
    child.send({ type: "start", opts });
  });
}

if (require.main === module && process.send) {
  process.on("message", (m: { type: string; opts?: LoadOptions }) => {
    if (m.type === "start") {
      const handle = startLoad(m.opts!);
      process.on("message", (s: { type: string }) => void (s.type === "stop" && handle.stop()));
      handle.done.then((result) => process.send!({ type: "result", result }, () => process.exit(0)),
        (err) => process.send!({ type: "error", error: String(err) }, () => process.exit(1)));
      process.send!({ type: "started" });
    }
  });
}

// --- the check, through the database -------------------------------------------------------------

export interface AcknowledgedCheck {
  users: number;
  journals: number;
  /** Acknowledged writes not found as acknowledged: each described. */
  lost: string[];
  /** Journals found more than once (a retried create whose first answer was lost). */
  duplicates: string[];
  /** Acknowledged ids compared with the database's (by the integer column kept beside, until contract). */
  idsChecked: number;
}

/**
 * Every acknowledged user (by email) and journal (by owner and title: content and tags, through
 * the keys as they are now) is in the database; the acknowledged ids too, where the database
 * still spells them so (an integer id through `id__int` after the online swap, until contract;
 * not after the offline migration, which renumbers).
 */
export async function checkAcknowledged(client: Client, load: LoadResult): Promise<AcknowledgedCheck> {
  const cols = (await client.query(
    `SELECT table_name || '.' || column_name AS c, data_type AS t FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name IN ('users', 'journals') AND column_name IN ('id', 'id__int')`)).rows;
  const type = new Map(cols.map((r) => [r.c as string, r.t as string]));
  /** The SQL of the column holding integer ids of `table`, if any is left. */
  const intId = (table: string) => (type.has(`${table}.id__int`) ? "id__int" : type.get(`${table}.id`) === "integer" ? "id" : null);
  const idCols = (alias: string, table: string) => `${alias}.id::text AS id, ${intId(table) ? `${alias}.${intId(table)}` : "NULL::int"} AS id_int`;
  const like = `${load.prefix}-%`;
  const users = (await client.query(`SELECT u.email, ${idCols("u", "users")} FROM users u WHERE u.email LIKE $1`, [like])).rows;
  const journals = (await client.query(
    `SELECT u.email, j.title, j.content, ${idCols("j", "journals")},
            coalesce(array_agg(t.name ORDER BY t.name) FILTER (WHERE t.name IS NOT NULL), '{}') AS tags
       FROM journals j JOIN users u ON u.id = j.user_id LEFT JOIN journal_tags jt ON jt.journal_id = j.id LEFT JOIN tags t ON t.id = jt.tag_id
      WHERE u.email LIKE $1 GROUP BY u.email, j.id`, [like])).rows;
  const out: AcknowledgedCheck = { users: load.users.length, journals: load.journals.length, lost: [], duplicates: [], idsChecked: 0 };
  const idMatches = (acked: Id, row: { id: string; id_int: number | null }) => {
    if (typeof acked === "string") return (out.idsChecked++, row.id === acked);
    if (row.id_int === null) return true; // renumbered: checked by content only
    out.idsChecked++;
    return Number(row.id_int) === acked;
  };
  const userByEmail = new Map(users.map((r) => [r.email as string, r]));
  for (const u of load.users) {
    const row = userByEmail.get(u.email);
    if (!row) out.lost.push(`user ${u.email} (id ${u.id}) is missing`);
    else if (!idMatches(u.id, row)) out.lost.push(`user ${u.email}: acknowledged id ${u.id}, the database has ${row.id_int ?? row.id}`);
  }
  const byKey = new Map<string, typeof journals>();
  for (const r of journals) byKey.set(`${r.email}\u0000${r.title}`, [...(byKey.get(`${r.email}\u0000${r.title}`) ?? []), r]);
  const same = (r: { title: string; content: string; tags: string[] }, s: JournalState) => r.content === s.content && JSON.stringify(r.tags) === JSON.stringify(s.tags);
  for (const j of load.journals) {
    const states = [j, ...(j.maybe ? [j.maybe] : [])];
    const rows = states.flatMap((s) => (byKey.get(`${j.email}\u0000${s.title}`) ?? []).filter((r) => same(r, s)));
    if (rows.length === 0) {
      const found = byKey.get(`${j.email}\u0000${j.title}`)?.[0];
      out.lost.push(`journal "${j.title}" of ${j.email} (ids ${j.ids.join(", ")}) ${found ? `differs: content ${found.content === j.content ? "same" : "changed"}, tags ${JSON.stringify(found.tags)} for ${JSON.stringify(j.tags)}` : "is missing"}`);
      continue;
    }
    if (rows.length > 1) out.duplicates.push(`journal "${j.title}" of ${j.email}: ${rows.length} rows`);
    const [row] = rows;
    if (!j.ids.every((id) => idMatches(id, row))) out.lost.push(`journal "${j.title}" of ${j.email}: acknowledged ids ${j.ids.join(", ")}, the database has ${row.id} / ${row.id_int}`);
  }
  return out;
}
