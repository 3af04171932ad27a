// One migrate run's state, in one place: what was asked (options), what it works with (the
// session holding the migration lock, the commands' environment, the migration files), and the
// one thing that changes on the way: the backup it relies on (taken again inside the window when
// the database changed since it).
import type { Client } from "pg";
import type { ConnectionSettings } from "../lib/database/connection";
import { errorMessage, StepError } from "../lib/errors";
import type { Check } from "../../common/types";
import { loadManifest, type Manifest } from "../lib/proof/manifest";
import type { History, MigrationSource, PreparedRun, RunContext } from "../lib/migrationSource";
import { prove, type Proof, type ProofOptions } from "../lib/proof/proof";
import { currentRevision, readRecord, writeRecord } from "../lib/database/revision";
import type { RunResult } from "../lib/processes/run";
import type { SchemaSnapshot } from "../lib/proof/schemaSnapshot";
import type { MigrateOptions } from "./options";

export const failedOf = (checks: Check[]) => checks.filter((c) => !c.ok);
export const summarize = (checks: Check[]) => failedOf(checks).map((c) => `${c.name}: ${c.detail}`).join("; ");

/** A proof, or a failed check standing for one that could not run. */
export type ProofOrFailure = Proof | { checks: Check[]; revision: string | null; schema?: undefined };

export class MigrateRun {
  /** The commands' own sessions carry this name: those a failed command leaves running are ended. */
  readonly childApplication = `vibes-hooks migrate command ${process.pid}`;
  /** Read beside the unchanged check (migrateLocked). */
  history!: History;
  backupRetaken = false;

  constructor(
    readonly opts: MigrateOptions,
    readonly env: NodeJS.ProcessEnv,
    readonly settings: ConnectionSettings,
    readonly source: MigrationSource,
    /** The checksum of the migration files here, recorded with a proven change. */
    readonly filesSha: string,
    /** The commands' environment: passfile, PGOPTIONS, PGAPPNAME. */
    readonly childEnv: NodeJS.ProcessEnv,
    /** The session holding the migration lock. */
    readonly client: Client,
    readonly log: (m: string) => void,
    public manifest: Manifest,
    public manifestUri: string,
  ) {}

  get to(): string {
    return this.opts.to;
  }

  runContext(what: string): RunContext {
    return { env: this.childEnv, timeoutMs: this.opts.migrationTimeout.ms, log: (m: string) => this.log(`${what}: ${m}`) };
  }

  /** Relies on another backup from now on (one taken again inside the window). */
  async relyOn(manifestUri: string): Promise<void> {
    this.manifestUri = manifestUri;
    this.manifest = await loadManifest(manifestUri, this.env);
    this.backupRetaken = true;
  }

  /** Moves the database from `from` to `rev` ("base": no revision) through the source. A failed
   * command's sessions are ended before anything looks at the database. */
  async runStep(direction: "up" | "down", from: string | null, rev: string, what: string, prepared?: PreparedRun): Promise<RunResult> {
    const res = await (prepared ? prepared.go() : this.source.run(direction, from, rev, this.runContext(what)));
    for (const line of res.stderr.split("\n").filter((l) => l.trim())) this.log(`  ${line}`);
    if (res.code !== 0) {
      // What failed is the command: a session that cannot be ended is reported, not raised.
      await this.endChildSessions().catch((err) => this.log(`warning: ${errorMessage(err)}`));
    }
    return res;
  }

  /** The proof against the manifest with the target's id settings. */
  prove(extra: Partial<ProofOptions> = {}): Promise<Proof> {
    return prove(this.client, this.manifest, { ...this.opts.proof, ...extra });
  }

  /** The proof; an error (a covered table dropped by a bad migration) is one failed check, so that
   * a rollback restores instead of giving up. */
  async proveOrFailure(extra: Partial<ProofOptions> = {}): Promise<ProofOrFailure> {
    try {
      return await this.prove(extra);
    } catch (err) {
      return { checks: [{ name: "data.readable", ok: false, detail: errorMessage(err) }], revision: await currentRevision(this.client) };
    }
  }

  /** The result fields every outcome reports: which backup the run relied on. */
  backupFacts() {
    const m = this.manifest;
    return { backup: { uri: m.dump.uri, manifestUri: this.manifestUri, sha256: m.dump.sha256, bytes: m.dump.bytes, revision: m.revision, retaken: this.backupRetaken } };
  }

  /**
   * Records what was proven: the files that brought the database to `to`, the schemas of the
   * revisions it was proven at (`proof`'s is `to`'s), and the checks, for the validation stage.
   * Returns the files checksum recorded, or null when it could not be.
   */
  async recordProof(proof: Proof, extra: Record<string, SchemaSnapshot> = {}): Promise<string | null> {
    const previous = await readRecord(this.client);
    const written = await writeRecord(this.client, {
      revision: this.to,
      filesSha256: this.filesSha,
      schemas: { ...previous?.schemas, ...extra, [this.to]: proof.schema },
      validation: { backupSha256: this.manifest.dump.sha256, at: new Date().toISOString(), checks: proof.checks },
    }, this.log);
    return written ? this.filesSha : null;
  }

  /**
   * Ends the database sessions a migration command left behind and waits until they are gone. A
   * command stopped on its timeout (or a shell that exited before its psql) leaves its backend
   * running its statement, holding its locks, until the statement ends: the checks and the down
   * command after it would wait on those locks, and the migration lock would be released while
   * the orphan still changes the database.
   */
  private async endChildSessions(): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (let announced = false; ; announced = true) {
      const left = await this.client.query(
        `SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = $1 AND pid <> pg_backend_pid() AND datname = current_database()`, [this.childApplication]);
      if (left.rowCount === 0) return;
      if (!announced) this.log(`ending ${left.rowCount} database session(s) the command left running (pid ${left.rows.map((r) => r.pid).join(", ")})`);
      if (Date.now() > deadline) {
        throw new StepError(`the migration command's database session(s) ${left.rows.map((r) => r.pid).join(", ")} did not end within 60s`,
          "end them with SELECT pg_terminate_backend(pid) (the role needs pg_signal_backend), then re-run migrate");
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
