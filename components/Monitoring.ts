// The guide's "Monitoring and Alerting", AWS side: CloudWatch alarms on the RDS instance (or
// Aurora cluster) notify an SNS topic, which also carries the deployment notifications, so this
// component is built before the stages. The database side (pg_stat_statements, the monitoring
// role) is DatabaseMonitoring, built after the deployment so its grants never wait on the
// migration's locks.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { AlarmThresholds } from "../safety/config";

export interface MonitoringArgs {
  stack: string;
  /** What the alarms watch: an RDS instance (DBInstanceIdentifier) or an Aurora cluster (DBClusterIdentifier). */
  target: { kind: "instance" | "cluster"; identifier: string };
  thresholds: AlarmThresholds;
  /** Each gets an email subscription (AWS mails a confirmation link first). */
  alarmEmails: string[];
  /** Sends the failure notice when a cloud resource fails (safety/failureNotice.ts); unset on
   * stacks without a notification channel. */
  failureNotice?: pulumi.ErrorHook;
}

interface AlarmSpec {
  key: string;
  metric: string;
  statistic: "Average" | "Minimum" | "Maximum";
  comparison: "GreaterThanThreshold" | "LessThanThreshold";
  /** In CloudWatch's unit for the metric. */
  threshold: number;
  unit: string;
  treatMissingData: "breaching" | "notBreaching";
}

/** The alarms, thresholds converted to CloudWatch's units (latency is published in seconds). */
export function alarmSpecs(kind: "instance" | "cluster", t: AlarmThresholds): AlarmSpec[] {
  // RDS publishes these every minute while the instance is up: no data means it is down or
  // unreachable, which should page. Latency has no datapoints when there is no I/O: fine.
  return [
    { key: "cpu", metric: "CPUUtilization", statistic: "Average", comparison: "GreaterThanThreshold", threshold: t.cpuUtilizationPercent, unit: "%", treatMissingData: "breaching" },
    { key: "freeable-memory", metric: "FreeableMemory", statistic: "Minimum", comparison: "LessThanThreshold", threshold: t.freeableMemoryBytes, unit: "bytes", treatMissingData: "breaching" },
    {
      key: "free-storage",
      metric: kind === "cluster" ? "FreeLocalStorage" : "FreeStorageSpace",
      statistic: "Minimum", comparison: "LessThanThreshold", threshold: t.freeStorageBytes, unit: "bytes", treatMissingData: "breaching",
    },
    { key: "connections", metric: "DatabaseConnections", statistic: "Maximum", comparison: "GreaterThanThreshold", threshold: t.databaseConnections, unit: "connections", treatMissingData: "breaching" },
    { key: "read-latency", metric: "ReadLatency", statistic: "Average", comparison: "GreaterThanThreshold", threshold: t.readLatencyMs / 1000, unit: "seconds", treatMissingData: "notBreaching" },
    { key: "write-latency", metric: "WriteLatency", statistic: "Average", comparison: "GreaterThanThreshold", threshold: t.writeLatencyMs / 1000, unit: "seconds", treatMissingData: "notBreaching" },
  ];
}

export class Monitoring extends pulumi.ComponentResource {
  public readonly alarmTopicArn: pulumi.Output<string>;
  public readonly alarmNames: pulumi.Output<string[]>;

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:monitoring:Monitoring", name, {}, opts);
    const child = { parent: this, ...(args.failureNotice ? { hooks: { onError: [args.failureNotice] } } : {}) };

    const topic = new aws.sns.Topic(`${name}-alarms`, { name: `vibes-${args.stack}-alarms` }, child);
    args.alarmEmails.forEach((email, i) => {
      new aws.sns.TopicSubscription(`${name}-email-${i}`, { topic: topic.arn, protocol: "email", endpoint: email }, child);
    });

    const dimension = args.target.kind === "cluster" ? "DBClusterIdentifier" : "DBInstanceIdentifier";
    const t = args.thresholds;
    const alarms = alarmSpecs(args.target.kind, t).map(
      (spec) =>
        new aws.cloudwatch.MetricAlarm(`${name}-${spec.key}`, {
          name: `vibes-${args.stack}-${spec.key}`,
          alarmDescription: `${spec.metric} of ${args.target.identifier} ${spec.comparison === "GreaterThanThreshold" ? ">" : "<"} ${spec.threshold} ${spec.unit} (${spec.statistic}, ${t.evaluationPeriods} x ${t.periodSeconds}s)`,
          namespace: "AWS/RDS",
          metricName: spec.metric,
          dimensions: { [dimension]: args.target.identifier },
          statistic: spec.statistic,
          comparisonOperator: spec.comparison,
          threshold: spec.threshold,
          period: t.periodSeconds,
          evaluationPeriods: t.evaluationPeriods,
          treatMissingData: spec.treatMissingData,
          alarmActions: [topic.arn],
          okActions: [topic.arn],
        }, child),
    );

    this.alarmTopicArn = topic.arn;
    this.alarmNames = pulumi.all(alarms.map((a) => a.name));
    this.registerOutputs({ alarmTopicArn: this.alarmTopicArn, alarmNames: this.alarmNames });
  }
}
