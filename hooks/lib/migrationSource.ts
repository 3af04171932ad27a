// Where `migrate` gets its line of history and how it moves the database along it: the app's
// alembic revisions (run by alembic, or the --up/--down commands), or a folder of SQL files run
// by psql. Everything else (lock, checksum, manifest, validation, rollback) is migrate's own.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { requireFlag } from "./args";
import { StepError, UsageError } from "./errors";
import { migrationFilesDir } from "../../common/migrationFiles";
import { pgTool } from "./database/pgTools";
import { runChild, runShell, stderrSummary, type RunResult } from "./processes/run";
import { shellWord } from "../../common/text";

/** An alembic revision id as migrate accepts it: it goes into command lines. */
export const REVISION_RE = /^[A-Za-z0-9_.-]+$/;

export interface History {
  heads: string[];
  /** revision -> its down revisions */
  parents: Map<string, string[]>;
}

export interface RunContext {
  /** The child environment: passfile, PGOPTIONS, DATABASE_URL without the password. */
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  log: (message: string) => void;
}

export interface MigrationSource {
  /** Names the source in messages. */
  readonly name: string;
  /** The folder of migration files (what the files checksum covers). */
  readonly dir: string;
  history(ctx: RunContext): Promise<History>;
  /** Moves the database from `from` (null: no revision) to `to` ("base": no revision) in one
   * transaction. Throws a StepError, before touching the database, when it cannot. */
  run(direction: "up" | "down", from: string | null, to: string, ctx: RunContext): Promise<RunResult>;
  /** `run`, started as far as it gets without the database, for a run that must wait (migrate's
   * unchanged check). Throws as `run` does (here or at `go`), before anything reaches the database. */
  prepare(direction: "up" | "down", from: string | null, to: string, ctx: RunContext): PreparedRun;
}

/** A run started ahead: nothing reaches the database before `go`. Call exactly one of the two. */
export interface PreparedRun {
  go(): Promise<RunResult>;
  /** Ends it unrun; resolves once nothing of it is left running. */
  cancel(): Promise<void>;
}

/** A run with nothing to start ahead: `go` runs it. */
function deferred(run: () => Promise<RunResult>): PreparedRun {
  return { go: run, cancel: async () => undefined };
}


// Read through alembic's own script API: the same graph `alembic heads` / `alembic history` print.
const HISTORY_PY = `
import json
from alembic.config import Config
from alembic.script import ScriptDirectory
s = ScriptDirectory.from_config(Config("alembic.ini"))
print(json.dumps({"heads": list(s.get_heads()),
  "revisions": {r.revision: list(r._all_down_revisions) for r in s.walk_revisions()}}))
`;

// `python -m alembic ARGS` started ahead: Python and what `python -m alembic` imports before it
// reads its arguments (alembic and SQLAlchemy, about 0.2 s here) load while migrate checks the
// database; alembic itself (env.py, its connection, the revisions) runs on "go" on stdin.
const ALEMBIC_AHEAD_PY = `
import sys
from alembic.config import main
if sys.stdin.readline() != "go\\n":
    sys.exit(0)
main(argv=sys.argv[1:], prog="alembic")
`;

const CANCEL_GRACE_MS = 5_000;

/** Where alembic histories are kept, by the content of what they were read from. */
const HISTORY_CACHE = join(__dirname, "..", "..", "node_modules", ".cache", "vibes-hooks", "alembic-history");

/** Why `history` cannot carry a deployment to `to`, or undefined. */
export function historyProblem(source: MigrationSource, history: History, to: string): { problem: string; fix: string } | undefined {
  if (history.heads.length !== 1) {
    return { problem: `${source.name} reports ${history.heads.length} heads (${history.heads.join(", ")})`,
      fix: "merge the branches (alembic merge) or remove the stray revision, then plan the deployment again" };
  }
  if (!history.parents.has(to)) return { problem: `revision ${to} is not in ${source.dir}`, fix: "pass --to a revision that exists in the migration files" };
  return undefined;
}

