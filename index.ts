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
import { OnlineContract } from "./components/OnlineContract";
import { OnlinePreparation } from "./components/OnlinePreparation";
import { OnlineSwap } from "./components/OnlineSwap";
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
  const backup = new LogicalBackup("backup", { steps, targetRevision: m.targetRevision, keepCopy: m.strategy === "offline" && m.rollbackStrategy === "swap" }, { dependsOn: [vault] });
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

  // Database Migration Procedures. Offline (the guide's): the window opens after the verified
  // backup; migrate proves nothing changed since (or takes it again), migrates and proves the
  // result; validation reports that proof. Online (docs/online.md): the new columns are built and
  // filled while the app serves, and the window holds only the proof and a swap of milliseconds.
  const backedUp = snapshot ? [backup, snapshot] : [backup];
  const migrated = m.strategy === "online" ? onlineIdChange() : offlineMigration();

  // Application Deployment and Post-Deployment Validation (the performance checks beside the
  // app's restart, the smoke tests after it), then back to service.
  const release = new AppRelease("app-release", { ...migrated.relied, app: config.app }, { dependsOn: [migrated.done] });
  const checks = new PostDeployChecks("post-deploy-checks", { ...migrated.relied, expectedIdType: m.expectedIdType, migrated: migrated.done, released: release });
  const maintenanceOff = new MaintenanceMode("maintenance-off", { steps, enabled: false, backupSha256: migrated.relied.backupSha256, dropsCopy: m.strategy === "offline" }, { dependsOn: [checks] });
  // Online: the integer columns go in a stage of its own, when asked for (until then the swap can be reversed).
  if (m.strategy === "online" && m.online.contract) {
    new OnlineContract("online-contract", { steps, migration: m, backupSha256: backup.sha256 }, { dependsOn: [maintenanceOff] });
  }

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

  /** Offline: maintenance on, migrate, validation. */
  function offlineMigration() {
    const maintenanceOn = new MaintenanceMode("maintenance-on", { steps, enabled: true, backupSha256: backup.sha256 }, { dependsOn: backedUp });
    const migration = new SchemaMigration("migration", { steps, migration: m, manifestUri: backup.manifestUri, backupSha256: backup.sha256 }, { dependsOn: [maintenanceOn] });
    const relied = { steps, rollBackTo: { manifestUri: migration.backup.manifestUri }, backupSha256: migration.backup.sha256 };
    const validation = new MigrationValidation("validation", { steps, migration: m, manifestUri: migration.backup.manifestUri, backupSha256: migration.backup.sha256 }, { dependsOn: [migration] });
    return {
      relied, done: validation, backup: migration.backup, summary: validation.summary, idType: validation.idType,
      revisionBefore: migration.revisionBefore, revisionAfter: migration.revisionAfter, filesSha256: migration.filesSha256,
    };
  }

  /** Online: expand, backfill, constraints while the app serves; maintenance on; the proven swap. */
  function onlineIdChange() {
    const preparation = new OnlinePreparation("online-preparation", { steps, migration: m, backupSha256: backup.sha256 }, { dependsOn: backedUp });
    const maintenanceOn = new MaintenanceMode("maintenance-on", { steps, enabled: true, backupSha256: backup.sha256 }, { dependsOn: [preparation.ready] });
    const swap = new OnlineSwap("online-swap", { steps, migration: m, backupSha256: backup.sha256 }, { dependsOn: [maintenanceOn] });
    const swapped = <T>(value: T) => swap.phase.apply(() => value);
    return {
      relied: { steps, rollBackTo: "online" as const, backupSha256: backup.sha256 },
      done: swap,
      // The writes since the backup are not in it: it is the state before the change, never taken again.
      backup: pulumi.all([backup.uri, backup.manifestUri, backup.sha256, backup.bytes]).apply(([uri, manifestUri, sha256, bytes]) => ({ uri, manifestUri, sha256, bytes, retaken: false })),
      summary: swap.holdMs.apply((ms) => `online: proven before the swap, swapped in ${ms ?? "?"} ms of locks`),
      idType: swapped(m.expectedIdType),
      revisionBefore: preflight.result.apply((r) => r.revision),
      revisionAfter: swapped(m.targetRevision),
      filesSha256: swapped<string | null>(m.filesSha256),
    };
  }

  // Stakeholders notified of completion.
  steps.run("notify-success", {
    step: "notify",
    words: ["success"],
    flags: { summary: migrated.summary },
    backupSha256: migrated.relied.backupSha256,
  }, { dependsOn: databaseMonitoring ? [maintenanceOff, databaseMonitoring] : [maintenanceOff] });

  // The stack outputs: a contract for other teams (docs/outputs.md, pinned by a test).
  return {
    ...(vault.folder !== undefined
      ? { backupFolder: vault.folder }
      : { backupBucketName: vault.bucketName, backupBucketArn: vault.bucketArn }),
    // The backup the migration relied on: the one taken before the window, or the one migrate took
    // again inside it when the database had changed since.
    backupObjectUri: migrated.backup.uri,
    backupManifestUri: migrated.backup.manifestUri,
    backupSha256: migrated.backup.sha256,
    backupBytes: migrated.backup.bytes,
    backupRetakenInWindow: migrated.backup.retaken,
    ...(snapshot ? { snapshotIdentifier: snapshot.identifier, snapshotArn: snapshot.arn } : {}),
    schemaRevisionBefore: migrated.revisionBefore,
    schemaRevisionAfter: migrated.revisionAfter,
    targetRevision: m.targetRevision,
    // The files that migrated the database (recorded there), not merely the ones on disk now.
    migrationFilesSha256: migrated.filesSha256,
    idType: migrated.idType,
    validationSummary: migrated.summary,
    // Resolves only once validation passed: the prod promotion gate reads it from test.
    validated: migrated.summary.apply(() => true),
    appUrl: config.app.url,
    ...(gates.promotion ? { promotionOverride: gates.promotionOverride } : {}),
    ...(monitoring ? { alarmTopicArn: monitoring.alarmTopicArn, alarmNames: monitoring.alarmNames } : {}),
    ...(databaseMonitoring ? { monitoringRoleName: databaseMonitoring.monitoringRoleName } : {}),
  };
};
