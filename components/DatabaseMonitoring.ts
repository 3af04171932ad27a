// The guide's "Monitoring and Alerting", database side: pg_stat_statements and a read-only login
// role for the guide's monitoring queries, so nobody runs them as the app's owner. Built after
// the deployment: its grants take table locks, which must never queue behind (or in front of) the
// migration. Grants survive the migration, which alters the tables in place.
import * as pulumi from "@pulumi/pulumi";
import { parseDatabaseUrl } from "../common/databaseUrl";
import * as postgresql from "@pulumi/postgresql";

export interface DatabaseMonitoringArgs {
  /** postgresql://user@host:port/db of an account that may create extensions and roles (the RDS master user). */
  databaseUrl: string;
  databasePassword: pulumi.Input<string>;
  /** CA bundle for sslmode verify-ca / verify-full (config databaseSslRootCert). */
  sslRootCert?: string;
  /** Tables the monitoring role may read, in `schema`. */
  tables: string[];
  schema?: string;
  roleName: string;
  rolePassword: pulumi.Input<string>;
  /** Sends the failure notice when a cloud resource fails (safety/failureNotice.ts); unset on
   * stacks without a notification channel. */
  failureNotice?: pulumi.ErrorHook;
}

export class DatabaseMonitoring extends pulumi.ComponentResource {
  public readonly monitoringRoleName: pulumi.Output<string>;

  constructor(name: string, args: DatabaseMonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("vibes:monitoring:DatabaseMonitoring", name, {}, opts);
    // An explicit provider, never the ambient one, connected as the RDS master user (not a
    // superuser on RDS) over TLS.
    // config.ts checked the URL with the same reader.
    const { host, port, database, user, sslmode } = parseDatabaseUrl(args.databaseUrl);
    const provider = new postgresql.Provider(`${name}-postgresql`, {
      host,
      port,
      database,
      username: user,
      password: pulumi.secret(args.databasePassword),
      superuser: false,
      sslmode: sslmode === "verify-ca" || sslmode === "verify-full" ? sslmode : "require",
      sslrootcert: args.sslRootCert,
      connectTimeout: 15,
    }, { parent: this });
    const db = { parent: this, provider, dependsOn: opts?.dependsOn, ...(args.failureNotice ? { hooks: { onError: [args.failureNotice] } } : {}) };
    const schema = args.schema ?? "public";

    // RDS preloads pg_stat_statements; CREATE EXTENSION needs rds_superuser (the master user).
    new postgresql.Extension(`${name}-pg-stat-statements`, { name: "pg_stat_statements", database }, db);
    const role = new postgresql.Role(`${name}-role`, {
      name: args.roleName,
      login: true,
      password: pulumi.secret(args.rolePassword),
      // Monitoring queries must never hold the database up.
      connectionLimit: 5,
      statementTimeout: 30_000,
    }, db);
    new postgresql.GrantRole(`${name}-pg-monitor`, { role: role.name, grantRole: "pg_monitor" }, db);
    new postgresql.Grant(`${name}-schema-usage`, { database, role: role.name, schema, objectType: "schema", privileges: ["USAGE"] }, db);
    new postgresql.Grant(`${name}-tables-select`, {
      database, role: role.name, schema, objectType: "table", objects: args.tables, privileges: ["SELECT"],
    }, db);

    this.monitoringRoleName = role.name;
    this.registerOutputs({ monitoringRoleName: this.monitoringRoleName });
  }
}
