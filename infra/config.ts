import type { App } from 'aws-cdk-lib';

/**
 * The choices a user makes about their deployment. Every field has a default that gives a
 * secure, working engine; `cdk.json` context (or `-c taskEngine:<name>=<value>`) overrides them.
 */
export interface TaskEngineSettings {
  /** RDS instance class.size, e.g. `t4g.small`, `m7g.large`. */
  instanceType: string;
  /** A standby in a second AZ; doubles the instance cost. */
  multiAz: boolean;
  allocatedStorageGiB: number;
  /** Storage autoscaling ceiling. */
  maxAllocatedStorageGiB: number;
  backupRetentionDays: number;
  /** RDS Proxy in front of the database, with end-to-end IAM authentication. */
  rdsProxy: boolean;
  /** `snapshot` (default): a final snapshot on delete; `retain`: keep the instance; `destroy`: dev only. */
  removalPolicy: 'snapshot' | 'retain' | 'destroy';
  /** EventBridge Scheduler expression for the consumer, e.g. `rate(1 minute)`. */
  consumerSchedule: string;
  reaperSchedule: string;
  /** Most consumer invocations at once (reserved concurrency), scheduled and fanned-out together. */
  consumerMaxConcurrency: number;
  /** Further consumers one invocation may start when it leaves a backlog (CONSUMER_FANOUT_MAX). */
  consumerFanoutMax: number;
  /** Tasks run at once per invocation (CONSUMER_CONCURRENCY). */
  consumerConcurrency: number;
  consumerTimeoutSeconds: number;
  consumerMemoryMiB: number;
  /**
   * Most api invocations at once (reserved concurrency). Each api container holds one database
   * connection, also while frozen between requests, so this caps the api's share of the
   * connection budget; requests beyond it are throttled (429) instead of exhausting the database.
   */
  apiMaxConcurrency: number;
  /** Connections kept free for people: taskctl, psql, dashboards (the connection budget). */
  operatorConnections: number;
  /** max_connections of the instance; 0 (default): estimated from instanceType. */
  maxConnections: number;
  leaseSeconds: number;
  batchSize: number;
  /** Finished jobs older than this are pruned by the reaper (RETENTION_DAYS). */
  retentionDays: number;
  logRetentionDays: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** `iam` (default): SigV4-signed requests; `jwt`: a JWT authorizer with the issuer and audience below. */
  apiAuth: 'iam' | 'jwt';
  jwtIssuer: string | undefined;
  jwtAudience: string[];
  apiRateLimit: number;
  apiBurstLimit: number;
  natGateways: number;
  pushgatewayImage: string;
  /** CIDRs (e.g. your Prometheus's subnet, through peering or a TGW) allowed to scrape port 9091. */
  pushgatewayScrapeCidrs: string[];
  /** An SNS topic for the alarms is created when true or when an email is given. */
  alarmTopic: boolean;
  alarmEmail: string | undefined;
  /** DatabaseConnections alarm threshold; size it to ~80% of max_connections of the instance class. */
  connectionsAlarmThreshold: number;
}

export const DEFAULT_SETTINGS: TaskEngineSettings = {
  instanceType: 't4g.small',
  multiAz: true,
  allocatedStorageGiB: 20,
  maxAllocatedStorageGiB: 100,
  backupRetentionDays: 7,
  rdsProxy: false,
  removalPolicy: 'snapshot',
  consumerSchedule: 'rate(1 minute)',
  reaperSchedule: 'rate(1 minute)',
  consumerMaxConcurrency: 10,
  consumerFanoutMax: 4,
  consumerConcurrency: 10,
  // Longer than the one-minute schedule on purpose: an invocation keeps draining a backlog
  // while the next ones start, up to consumerMaxConcurrency of them.
  consumerTimeoutSeconds: 300,
  consumerMemoryMiB: 1024,
  apiMaxConcurrency: 50,
  operatorConnections: 5,
  maxConnections: 0,
  leaseSeconds: 30,
  batchSize: 500,
  retentionDays: 7,
  logRetentionDays: 30,
  logLevel: 'info',
  apiAuth: 'iam',
  jwtIssuer: undefined,
  jwtAudience: [],
  apiRateLimit: 100,
  apiBurstLimit: 200,
  natGateways: 1,
  // Pinned: a new Pushgateway release is a reviewed change, not a side effect of a deploy. The
  // Prometheus project publishes the same multi-arch image to quay.io as to Docker Hub; a quay.io
  // image is pulled through an ECR pull-through cache in the stack's account (constructs/pushgateway.ts).
  pushgatewayImage: 'quay.io/prometheus/pushgateway:v1.11.0',
  pushgatewayScrapeCidrs: [],
  alarmTopic: false,
  alarmEmail: undefined,
  // max_connections on RDS is about RAM/9.5 MB: ~180 on a t4g.small (2 GiB), see estimateMaxConnections.
  connectionsAlarmThreshold: 150,
};

