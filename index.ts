// The UUID schema deployment (../shared/seed/uuid-deployment-guide.md) as one graph per stack.
// Each stage depends on the one before it; data (the verified backup's manifest and checksum)
// flows into the stages after it. Stack outputs: docs/outputs.md. Re-runs and rollback:
// docs/operations.md.
import * as pulumi from "@pulumi/pulumi";
import { readConfig } from "./config";
import { logPlanSummary } from "./planSummary";
import { PreflightChecks } from "./components/PreflightChecks";
import { BackupVault } from "./components/BackupVault";
import { MaintenanceMode } from "./components/MaintenanceMode";
import { LogicalBackup } from "./components/LogicalBackup";
import { RdsSnapshot } from "./components/RdsSnapshot";
import { SchemaMigration } from "./components/SchemaMigration";
import { MigrationValidation } from "./components/MigrationValidation";
import { AppRelease } from "./components/AppRelease";
import { PostDeployChecks } from "./components/PostDeployChecks";

export = async () => {
  const config = readConfig();
  if (pulumi.runtime.isDryRun() && config.planSummary) await logPlanSummary(config);

  // Pre-Deployment Preparation: validation, then where backups go.
  const preflight = new PreflightChecks("preflight", { config });
  const vault = new BackupVault("backup-vault", { config }, { dependsOn: [preflight] });

  // Maintenance mode goes on before the dump, so the manifest still holds at migration time.
  const maintenanceOn = new MaintenanceMode("maintenance-on", { config, enabled: true }, { dependsOn: [vault] });
  const backup = new LogicalBackup("backup", { config }, { dependsOn: [maintenanceOn] });
  const snapshot = config.snapshot
    ? new RdsSnapshot("rds-snapshot", { config, snapshot: config.snapshot }, { dependsOn: [backup] })
    : undefined;

  // Database Migration Procedures: only after the verified backup (and the snapshot).
  const fromBackup = { config, manifestUri: backup.manifestUri, backupSha256: backup.sha256 };
  const migration = new SchemaMigration("migration", fromBackup, { dependsOn: snapshot ? [backup, snapshot] : [backup] });
  const validation = new MigrationValidation("validation", fromBackup, { dependsOn: [migration] });

  // Application Deployment, Post-Deployment Validation, then back to service.
  const release = new AppRelease("app-release", fromBackup, { dependsOn: [validation] });
  const checks = new PostDeployChecks("post-deploy-checks", fromBackup, { dependsOn: [release] });
  new MaintenanceMode("maintenance-off", { config, enabled: false, backupSha256: backup.sha256 }, { dependsOn: [checks] });

  // Monitoring and Alerting: components/Monitoring.ts (its own issue) plugs in HERE, on AWS stacks,
  // after the maintenance-off stage above; it adds `alarmTopicArn` to the outputs below and to
  // docs/outputs.md and the test that pins them.

  // The stack outputs: a contract for other teams (docs/outputs.md, pinned by a test).
  return {
    ...(vault.folder !== undefined
      ? { backupFolder: vault.folder }
      : { backupBucketName: vault.bucketName, backupBucketArn: vault.bucketArn }),
    backupObjectUri: backup.uri,
    backupManifestUri: backup.manifestUri,
    backupSha256: backup.sha256,
    backupBytes: backup.bytes,
    ...(snapshot ? { snapshotIdentifier: snapshot.identifier, snapshotArn: snapshot.arn } : {}),
    schemaRevisionBefore: migration.revisionBefore,
    schemaRevisionAfter: migration.revisionAfter,
    targetRevision: config.migration.targetRevision,
    migrationFilesSha256: config.migration.filesSha256,
    idType: validation.idType,
    validationSummary: validation.summary,
    appUrl: config.app.url,
  };
};
