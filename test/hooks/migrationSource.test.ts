import assert from "node:assert/strict";
import { join } from "node:path";
import { StepError } from "../../hooks/lib/errors";
import { alembicSource, sqlSource, type RunContext } from "../../hooks/lib/migrationSource";
import { APP_DIR } from "../support/pgCluster";

// Revisions reach the sources from the database (alembic_version) and from manifests, not only
// from --to: a source refuses what it cannot run, before anything runs.
describe("migration sources: what they refuse before running anything", () => {
  const ctx: RunContext = { env: { PATH: "/nonexistent" }, timeoutMs: 1_000, log: () => undefined };
  const refused = (run: () => unknown, message: RegExp) =>
    assert.throws(run, (err: unknown) => err instanceof StepError && message.test(err.message));

  it("the SQL files go only along their line, in the direction asked", () => {
    const source = sqlSource(join(APP_DIR, "migrations", "sql"));
    refused(() => source.run("down", "0000_initial", "001_uuid_schema_migration", ctx), /cannot go down from 0000_initial to 001_uuid_schema_migration/);
    refused(() => source.run("up", "001_uuid_schema_migration", "0000_initial", ctx), /cannot go up from 001_uuid_schema_migration to 0000_initial/);
    refused(() => source.run("up", "0000_initial", "0042_unknown", ctx), /cannot go up from 0000_initial to 0042_unknown/);
    refused(() => source.run("down", "0042_unknown", "base", ctx), /cannot go down from 0042_unknown to base/);
  });

  it("alembic commands get only revision ids: anything else never reaches the shell", () => {
    const source = alembicSource({ python: "/nonexistent/python3", appDir: APP_DIR, versionsDir: join(APP_DIR, "migrations", "versions") });
    refused(() => source.run("down", "001_uuid_schema_migration", "0000_initial; touch /tmp/owned", ctx), /is not a revision id/);
    refused(() => source.run("up", null, "$(id)", ctx), /is not a revision id/);
  });
});