export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsError';
  }
}

const CONTEXT_PREFIX = 'taskEngine:';

function parseValue(key: keyof TaskEngineSettings, raw: unknown): unknown {
  const fallback = DEFAULT_SETTINGS[key];
  const fail = (why: string): never => {
    throw new SettingsError(`context ${CONTEXT_PREFIX}${key}=${JSON.stringify(raw)}: ${why}`);
  };
  if (Array.isArray(fallback)) {
    if (Array.isArray(raw)) return raw.map(String);
    if (typeof raw === 'string')
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    return fail('expected a list or a comma-separated string');
  }
  if (typeof fallback === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    if (raw === 'true' || raw === '1') return true;
    if (raw === 'false' || raw === '0') return false;
    return fail('expected true or false');
  }
  if (typeof fallback === 'number') {
    const n = typeof raw === 'number' ? raw : Number(raw);
    if (!Number.isFinite(n) || n < 0) return fail('expected a non-negative number');
    return n;
  }
  return String(raw);
}

/** Reads `taskEngine:*` context keys over the defaults; an unknown key or bad value throws. */
export function settingsFromContext(app: App): TaskEngineSettings {
  const out: Record<string, unknown> = { ...DEFAULT_SETTINGS };
  const all = app.node.getAllContext() as Record<string, unknown>;
  for (const [fullKey, raw] of Object.entries(all)) {
    if (!fullKey.startsWith(CONTEXT_PREFIX)) continue;
    const key = fullKey.slice(CONTEXT_PREFIX.length) as keyof TaskEngineSettings;
    if ((key as string) === 'stackName') continue;
    if (!(key in DEFAULT_SETTINGS)) throw new SettingsError(`unknown context key ${fullKey}`);
    if (raw === undefined || raw === null || raw === '') continue;
    out[key] = parseValue(key, raw);
  }
  return validateSettings(out as unknown as TaskEngineSettings);
}

/** Fails synthesis, naming the setting, before any resource is built from a bad value. */
export function validateSettings(s: TaskEngineSettings): TaskEngineSettings {
  const fail = (msg: string): never => {
    throw new SettingsError(msg);
  };
  if (!/^[a-z0-9]+\.[a-z0-9]+$/.test(s.instanceType))
    fail(`instanceType ${s.instanceType}: expected class.size`);
  if (!['snapshot', 'retain', 'destroy'].includes(s.removalPolicy))
    fail(`removalPolicy must be snapshot, retain or destroy, got ${s.removalPolicy}`);
  if (s.backupRetentionDays < 7 || s.backupRetentionDays > 35)
    fail('backupRetentionDays must be 7..35 (automated backups of at least a week)');
  if (s.maxAllocatedStorageGiB < s.allocatedStorageGiB)
    fail('maxAllocatedStorageGiB must be >= allocatedStorageGiB');
  if (!Number.isInteger(s.consumerMaxConcurrency) || s.consumerMaxConcurrency < 1)
    fail('consumerMaxConcurrency must be an integer >= 1');
  if (!Number.isInteger(s.apiMaxConcurrency) || s.apiMaxConcurrency < 1)
    fail('apiMaxConcurrency must be an integer >= 1');
  if (!Number.isInteger(s.operatorConnections)) fail('operatorConnections must be an integer');
  if (!Number.isInteger(s.maxConnections)) fail('maxConnections must be an integer (0: estimate)');
  if (s.consumerFanoutMax > 100) fail('consumerFanoutMax must be <= 100');
  if (s.consumerTimeoutSeconds < 30 || s.consumerTimeoutSeconds > 900)
    fail('consumerTimeoutSeconds must be 30..900 (the Lambda limit)');
  if (s.leaseSeconds < 2) fail('leaseSeconds must be >= 2');
  if (!['debug', 'info', 'warn', 'error'].includes(s.logLevel)) fail(`logLevel ${s.logLevel} is not a level`);
  if (s.apiAuth !== 'iam' && s.apiAuth !== 'jwt') fail(`apiAuth must be iam or jwt, got ${s.apiAuth}`);
  if (s.apiAuth === 'jwt' && (!s.jwtIssuer || s.jwtAudience.length === 0))
    fail('apiAuth=jwt needs jwtIssuer and at least one jwtAudience');
  if (s.natGateways < 1) fail('natGateways must be >= 1: the Pushgateway image and the tasks need egress');
  if (!/^[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$/.test(s.pushgatewayImage))
    fail(`pushgatewayImage ${s.pushgatewayImage} must be pinned to a tag or digest`);
  if (s.pushgatewayImage.endsWith(':latest')) fail('pushgatewayImage must not be :latest');
  const budget = connectionBudget(s);
  if (budget.errors.length > 0) fail(budget.errors.join('; '));
  for (const cidr of s.pushgatewayScrapeCidrs)
    if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(cidr))
      fail(`pushgatewayScrapeCidrs: ${cidr} is not an IPv4 CIDR`);
  return s;
}

