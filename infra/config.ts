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
  leaseSeconds: 30,
  batchSize: 50,
  retentionDays: 7,
  logRetentionDays: 30,
  logLevel: 'info',
  apiAuth: 'iam',
  jwtIssuer: undefined,
  jwtAudience: [],
  apiRateLimit: 100,
  apiBurstLimit: 200,
  natGateways: 1,
  // Pinned: a new Pushgateway release is a reviewed change, not a side effect of a deploy.
  pushgatewayImage: 'prom/pushgateway:v1.11.0',
  pushgatewayScrapeCidrs: [],
  alarmTopic: false,
  alarmEmail: undefined,
  // max_connections on RDS is about RAM/9.5 MB: ~190 on a t4g.small (2 GiB).
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
  for (const cidr of s.pushgatewayScrapeCidrs)
    if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(cidr))
      fail(`pushgatewayScrapeCidrs: ${cidr} is not an IPv4 CIDR`);
  return s;
}
