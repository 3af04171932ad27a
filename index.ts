// The UUID schema deployment (../shared/seed/uuid-deployment-guide.md) as one graph per stack.
// Each stage depends on the one before it; data (the verified backup's manifest and checksum)
// flows into the stages after it. The backup runs before the maintenance window, so that the
// window holds little more than the migration itself. Stack outputs: docs/outputs.md. Re-runs and rollback:
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
import { Monitoring } from "./components/Monitoring";
import { DeploymentGates } from "./components/DeploymentGates";
import { DatabaseMonitoring } from "./components/DatabaseMonitoring";
import { stepRunner } from "./hookCommand";
import { notifyEnvironment } from "./safety/config";
import { FailureNotice } from "./safety/failureNotice";

export = async () => {
  const stackConfig = readConfig();
  if (pulumi.runtime.isDryRun() && stackConfig.planSummary) await logPlanSummary(stackConfig);

  // Hook steps report their own failure; a failing cloud resource reports through this error
  // hook. Only where there is a channel to report to: dev has none, and so needs no engine with
  // error hooks (CLI >= 3.218).
  const alarms = stackConfig.safety.monitoring && stackConfig.rds
    ? { settings: stackConfig.safety.monitoring, target: stackConfig.rds }
    : undefined;
  const failureNotice = alarms || stackConfig.safety.notifyWebhookUrl !== undefined
    ? new FailureNotice(stackConfig.stack, stackConfig.migration.targetRevision)
    : undefined;

  // Monitoring and Alerting, AWS side, first: its topic also carries the deployment notices
  // that every step (and any step's failure) sends.
  const monitoring = alarms
    ? new Monitoring("monitoring", {
      stack: stackConfig.stack,
      target: alarms.target,
      thresholds: alarms.settings.thresholds,
      alarmEmails: alarms.settings.alarmEmails,
      failureNotice: failureNotice?.hook,
    })
    : undefined;
  const config = monitoring
    ? { ...stackConfig, safety: { ...stackConfig.safety, notifyTopicArn: monitoring.alarmTopicArn } }
    : stackConfig;
  failureNotice?.sendTo(notifyEnvironment(config.stack, config.safety));
  const onError = failureNotice?.hook;
  // Every stage's steps get their settings and secrets from here; a stage itself gets only what its Args name.
  const steps = stepRunner(config);
  const m = config.migration;

  // Pre-Deployment Preparation: validation, the promotion and window gates, then where backups go.
  const preflight = new PreflightChecks("preflight", { steps, migration: m, minFreeSpaceRatio: config.preflight.minFreeSpaceRatio, rds: config.rds });
  const gates = new DeploymentGates("gates", {
    steps,
    deployment: { stack: config.stack, targetRevision: m.targetRevision, migrationFilesSha256: m.filesSha256 },
    safety: config.safety,
  }, { dependsOn: [preflight] });
  const vault = new BackupVault("backup-vault", { backup: config.backup, failureNotice: onError }, { dependsOn: [gates] });

  // Backup Procedures, while the app still serves: the dump's snapshot is consistent on its own,
  // and restoring it proves it before the window opens.
  const backup = new LogicalBackup("backup", { steps, targetRevision: m.targetRevision, rollbackStrategy: m.rollbackStrategy }, { dependsOn: [vault] });
  const snapshot = config.snapshot
    ? new RdsSnapshot("rds-snapshot", {
      snapshot: config.snapshot,
      stack: config.stack,
      targetRevision: m.targetRevision,
      protectBackups: config.backup.protect,
      backupSha256: backup.sha256,
      failureNotice: onError,
    }, { dependsOn: [backup] })
    : undefined;

  // The maintenance window opens only after the verified backup (and the snapshot).
  const maintenanceOn = new MaintenanceMode("maintenance-on", { steps, enabled: true, backupSha256: backup.sha256 }, { dependsOn: snapshot ? [backup, snapshot] : [backup] });

  // Database Migration Procedures: migrate first proves nothing changed since the backup (or takes
  // it again), then migrates and proves the result; validation reports that proof.
  const migration = new SchemaMigration("migration", { steps, migration: m, manifestUri: backup.manifestUri, backupSha256: backup.sha256 }, { dependsOn: [maintenanceOn] });
  const relied = { steps, manifestUri: migration.backup.manifestUri, backupSha256: migration.backup.sha256 };
  const validation = new MigrationValidation("validation", { ...relied, migration: m }, { dependsOn: [migration] });

  // Application Deployment and Post-Deployment Validation (the performance checks beside the
  // app's restart, the smoke tests after it), then back to service.
  const release = new AppRelease("app-release", { ...relied, app: config.app }, { dependsOn: [validation] });
  const checks = new PostDeployChecks("post-deploy-checks", { ...relied, expectedIdType: m.expectedIdType, migrated: validation, released: release });
  const maintenanceOff = new MaintenanceMode("maintenance-off", { steps, enabled: false, backupSha256: relied.backupSha256 }, { dependsOn: [checks] });

  // Monitoring and Alerting, database side: after the deployment, so its grants never queue
  // behind the migration's locks.
  const databaseMonitoring = config.safety.monitoring
    ? new DatabaseMonitoring("database-monitoring", {
      databaseUrl: config.database.url,
      databasePassword: config.database.password,
      sslRootCert: config.database.sslRootCert,
      tables: config.tables,
      roleName: config.safety.monitoring.roleName,
      rolePassword: config.safety.monitoring.rolePassword,
      failureNotice: onError,
    }, { dependsOn: [maintenanceOff] })
    : undefined;

  // Stakeholders notified of completion.
  steps.run("notify-success", {
    step: "notify",
    words: ["success"],
    flags: { summary: validation.summary },
    backupSha256: relied.backupSha256,
  }, { dependsOn: databaseMonitoring ? [maintenanceOff, databaseMonitoring] : [maintenanceOff] });

  // The stack outputs: a contract for other teams (docs/outputs.md, pinned by a test).
  return {
    ...(vault.folder !== undefined
      ? { backupFolder: vault.folder }
      : { backupBucketName: vault.bucketName, backupBucketArn: vault.bucketArn }),
    // The backup the migration relied on: the one taken before the window, or the one migrate took
    // again inside it when the database had changed since.
    backupObjectUri: migration.backup.uri,
    backupManifestUri: migration.backup.manifestUri,
    backupSha256: migration.backup.sha256,
    backupBytes: migration.backup.bytes,
    backupRetakenInWindow: migration.backup.retaken,
    ...(snapshot ? { snapshotIdentifier: snapshot.identifier, snapshotArn: snapshot.arn } : {}),
    schemaRevisionBefore: migration.revisionBefore,
    schemaRevisionAfter: migration.revisionAfter,
    targetRevision: m.targetRevision,
    // The files that migrated the database (recorded there), not merely the ones on disk now.
    migrationFilesSha256: migration.filesSha256,
    idType: validation.idType,
    validationSummary: validation.summary,
    // Resolves only once validation passed: the prod promotion gate reads it from test.
    validated: validation.summary.apply(() => true),
    appUrl: config.app.url,
    ...(gates.promotion ? { promotionOverride: gates.promotionOverride } : {}),
    ...(monitoring ? { alarmTopicArn: monitoring.alarmTopicArn, alarmNames: monitoring.alarmNames } : {}),
    ...(databaseMonitoring ? { monitoringRoleName: databaseMonitoring.monitoringRoleName } : {}),
  };
};
