import { Duration, Names, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as rds from 'aws-cdk-lib/aws-rds';
import { Construct } from 'constructs';
import { PROXY_MAX_CONNECTIONS_PERCENT, type TaskEngineSettings } from '../config.ts';
import { acknowledgeNag } from '../nag.ts';
import type { Network } from './network.ts';

/** The database users the functions connect as; migration 0004 creates them on RDS. */
export const DB_LOGIN_USERS = {
  api: 'dte_api_login',
  consumer: 'dte_consumer_login',
  reaper: 'dte_reaper_login',
} as const;
export type RuntimeRole = keyof typeof DB_LOGIN_USERS;

export const DB_NAME = 'taskengine';
export const DB_OWNER = 'dte_owner';
export const DB_PORT = 5432;

export interface DatabaseProps {
  network: Network;
  settings: TaskEngineSettings;
}

/** The instance's parameters: TLS only, slow statements logged, abandoned transactions ended. */
function engineParameters(scope: Construct, engine: rds.IInstanceEngine): rds.ParameterGroup {
  return new rds.ParameterGroup(scope, 'Parameters', {
    engine,
    description: 'durable-task-engine: TLS only, slow statements logged',
    parameters: {
      'rds.force_ssl': '1',
      // Statements slower than this are logged: claims take ~1-5 ms, so 500 ms is an outlier.
      log_min_duration_statement: '500',
      // A session idle inside a transaction for 60 s is ended by the server (rolled back). An
      // abandoned transaction must not hold row locks, nor a snapshot: while one is held every
      // claim and the reaper's scan walk the jobs claimed since it began (docs/RELIABILITY.md
      // finding 6: 5 minutes took a claim from 4 ms to 144-277 ms). 60 s, not the 5 minutes
      // that finding measured: the engine's own transactions are never idle for more than
      // milliseconds, so the limit meets only people and reports, and at 2,500 jobs/s a
      // minute is 150,000 claimed jobs to walk, the most this workload should have to absorb.
      // A transaction busy with statements is not ended by it: the gauge
      // phase6_oldest_transaction_age_seconds and alert OldSnapshotHeld cover that.
      idle_in_transaction_session_timeout: '60000',
    },
  });
}

/**
 * RDS PostgreSQL 17.9 (minor upgrades applied by RDS): encrypted, private, TLS-only, IAM database authentication for the
 * runtime functions, the owner's password generated and rotated by RDS in Secrets Manager
 * (used by the migrate function only). Optionally an RDS Proxy with end-to-end IAM auth.
 */
export class Database extends Construct {
  readonly instance: rds.DatabaseInstance;
  readonly securityGroup: ec2.SecurityGroup;
  readonly proxy: rds.DatabaseProxy | undefined;
  /** ARN of the owner's secret ({username, password}), managed and rotated by RDS. */
  readonly ownerSecretArn: string;
  /** Where the runtime functions connect: the proxy when there is one, else the instance. */
  readonly runtimeEndpoint: string;

  constructor(scope: Construct, id: string, props: DatabaseProps) {
    super(scope, id);
    const { network, settings } = props;

    this.securityGroup = new ec2.SecurityGroup(this, 'Sg', {
      vpc: network.vpc,
      description: 'durable-task-engine PostgreSQL',
      allowAllOutbound: false,
    });

    // PostgreSQL 17 (community support until November 2029), pinned to a minor RDS offers for new
    // instances: a major-only "17" is not a version RDS lists (cfn-lint W3691 flags it), and
    // which minor it would resolve to is not reviewable. autoMinorVersionUpgrade then applies
    // RDS's patch releases in the maintenance window; a new pin is a reviewed change here.
    const engine = rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17_9 });
    const parameterGroup = engineParameters(this, engine);

    const retain = settings.removalPolicy !== 'destroy';
    this.instance = new rds.DatabaseInstance(this, 'Instance', {
      engine,
      instanceType: new ec2.InstanceType(settings.instanceType),
      vpc: network.vpc,
      vpcSubnets: network.dbSubnets,
      securityGroups: [this.securityGroup],
      port: DB_PORT,
      databaseName: DB_NAME,
      credentials: rds.Credentials.fromUsername(DB_OWNER),
      manageMasterUserPassword: true,
      iamAuthentication: true,
      parameterGroup,
      caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
      storageEncrypted: true,
      storageType: rds.StorageType.GP3,
      allocatedStorage: settings.allocatedStorageGiB,
      maxAllocatedStorage: settings.maxAllocatedStorageGiB,
      multiAz: settings.multiAz,
      publiclyAccessible: false,
      backupRetention: Duration.days(settings.backupRetentionDays),
      deleteAutomatedBackups: false,
      copyTagsToSnapshot: true,
      deletionProtection: retain,
      removalPolicy: {
        snapshot: RemovalPolicy.SNAPSHOT,
        retain: RemovalPolicy.RETAIN,
        destroy: RemovalPolicy.DESTROY,
      }[settings.removalPolicy],
      autoMinorVersionUpgrade: true,
      cloudwatchLogsExports: ['postgresql', 'upgrade'],
      cloudwatchLogsRetention: settings.logRetentionDays,
      monitoringInterval: Duration.seconds(60),
    });
    const cfn = this.instance.node.defaultChild as rds.CfnDBInstance;
    this.ownerSecretArn = cfn.attrMasterUserSecretSecretArn;

    this.#acknowledgeNags(settings);

    this.proxy = settings.rdsProxy ? this.#createProxy(network) : undefined;
    this.runtimeEndpoint = this.proxy ? this.proxy.endpoint : this.instance.dbInstanceEndpointAddress;
  }

  /** cdk-nag findings this construct accepts, each with its reason. */
  #acknowledgeNags(settings: DatabaseProps['settings']): void {
    if (settings.removalPolicy === 'destroy') {
      acknowledgeNag(
        this.instance,
        'AwsSolutions-RDS10',
        'Deletion protection was turned off by the taskEngine:removalPolicy=destroy setting (throwaway deployments); ' +
          'the default (snapshot) keeps it on.',
      );
    }
    if (!settings.multiAz) {
      acknowledgeNag(
        this.instance,
        'AwsSolutions-RDS3',
        'Multi-AZ was turned off by the taskEngine:multiAz=false setting (non-production deployments).',
      );
    }
    acknowledgeNag(
      this.instance,
      'AwsSolutions-RDS11',
      'The default port is kept so tools and the runbook work unchanged; the security group admits only the ' +
        'functions (and the proxy), the instance is in isolated subnets, so a non-default port adds no protection.',
    );
  }

  /** RDS Proxy in front of the instance, IAM end to end. */
  #createProxy(network: DatabaseProps['network']): rds.DatabaseProxy {
    // End-to-end IAM: clients present IAM tokens to the proxy and the proxy presents its own
    // to the database, so no database password exists for the runtime users anywhere.
    const proxyRole = new iam.Role(this, 'ProxyRole', {
      assumedBy: new iam.ServicePrincipal('rds.amazonaws.com'),
      description: 'RDS Proxy: connect to the database as the runtime users with IAM tokens',
    });
    const proxy = new rds.DatabaseProxy(this, 'Proxy', {
      proxyTarget: rds.ProxyTarget.fromInstance(this.instance),
      // Proxy names are unique per account and region: derived from the stack and construct
      // path (letters and digits, a hash), so side-by-side stacks do not collide.
      dbProxyName: Names.uniqueResourceName(this, { maxLength: 60 }),
      vpc: network.vpc,
      vpcSubnets: network.dbSubnets,
      role: proxyRole,
      iamAuth: true,
      requireTLS: true,
      defaultAuthScheme: rds.DefaultAuthScheme.IAM_AUTH,
      // The functions never use session state (design section 2), so connections are never
      // pinned; a short borrow timeout turns a saturated pool into a fast 503 instead of a hang.
      borrowTimeout: Duration.seconds(10),
      maxConnectionsPercent: PROXY_MAX_CONNECTIONS_PERCENT,
      debugLogging: false,
    });
    for (const user of Object.values(DB_LOGIN_USERS)) this.instance.grantConnect(proxyRole, user);
    this.securityGroup.connections.allowFrom(proxy, ec2.Port.tcp(DB_PORT), 'PostgreSQL from the RDS Proxy');
    return proxy;
  }

  /** PostgreSQL from `peer` (a function's security group) to the database, or to the proxy. */
  allowRuntime(peer: ec2.IConnectable, description: string): void {
    if (this.proxy)
      this.proxy.connections.allowFrom(peer, ec2.Port.tcp(DB_PORT), `${description} (via proxy)`);
    else this.securityGroup.connections.allowFrom(peer, ec2.Port.tcp(DB_PORT), description);
  }

  /** PostgreSQL from `peer` directly to the instance (the migrate function, which needs DDL and the owner). */
  allowDirect(peer: ec2.IConnectable, description: string): void {
    this.securityGroup.connections.allowFrom(peer, ec2.Port.tcp(DB_PORT), description);
  }

  /** rds-db:connect as `user` on the runtime endpoint, scoped to that user and this instance or proxy. */
  grantRuntimeConnect(grantee: iam.IGrantable, role: RuntimeRole): void {
    if (this.proxy) this.proxy.grantConnect(grantee, DB_LOGIN_USERS[role]);
    else this.instance.grantConnect(grantee, DB_LOGIN_USERS[role]);
  }
}