/** Instance memory in GiB by size, for the classes RDS PostgreSQL offers (t: burstable, m: general, r: memory). */
const SIZE_UNITS: Record<string, number> = {
  micro: 1 / 8,
  small: 1 / 4,
  medium: 1 / 2,
  large: 1,
  xlarge: 2,
  '2xlarge': 4,
  '4xlarge': 8,
  '8xlarge': 16,
  '12xlarge': 24,
  '16xlarge': 32,
  '24xlarge': 48,
};
const GIB_PER_UNIT: Record<string, number> = { t: 8, m: 8, r: 16, x: 32 };

/**
 * RDS's default max_connections, LEAST(DBInstanceClassMemory / 9531392, 5000), for an instance
 * class, or undefined for a class this table does not know. DBInstanceClassMemory is the
 * instance's memory less what RDS keeps for itself; 80% of nominal matches what RDS reports
 * (t4g.micro ~ 80-90, t4g.small ~ 180-190), and errs low, which is the safe side for a budget.
 */
export function estimateMaxConnections(instanceType: string): number | undefined {
  const [cls, size] = instanceType.split('.') as [string, string];
  const family = cls.charAt(0);
  const units = SIZE_UNITS[size];
  const perUnit = GIB_PER_UNIT[family];
  if (units === undefined || perUnit === undefined) return undefined;
  if (family === 't' && units > 4) return undefined;
  const bytes = units * perUnit * 1024 ** 3 * 0.8;
  return Math.min(Math.floor(bytes / 9_531_392), 5000);
}

/** Connections RDS keeps back: superuser_reserved_connections (3) and rds.rds_superuser_reserved_connections (2). */
export const RESERVED_CONNECTIONS = 5;
/** The reaper runs alone (reserved concurrency 1); migrate is one trigger invocation. */
const REAPER_CONNECTIONS = 1;
const MIGRATE_CONNECTIONS = 1;
/** RDS Proxy's pool, maxConnectionsPercent in constructs/database.ts. */
export const PROXY_MAX_CONNECTIONS_PERCENT = 80;

export interface ConnectionBudget {
  maxConnections: number | undefined;
  estimated: boolean;
  /** Connections each client may hold at once: one per function container, one per operator. */
  demand: { api: number; consumer: number; reaper: number; migrate: number; operators: number };
  /** What must fit into the instance directly (everything without a proxy; migrate and operators with one). */
  direct: number;
  /** Capacity for `direct`: max_connections less the reserved ones (and less the proxy's pool with one). */
  directCapacity: number | undefined;
  /** With a proxy: the pool the proxy may open, shared by api, consumer and reaper. */
  proxyPool: number | undefined;
  /** Reserved concurrency the stack asks of the account (api + consumer + reaper). */
  reservedConcurrency: number;
  /** Lambda keeps at least 100 unreserved: the account quota must be at least this. */
  accountQuotaNeeded: number;
  /** The budget cannot fit: synthesis refuses. */
  errors: string[];
  /** It fits, but something deserves a look. */
  warnings: string[];
}