type Flags = Record<string, string | boolean | undefined>;

/** The migration files `step`'s flags name: --mode alembic (VIBES_APP_DIR, optional --up/--down) or --mode sql --sql-dir DIR. */
export function sourceFromFlags(step: string, values: Flags, env: NodeJS.ProcessEnv): MigrationSource {
  const mode = values.mode ?? "alembic";
  if (mode === "sql") return sqlFolder(step, values);
  if (mode !== "alembic") throw new UsageError(`${step}: --mode "${String(mode)}" is not alembic or sql`, "pass --mode alembic (the default) or --mode sql --sql-dir DIR");
  return alembicRevisions(step, values, env);
}

/** --mode alembic: the app's revisions in VIBES_APP_DIR, run by alembic or the --up/--down commands. */
function alembicRevisions(step: string, values: Flags, env: NodeJS.ProcessEnv): MigrationSource {
  if (values["sql-dir"] !== undefined) throw new UsageError(`${step}: --sql-dir needs --mode sql`, "pass --mode sql --sql-dir DIR, or drop --sql-dir");
  const templates = { up: values.up as string | undefined, down: values.down as string | undefined };
  for (const [flag, t] of [["--up", templates.up], ["--down", templates.down]]) {
    if (t !== undefined && !t.includes("{rev}")) throw new UsageError(`${step}: ${flag} must contain {rev}`, `pass e.g. ${flag} "python3 -m alembic ${flag === "--up" ? "upgrade" : "downgrade"} {rev}"`);
  }
  const appDir = env.VIBES_APP_DIR;
  if (!appDir || !statSync(appDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new StepError(`VIBES_APP_DIR ${appDir ? `"${appDir}" is not a directory` : "is not set"}`, "set VIBES_APP_DIR to the app's folder (it holds alembic.ini and migrations/versions/)");
  }
  const versionsDir = migrationFilesDir({ mode: "alembic", appDir });
  return alembicSource({ python: env.VIBES_PYTHON || "/usr/bin/python3", appDir, versionsDir, ...templates });
}

/** --mode sql: the `<revision>.up.sql` / `.down.sql` files in --sql-dir, run by psql. */
function sqlFolder(step: string, values: Flags): MigrationSource {
  if (values.up !== undefined || values.down !== undefined) {
    throw new UsageError(`${step}: --up/--down apply to --mode alembic only`, "drop them: in sql mode psql runs <revision>.up.sql / .down.sql from --sql-dir");
  }
  const dir = requireFlag(step, values["sql-dir"] as string | undefined, "--sql-dir", "app/migrations/sql");
  return sqlSource(dir);
}

/** The app's alembic revisions; `up`/`down` are shell command templates where `{rev}` is the target. */
export function alembicSource(opts: { python: string; appDir: string; versionsDir: string; up?: string; down?: string }): MigrationSource {
  const templates = {
    up: opts.up ?? `${shellWord(opts.python)} -m alembic upgrade {rev}`,
    down: opts.down ?? `${shellWord(opts.python)} -m alembic downgrade {rev}`,
  };
  return {
    name: "alembic",
    dir: opts.versionsDir,
    async history(ctx) {
      // Keyed by everything alembic reads for it: a changed file is a new key, never a stale read.
      // Preflight reads it before the window; migrate, inside it, then needs no Python start.
      const key = createHash("sha256").update(opts.python).update("\0").update(readFileSync(join(opts.appDir, "alembic.ini")));
      for (const name of readdirSync(opts.versionsDir).filter((n) => n.endsWith(".py")).sort()) {
        key.update("\0").update(name).update("\0").update(readFileSync(join(opts.versionsDir, name)));
      }
      const cached = join(HISTORY_CACHE, `${key.digest("hex")}.json`);
      let text: string;
      try {
        text = readFileSync(cached, "utf8");
      } catch {
        const res = await runChild(opts.python, ["-c", HISTORY_PY], { env: ctx.env, cwd: opts.appDir, timeoutMs: 60_000, label: "alembic history" });
        if (res.code !== 0) {
          throw new StepError(`cannot read the alembic history in ${opts.appDir}: ${stderrSummary(res.stderr) || `exit ${res.code}`}`,
            "check VIBES_APP_DIR (it must hold alembic.ini) and VIBES_PYTHON (a Python with alembic installed)");
        }
        text = res.stdout.trim().split("\n").pop()!;
        try {
          mkdirSync(HISTORY_CACHE, { recursive: true, mode: 0o700 });
          writeFileSync(`${cached}.${process.pid}`, text, { mode: 0o600 });
          renameSync(`${cached}.${process.pid}`, cached); // atomic: a concurrent step never reads half a file
        } catch {
          // A read-only checkout still works, reading the history every time.
        }
      }
      const parsed = JSON.parse(text) as { heads: string[]; revisions: Record<string, string[]> };
      return { heads: parsed.heads, parents: new Map(Object.entries(parsed.revisions)) };
    },
    run(direction, _from, to, ctx) {
      const command = commandFor(direction, to);
      ctx.log(command);
      return runShell(command, { env: ctx.env, cwd: opts.appDir, timeoutMs: ctx.timeoutMs, label: direction });
    },
    prepare(direction, from, to, ctx) {
      const command = commandFor(direction, to);
      // A command of the operator's own is run as given, when it is time.
      if (opts[direction] !== undefined) return deferred(() => this.run(direction, from, to, ctx));
      const stdin = new PassThrough();
      let going: () => void = () => undefined;
      // The migration's timeout, and the signals the hook passes on, apply from "go": a backup
      // taken again meanwhile is not its time, and a Ctrl-C before it ends the hook at once.
      const goes = new Promise<void>((resolve) => (going = resolve));
      const abandon = new AbortController();
      const args = [direction === "up" ? "upgrade" : "downgrade", to];
      const result = runChild(opts.python, ["-c", ALEMBIC_AHEAD_PY, ...args], { env: ctx.env, cwd: opts.appDir, timeoutMs: ctx.timeoutMs, goes, label: direction, stdin, signal: abandon.signal });
      result.catch(() => undefined); // awaited by go or cancel
      return {
        go() {
          ctx.log(`${command} (Python and alembic loaded ahead)`);
          going();
          stdin.end("go\n");
          return result;
        },
        async cancel() {
          stdin.end();
          // It ends at once when it reads the end of its input; one stuck loading is killed.
          const stuck = setTimeout(() => abandon.abort(), CANCEL_GRACE_MS);
          await result.catch(() => undefined);
          clearTimeout(stuck);
        },
      };
    },
  };

  function commandFor(direction: "up" | "down", to: string): string {
    // `to` may come from the database or a manifest: nothing else may reach the shell.
    if (!REVISION_RE.test(to)) {
      throw new StepError(`"${to}" is not a revision id (letters, digits, _ . -): it is not run`, "check alembic_version and the manifest's revision");
    }
    return templates[direction].split("{rev}").join(to);
  }
}

const SQL_FILE = /^([A-Za-z0-9_.-]+)\.(up|down)\.sql$/;
// Statements that end (or open) a transaction. ROLLBACK TO SAVEPOINT stays inside it.
const TRANSACTION_CONTROL = /^(BEGIN|START\s+TRANSACTION|COMMIT|END|ABORT|ROLLBACK(?!\s+((WORK|TRANSACTION)\s+)?TO\b)|PREPARE\s+TRANSACTION)\b/i;

/**
 * The first statement of `sql` that controls the transaction, or undefined. A COMMIT (or END,
 * ABORT, ROLLBACK...) inside a file would make its changes permanent apart from the revision
 * update. Comments, quoted strings and dollar-quoted bodies (PL/pgSQL's BEGIN ... END) are left
 * out first; so is the body of a BEGIN ATOMIC function, whose statements end with END.
 */
export function transactionControlIn(sql: string): string | undefined {
  // Inside a BEGIN ATOMIC body, BEGIN and CASE open blocks that END closes, as psql counts them.
  let atomicDepth = 0;
  const depthChange = (text: string) =>
    (text.match(/\b(BEGIN|CASE)\b/gi)?.length ?? 0) - (text.match(/\bEND\b/gi)?.length ?? 0);
  for (const statement of codeStatements(sql)) {
    if (atomicDepth > 0) {
      atomicDepth += depthChange(statement);
    } else if (/\bBEGIN ATOMIC\b/i.test(statement)) {
      atomicDepth = depthChange(statement.slice(statement.search(/\bBEGIN ATOMIC\b/i)));
    } else if (TRANSACTION_CONTROL.test(statement)) {
      return statement;
    }
  }
  return undefined;
}

/** The statements of `sql` (split at semicolons), each with its comments and quoted parts
 * (strings, E'' strings with backslash escapes, quoted names, dollar-quoted bodies) left out
 * and its spaces collapsed. Block comments nest, as in PostgreSQL. */
function codeStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = "";
  let i = 0;
  const identifierChar = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_$]/.test(c);
  while (i < sql.length) {
    const c = sql[i];
    const two = sql.slice(i, i + 2);
    const dollar = identifierChar(sql[i - 1]) ? null : /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
    if (two === "--") {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? sql.length : end;
    } else if (two === "/*") {
      let depth = 0;
      do {
        const opens = sql.startsWith("/*", i);
        const closes = !opens && sql.startsWith("*/", i);
        depth += opens ? 1 : closes ? -1 : 0;
        i += opens || closes ? 2 : 1;
      } while (depth > 0 && i < sql.length);
    } else if (c === "'" || c === '"') {
      // E'...' takes backslash escapes; a doubled quote is two adjacent quoted parts either way.
      const escapes = c === "'" && /[Ee]/.test(sql[i - 1] ?? "") && !identifierChar(sql[i - 2]);
      i++;
      while (i < sql.length && sql[i] !== c) i += escapes && sql[i] === "\\" ? 2 : 1;
      i++;
    } else if (dollar) {
      const end = sql.indexOf(dollar[0], i + dollar[0].length);
      i = end < 0 ? sql.length : end + dollar[0].length;
    } else if (c === ";") {
      statements.push(current);
      current = "";
      i++;
      continue;
    } else {
      current += c;
      i++;
      continue;
    }
    current += " ";
  }
  statements.push(current);
  return statements.map((st) => st.trim().replace(/\s+/g, " ")).filter(Boolean);
}
/**
 * The schema of the version table migrate read the revision from, for the commands: the SQL files'
 * record goes there, and an alembic env.py can pass it as version_table_schema (the sample app's
 * does), so that a migration's own search_path never moves the record.
 */
