import { join } from 'node:path';
import { ArnFormat, Duration, type RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { TaskEngineSettings } from '../config.ts';
import { checkFunctionEnvironment } from '../env-check.ts';
import { acknowledgeNag } from '../nag.ts';
import { REPO_ROOT } from '../paths.ts';
import { type Database, DB_LOGIN_USERS, DB_NAME, DB_PORT, type RuntimeRole } from './database.ts';
import type { Network } from './network.ts';

export const HANDLER_ENTRIES = {
  api: 'functions/api.ts',
  consumer: 'functions/consumer.ts',
  reaper: 'functions/reaper.ts',
  migrate: 'functions/migrate.ts',
} as const;

/**
 * esbuild options shared by the four bundles and by the bundle test: ESM for Node 24, with a
 * `require` for the CommonJS dependencies (pg) that esbuild leaves as dynamic requires.
 */
export const BUNDLE_TARGET = 'node24';
export const ESM_REQUIRE_BANNER =
  "import { createRequire as __dteCreateRequire } from 'node:module'; const require = __dteCreateRequire(import.meta.url);";
/** pg's optional native binding: never installed, never loaded (pg.native is not used). */
export const BUNDLE_EXTERNALS = ['pg-native'];

export interface FunctionsProps {
  network: Network;
  database: Database;
  settings: TaskEngineSettings;
  pushgatewayUrl: string;
  logRetention: logs.RetentionDays;
  removalPolicy: RemovalPolicy;
  /** Where the handler entry files live; the repository root by default (tests may point elsewhere). */
  projectRoot?: string;
}

/** The environment each handler is given: what its configuration (functions/platform/config.ts) reads. */
export function functionEnvironments(
  props: Pick<FunctionsProps, 'database' | 'settings' | 'pushgatewayUrl'>,
  consumerName: string,
): Record<keyof typeof HANDLER_ENTRIES, Record<string, string>> {
  const { database, settings } = props;
  const common = {
    DB_SSL: '1',
    // Node 20+ runtimes ship Amazon's CA bundle here but do not load it by default; without
    // it the verified TLS connection to RDS (rejectUnauthorized) fails.
    NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
    NODE_OPTIONS: '--enable-source-maps',
    DB_PORT: String(DB_PORT),
    DB_NAME,
    LOG_LEVEL: settings.logLevel,
  };
  const runtimeDb = (role: RuntimeRole) => ({
    ...common,
    DB_IAM_AUTH: '1',
    DB_HOST: database.runtimeEndpoint,
    DB_USER: DB_LOGIN_USERS[role],
    PUSHGATEWAY_URL: props.pushgatewayUrl,
    PUSHGATEWAY_JOB: 'durable-task-engine',
  });

  return {
    api: {
      ...runtimeDb('api'),
      MAX_PAYLOAD_BYTES: '262144',
      // A job whose task timeout cannot fit in one consumer invocation is refused at enqueue.
      CONSUMER_TIMEOUT_SECONDS: String(settings.consumerTimeoutSeconds),
      // Wake on enqueue (issue 17): after committing jobs into a queue with no live consumer,
      // the api invokes this one asynchronously (debounced in the database).
      CONSUMER_FUNCTION_NAME: consumerName,
      WAKE_ON_ENQUEUE: '1',
    },
    consumer: {
      ...runtimeDb('consumer'),
      LEASE_SECONDS: String(settings.leaseSeconds),
      BATCH_SIZE: String(settings.batchSize),
      CONSUMER_CONCURRENCY: String(settings.consumerConcurrency),
      CONSUMER_IDLE_EXIT_MS: '2000',
      CONSUMER_FANOUT_MAX: String(settings.consumerFanoutMax),
      CONSUMER_FUNCTION_NAME: consumerName,
      USE_ADVISORY_LOCKS: '0',
      QUEUES: 'all',
    },
    reaper: {
      ...runtimeDb('reaper'),
      LEASE_SECONDS: String(settings.leaseSeconds),
      RETENTION_DAYS: String(settings.retentionDays),
      // Schedules (issue 18): after materialising occurrences ahead, the reaper wakes this
      // consumer (the api's wake, debounced in the database) so one is live at their run_at.
      CONSUMER_FUNCTION_NAME: consumerName,
      WAKE_ON_ENQUEUE: '1',
    },
    migrate: {
      ...common,
      DB_SECRET_ARN: database.ownerSecretArn,
      DB_HOST: database.instance.dbInstanceEndpointAddress,
      MIGRATIONS_DIR: '/var/task/migrations',
    },
  };
}

/** Lambda function names are at most 64 characters. */
function functionName(stackName: string, suffix: string): string {
  const max = 64 - suffix.length - 1;
  return `${stackName.slice(0, max)}-${suffix}`;
}

/**
 * The four handlers: api, consumer, reaper on the runtime database users (IAM tokens, no
 * password), migrate as the owner through the RDS-managed secret. Each role may do exactly
 * what its handler needs.
 */
export class Functions extends Construct {
  readonly api: nodejs.NodejsFunction;
  readonly consumer: nodejs.NodejsFunction;
  readonly reaper: nodejs.NodejsFunction;
  readonly migrate: nodejs.NodejsFunction;

  readonly #props: FunctionsProps;
  readonly #root: string;

  constructor(scope: Construct, id: string, props: FunctionsProps) {
    super(scope, id);
    const { network, database, settings } = props;
    this.#props = props;
    this.#root = props.projectRoot ?? REPO_ROOT;
    const stack = Stack.of(this);

    const consumerName = functionName(stack.stackName, 'consumer');
    const consumerArn = stack.formatArn({
      service: 'lambda',
      resource: 'function',
      resourceName: consumerName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const env = functionEnvironments(props, consumerName);
    this.api = this.#define('api', {
      description: 'durable-task-engine HTTP API: enqueue, read, cancel jobs',
      // API Gateway HTTP APIs give up after 30 s; a request never needs more than a few statements.
      timeout: Duration.seconds(29),
      memorySize: 512,
      environment: env.api,
      // Each api container holds a connection, also while frozen: reserved concurrency is the
      // api's share of the connection budget (infra/config.ts connectionBudget).
      reservedConcurrentExecutions: settings.apiMaxConcurrency,
      securityGroup: 'functions',
    });

    // The api may invoke the consumer and nothing else (the Lambda VPC endpoint carries it).
    this.api.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'WakeConsumer',
        actions: ['lambda:InvokeFunction'],
        resources: [consumerArn],
      }),
    );
    this.consumer = this.#define('consumer', {
      description:
        'durable-task-engine consumer: claims and runs jobs (scheduled, woken on enqueue, fans out)',
      timeout: Duration.seconds(settings.consumerTimeoutSeconds),
      memorySize: settings.consumerMemoryMiB,
      environment: env.consumer,
      // The cap on consumers, scheduled and fanned-out together: each holds one connection.
      reservedConcurrentExecutions: settings.consumerMaxConcurrency,
      // A fixed name lets the consumer know itself (and be granted invoke on itself) without a
      // reference cycle between the function and its own role policy.
      functionName: consumerName,
      securityGroup: 'functions',
    });
    // Itself only: fan-out, and the successor of an invocation that ran out of time while live.
    this.consumer.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'FanOutToItself',
        actions: ['lambda:InvokeFunction'],
        resources: [consumerArn],
      }),
    );

    this.reaper = this.#define('reaper', {
      description: 'durable-task-engine reaper: requeues expired leases, pushes totals, prunes',
      timeout: Duration.seconds(60),
      memorySize: 512,
      environment: env.reaper,
      // Exactly one reaper at a time: the totals it pushes with PUT must come from one writer.
      reservedConcurrentExecutions: 1,
      securityGroup: 'functions',
    });
    // The reaper may invoke the consumer and nothing else: the wake for a schedule's occurrence.
    this.reaper.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'WakeConsumerForSchedules',
        actions: ['lambda:InvokeFunction'],
        resources: [consumerArn],
      }),
    );

    this.migrate = this.#define('migrate', {
      description: 'durable-task-engine migrate: applies migrations/ as the owner (deploy-time trigger)',
      timeout: Duration.minutes(5),
      memorySize: 512,
      environment: env.migrate,
      securityGroup: 'migrate',
      // The SQL files travel with the bundle; their checksums are part of the asset hash, so a
      // new migration is a new function version and re-runs the trigger.
      afterBundling: (inputDir, outputDir) => [`cp -R "${inputDir}/migrations" "${outputDir}/migrations"`],
    });

    for (const fn of [this.consumer, this.reaper]) {
      // A scheduled run that fails or waits is superseded by the next one a minute later;
      // retrying it would only stack invocations against the concurrency cap.
      fn.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: Duration.minutes(1) });
    }

    database.grantRuntimeConnect(this.api, 'api');
    database.grantRuntimeConnect(this.consumer, 'consumer');
    database.grantRuntimeConnect(this.reaper, 'reaper');
    database.allowRuntime(network.functionsSg, 'PostgreSQL from the api, consumer and reaper functions');
    database.allowDirect(network.migrateSg, 'PostgreSQL from the migrate function');
    this.migrate.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ReadOwnerSecret',
        actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
        resources: [database.ownerSecretArn],
      }),
    );
  }

  /** One handler: its log group, bundle, network, and its environment checked as its handler would. */
  #define(
    name: keyof typeof HANDLER_ENTRIES,
    opts: {
      description: string;
      timeout: Duration;
      memorySize: number;
      environment: Record<string, string>;
      reservedConcurrentExecutions?: number;
      functionName?: string;
      securityGroup: 'functions' | 'migrate';
      afterBundling?: (inputDir: string, outputDir: string) => string[];
    },
  ): nodejs.NodejsFunction {
    // The handler's own configuration check, at synth (fails naming the function and variable).
    checkFunctionEnvironment(name, opts.environment);
    const logGroup = new logs.LogGroup(this, `${name}Logs`, {
      retention: this.#props.logRetention,
      removalPolicy: this.#props.removalPolicy,
    });
    const fn = new nodejs.NodejsFunction(this, name, {
      entry: join(this.#root, HANDLER_ENTRIES[name]),
      handler: 'handler',
      projectRoot: this.#root,
      depsLockFilePath: join(this.#root, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      description: opts.description,
      timeout: opts.timeout,
      memorySize: opts.memorySize,
      environment: opts.environment,
      reservedConcurrentExecutions: opts.reservedConcurrentExecutions,
      functionName: opts.functionName,
      vpc: this.#props.network.vpc,
      vpcSubnets: this.#props.network.appSubnets,
      securityGroups: [
        opts.securityGroup === 'migrate' ? this.#props.network.migrateSg : this.#props.network.functionsSg,
      ],
      logGroup,
      bundling: {
        forceDockerBundling: false,
        format: nodejs.OutputFormat.ESM,
        target: BUNDLE_TARGET,
        mainFields: ['module', 'main'],
        banner: ESM_REQUIRE_BANNER,
        sourceMap: true,
        sourceMapMode: nodejs.SourceMapMode.DEFAULT,
        sourcesContent: false,
        minify: true,
        keepNames: true,
        logLevel: nodejs.LogLevel.WARNING,
        // Pinned SDK versions from package-lock.json rather than whatever the runtime ships.
        bundleAwsSDK: true,
        externalModules: BUNDLE_EXTERNALS,
        tsconfig: join(this.#root, 'tsconfig.json'),
        commandHooks: opts.afterBundling
          ? {
              beforeBundling: () => [],
              beforeInstall: () => [],
              afterBundling: opts.afterBundling,
            }
          : undefined,
      },
    });
    // The AWS-managed basic and VPC execution policies are the minimum a function in a VPC
    // needs; their EC2 network-interface actions cannot be scoped to a resource.
    acknowledgeNag(
      fn,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      'AWS-maintained minimal policy: CloudWatch Logs writes for this function; the log group is created ' +
        'by the stack with a retention.',
    );
    acknowledgeNag(
      fn,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
      'AWS-maintained minimal policy for a function in a VPC: its ec2 network-interface actions do not ' +
        'support resource-level permissions.',
    );
    return fn;
  }
}