/**
 * The database connection budget, computed from the settings at synthesis: every function
 * container holds one connection (also while frozen), so reserved concurrency is the number of
 * connections a function can hold. Without RDS Proxy, api + consumer + reaper + migrate +
 * operators must fit into max_connections; with it, migrate and operators connect directly and
 * must fit beside the proxy's pool.
 */
export function connectionBudget(s: TaskEngineSettings): ConnectionBudget {
  const demand = {
    api: s.apiMaxConcurrency,
    consumer: s.consumerMaxConcurrency,
    reaper: REAPER_CONNECTIONS,
    migrate: MIGRATE_CONNECTIONS,
    operators: s.operatorConnections,
  };
  const estimated = s.maxConnections === 0;
  const maxConnections = estimated ? estimateMaxConnections(s.instanceType) : s.maxConnections;
  const runtime = demand.api + demand.consumer + demand.reaper;
  const direct = s.rdsProxy ? demand.migrate + demand.operators : runtime + demand.migrate + demand.operators;
  const reservedConcurrency = runtime;
  const errors: string[] = [];
  const warnings: string[] = [];
  let directCapacity: number | undefined;
  let proxyPool: number | undefined;
  const parts =
    `api ${demand.api} (apiMaxConcurrency) + consumer ${demand.consumer} (consumerMaxConcurrency) + ` +
    `reaper ${demand.reaper} + migrate ${demand.migrate} + operators ${demand.operators} (operatorConnections)`;
  if (maxConnections === undefined) {
    warnings.push(
      `connection budget: max_connections of ${s.instanceType} is not known here; set taskEngine:maxConnections ` +
        `to check that ${parts} = ${runtime + demand.migrate + demand.operators} connections fit`,
    );
  } else {
    const src = estimated ? `~${maxConnections} (estimated for ${s.instanceType})` : String(maxConnections);
    if (s.rdsProxy) {
      proxyPool = Math.floor((maxConnections * PROXY_MAX_CONNECTIONS_PERCENT) / 100);
      directCapacity = maxConnections - proxyPool - RESERVED_CONNECTIONS;
      if (direct > directCapacity)
        errors.push(
          `connection budget: migrate ${demand.migrate} + operators ${demand.operators} connect directly and need ` +
            `${direct}, but max_connections ${src} less the proxy's ${PROXY_MAX_CONNECTIONS_PERCENT}% pool (${proxyPool}) ` +
            `and ${RESERVED_CONNECTIONS} reserved leaves ${directCapacity}: lower operatorConnections or choose a larger instanceType`,
        );
      if (runtime > proxyPool)
        warnings.push(
          `connection budget: api + consumer + reaper may hold ${runtime} client connections, more than the proxy's pool ` +
            `of ${proxyPool}; the proxy multiplexes them (no session state is used), a saturated pool answers 503 after ` +
            'its 10 s borrow timeout',
        );
    } else {
      directCapacity = maxConnections - RESERVED_CONNECTIONS;
      if (direct > directCapacity)
        errors.push(
          `connection budget: ${parts} = ${direct} connections, but max_connections ${src} less ${RESERVED_CONNECTIONS} ` +
            `reserved leaves ${directCapacity}: lower apiMaxConcurrency or consumerMaxConcurrency, choose a larger ` +
            'instanceType, or set rdsProxy=true',
        );
      else if (direct > s.connectionsAlarmThreshold)
        warnings.push(
          `connection budget: at full concurrency the functions hold ${direct} connections, above ` +
            `connectionsAlarmThreshold ${s.connectionsAlarmThreshold}: the connections alarm would fire on a busy day`,
        );
    }
  }
  return {
    maxConnections,
    estimated,
    demand,
    direct,
    directCapacity,
    proxyPool,
    reservedConcurrency,
    accountQuotaNeeded: reservedConcurrency + 100,
    errors,
    warnings,
  };
}