export const VERSION_SCHEMA_VARIABLE = "VIBES_VERSION_TABLE_SCHEMA";

/** alembic_version.version_num is varchar(32), as alembic creates it. */
const MAX_REVISION_LENGTH = 32;

// Run by psql after the files, in their transaction; the revision arrives as a psql variable
// (:'vibes_revision' is quoted by psql), never spliced into SQL text. Same table as alembic's,
// so the app, preflight, validate and alembic mode all read the revision from one place; in the
// schema migrate found it in (:"vibes_version_schema"), whatever search_path the files set.
const SET_VERSION = `SET LOCAL client_min_messages = warning;
CREATE TABLE IF NOT EXISTS :"vibes_version_schema".alembic_version (version_num varchar(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
DELETE FROM :"vibes_version_schema".alembic_version;
INSERT INTO :"vibes_version_schema".alembic_version (version_num) VALUES (:'vibes_revision');
`;
const CLEAR_VERSION = `DELETE FROM :"vibes_version_schema".alembic_version;\n`;

/**
 * A folder of `<revision>.up.sql` / `<revision>.down.sql`: one line of history in byte order of
 * the names; the down file of R returns to the revision before R. Read (and checked) at once.
 */
export function sqlSource(dir: string): MigrationSource {
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(".sql")).map((e) => e.name);
  } catch (err) {
    throw new StepError(`cannot read the SQL migrations folder ${dir}: ${(err as Error).message}`, "pass --sql-dir the folder holding <revision>.up.sql and <revision>.down.sql");
  }
  const ups = new Set<string>();
  const downs = new Set<string>();
  for (const name of names) {
    const m = SQL_FILE.exec(name);
    if (!m) throw new StepError(`${dir}/${name} is not named <revision>.up.sql or <revision>.down.sql`, "rename it (revision ids: letters, digits, _ . -) or move it out of the folder");
    if (m[1].length > MAX_REVISION_LENGTH) throw new StepError(`${dir}/${name}: revision id longer than ${MAX_REVISION_LENGTH} characters`, "shorten the revision id (alembic_version holds at most 32)");
    (m[2] === "up" ? ups : downs).add(m[1]);
  }
  for (const name of names) {
    const control = transactionControlIn(readFileSync(join(dir, name), "utf8"));
    if (control !== undefined) {
      throw new StepError(`${dir}/${name} controls the transaction ("${control.slice(0, 40)}")`,
        "remove it: migrate runs the files and the revision update in one transaction of its own");
    }
  }
  const orphan = [...downs].find((rev) => !ups.has(rev));
  if (orphan) throw new StepError(`${dir}/${orphan}.down.sql has no ${orphan}.up.sql`, "add the up file or remove the down file");
  const revisions = [...ups].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  if (revisions.length === 0) throw new StepError(`${dir} holds no <revision>.up.sql file`, "pass --sql-dir the folder of the SQL migrations");
  const index = (rev: string | null) => (rev === null || rev === "base" ? -1 : revisions.indexOf(rev));

  return {
    name: "the SQL files",
    dir,
    async history() {
      return { heads: [revisions[revisions.length - 1]], parents: new Map(revisions.map((rev, i) => [rev, i === 0 ? [] : [revisions[i - 1]]])) };
    },
    run(direction, from, to, ctx) {
      const [a, b] = [index(from), index(to)];
      if ((from !== null && from !== "base" && a < 0) || (to !== "base" && b < 0) || (direction === "up" ? b <= a : b >= a)) {
        throw new StepError(`the SQL files cannot go ${direction} from ${from ?? "no revision"} to ${to}`,
          "check alembic_version against the files in the folder (and the manifest's revision)");
      }
      const path = direction === "up" ? revisions.slice(a + 1, b + 1) : revisions.slice(b + 1, a + 1).reverse();
      const missing = direction === "down" ? path.find((rev) => !downs.has(rev)) : undefined;
      if (missing) {
        throw new StepError(`${dir} has no ${missing}.down.sql: the SQL files cannot go down from ${from} to ${to}`,
          "add the down file (it returns the database to the revision before it) or restore the backup (docs/operations.md)");
      }
      const files = path.map((rev) => `${rev}.${direction}.sql`);
      const psql = pgTool("psql", ctx.env);
      const base = to === "base";
      const versionSchema = ctx.env[VERSION_SCHEMA_VARIABLE] || "public";
      const args = ["-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-v", `vibes_version_schema=${versionSchema}`, ...(base ? [] : ["-v", `vibes_revision=${to}`]),
        "--single-transaction", ...files.flatMap((f) => ["-f", f]), "-f", "-"];
      ctx.log(`${psql} ${args.join(" ")} (stdin: ${base ? "clear" : `record ${to} in`} ${versionSchema}.alembic_version)`);
      return runChild(psql, args, { env: ctx.env, cwd: dir, timeoutMs: ctx.timeoutMs, label: "psql", stdin: base ? CLEAR_VERSION : SET_VERSION });
    },
    prepare(direction, from, to, ctx) {
      // psql starts in milliseconds: nothing to gain by starting it ahead.
      return deferred(() => this.run(direction, from, to, ctx));
    },
  };
}
