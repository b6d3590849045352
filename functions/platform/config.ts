import { z } from 'zod';
import { queueNameSchema } from '../engine/index.ts';

/**
 * Configuration is parsed once, at cold start. A bad value throws a ConfigError naming the
 * variable, so a typo fails the deploy's first invocation instead of the thousandth job.
 */
export class ConfigError extends Error {
  /** The variables at fault, in the order reported. */
  readonly variables: readonly string[];
  constructor(message: string, variables: readonly string[] = []) {
    super(message);
    this.name = 'ConfigError';
    this.variables = variables;
  }
}

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const flag = z.enum(['0', '1', 'true', 'false', '']).transform((v) => v === '1' || v === 'true');

const schema = z
  .object({
    DATABASE_URL: z.string().min(1).optional(),
    DATABASE_DSN: z.string().min(1).optional(),
    DB_SECRET_ARN: z.string().startsWith('arn:').optional(),
    DB_IAM_AUTH: flag.default(false),
    DB_HOST: z.string().min(1).optional(),
    DB_PORT: int(1, 65535).default(5432),
    DB_NAME: z.string().min(1).optional(),
    DB_USER: z.string().min(1).optional(),
    DB_SSL: flag.default(false),
    DB_QUERY_TIMEOUT_MS: int(100, 900_000).default(15_000),
    DB_CONNECT_TIMEOUT_MS: int(100, 120_000).default(5_000),
    DB_POOL_MAX: int(1, 100).default(1),
    LEASE_SECONDS: int(2, 43_200).default(30),
    /** The claim size; with CLAIM_ADAPTIVE=1 (the default) the cap of the adaptive claim. */
    BATCH_SIZE: int(1, 1000).default(500),
    /** Size each claim from the free slots, observed task durations and the time left. */
    CLAIM_ADAPTIVE: flag.default(true),
    /** Adaptive claims bring about this much work per free slot (ms). */
    CLAIM_TARGET_MS: int(1, 600_000).default(1000),
    CONSUMER_CONCURRENCY: int(1, 1000).default(10),
    CONSUMER_IDLE_EXIT_MS: int(0, 900_000).default(2000),
    CONSUMER_POLL_MS: int(1, 60_000).default(20),
    CONSUMER_FANOUT_MAX: int(0, 100).default(0),
    /** Wake on enqueue: the api invokes a consumer when a queue it enqueued into has none live. */
    WAKE_ON_ENQUEUE: flag.default(true),
    /** At most one wake invoke per queue in this window while no consumer is live. */
    WAKE_DEBOUNCE_MS: int(0, 600_000).default(1000),
    /** How long a claiming consumer counts as live after each presence touch (0: no presence). */
    CONSUMER_LIVE_MS: int(0, 600_000).default(5000),
    /** An invocation that ran work stays this long after its last job, polling (the trickle budget). */
    CONSUMER_STAY_MS: int(0, 900_000).default(10_000),
    /** The poll interval while staying. */
    CONSUMER_STAY_POLL_MS: int(1, 60_000).default(100),
    /** Stay for (and wake for) a job due within this much time; later ones are the schedule's. */
    CONSUMER_DELAY_STAY_MS: int(0, 900_000).default(60_000),
    /** The deployed consumer function's timeout, told to the api so it refuses tasks that can never fit. */
    CONSUMER_TIMEOUT_SECONDS: int(1, 900).optional(),
    BACKOFF_BASE_SECONDS: z.coerce.number().min(0).max(86_400).default(2),
    MAX_BACKOFF_SECONDS: z.coerce.number().min(0).max(604_800).default(600),
    USE_ADVISORY_LOCKS: flag.default(false),
    QUEUES: z
      .string()
      .optional()
      .transform((v) =>
        v === undefined || v.trim() === '' || v.trim() === 'all' ? [] : v.split(',').map((q) => q.trim()),
      )
      .pipe(z.array(queueNameSchema)),
    PUSHGATEWAY_URL: z.url().optional(),
    PUSHGATEWAY_JOB: z.string().min(1).default('durable-task-engine'),
    PUSHGATEWAY_STALE_SECONDS: int(1, 604_800).default(900),
    PUSH_TIMEOUT_MS: int(10, 30_000).default(1000),
    RETENTION_DAYS: z.coerce.number().min(0).max(3650).default(7),
    MAX_PAYLOAD_BYTES: int(1, 10 * 1024 * 1024).default(262_144),
    /** `creator`: GET /jobs/{id} and cancel see only the caller's own jobs (404 for others'). */
    JOBS_VISIBLE_TO: z.enum(['creator', 'all']).default('all'),
    LOG_LEVEL: z
      .string()
      .transform((v) => v.toLowerCase())
      .pipe(z.enum(['debug', 'info', 'warn', 'error', 'silent']))
      .default('info'),
    PORT: int(0, 65535).default(3000),
    LOCAL_CONSUMERS: int(0, 64).default(2),
    LOCAL_CONSUMER_INTERVAL_MS: int(10, 3_600_000).default(1000),
    LOCAL_REAPER_INTERVAL_MS: int(10, 3_600_000).default(10_000),
    LOCAL_INVOCATION_TIMEOUT_MS: int(1000, 900_000).default(60_000),
    /** The consumer function the api wakes and the consumer fans out to (a name or an ARN). */
    CONSUMER_FUNCTION_NAME: z
      .string()
      .regex(/^[A-Za-z0-9_.:$-]{1,170}$/, 'a Lambda function name or ARN')
      .optional(),
    /** Where the migration files are (the migrate bundle's copy); found beside the code otherwise. */
    MIGRATIONS_DIR: z.string().min(1).optional(),
    /** The local engine's embedded database directory. */
    PGLITE_DIR: z.string().min(1).default('.data/pglite'),
    /** The local engine's dashboard access token (the dashboard checks its length); random when unset. */
    DASHBOARD_TOKEN: z.string().min(1).optional(),
    /** Set by the Lambda runtime: names the container in its Pushgateway group. */
    AWS_LAMBDA_LOG_STREAM_NAME: z.string().min(1).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.MAX_BACKOFF_SECONDS < c.BACKOFF_BASE_SECONDS) {
      ctx.addIssue({
        code: 'custom',
        path: ['MAX_BACKOFF_SECONDS'],
        message: 'must be >= BACKOFF_BASE_SECONDS',
      });
    }
    // IAM tokens are the chosen credential (no URL, no secret): where and as whom must be set.
    if (c.DB_IAM_AUTH && !c.DATABASE_URL && !c.DATABASE_DSN && !c.DB_SECRET_ARN) {
      for (const name of ['DB_HOST', 'DB_USER'] as const)
        if (!c[name])
          ctx.addIssue({ code: 'custom', path: [name], message: 'is required with DB_IAM_AUTH=1' });
    }
  });

export type Config = z.infer<typeof schema> & { databaseUrl: string | undefined };

/** Every variable the schema reads (the stack refuses others at synth: a misspelt name is unread). */
export const CONFIG_VARIABLES: ReadonlySet<string> = new Set(Object.keys(schema.shape));

/** Parses an environment (default: process.env). Empty strings count as unset. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const cleaned: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value !== '') cleaned[key] = value;
  }
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const names = parsed.error.issues.map((i) => i.path.join('.') || '(env)');
    const lines = parsed.error.issues.map((i, n) => `${names[n]}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${lines.join('; ')}`, [...new Set(names)]);
  }
  return { ...parsed.data, databaseUrl: parsed.data.DATABASE_URL ?? parsed.data.DATABASE_DSN };
}

/** How a function reaches its database, decided once from the configuration. */
export type DatabaseMode =
  | { kind: 'url'; url: string }
  | { kind: 'secret'; arn: string; host: string | undefined }
  | { kind: 'iam'; host: string; user: string }
  | { kind: 'none' };

export interface DatabaseModeOptions {
  /**
   * The secret is the RDS-managed one (username and password only): DB_HOST must say where the
   * database is. The stack's check at synth; at run time a secret may carry its own host.
   */
  secretWithoutHost?: boolean;
  /** Refuse a configuration that names no database at all. */
  required?: boolean;
}

/**
 * The credential mode, in the order connectFromConfig honours them: DATABASE_URL (or
 * DATABASE_DSN), DB_SECRET_ARN, DB_IAM_AUTH=1. Throws a ConfigError naming the variable a mode lacks.
 */
export function databaseMode(config: Config, options: DatabaseModeOptions = {}): DatabaseMode {
  if (config.databaseUrl) return { kind: 'url', url: config.databaseUrl };
  if (config.DB_SECRET_ARN) {
    if (options.secretWithoutHost && !config.DB_HOST)
      throw new ConfigError(
        'DB_HOST: is required with DB_SECRET_ARN (the RDS-managed secret holds no host)',
        ['DB_HOST'],
      );
    return { kind: 'secret', arn: config.DB_SECRET_ARN, host: config.DB_HOST };
  }
  if (config.DB_IAM_AUTH) {
    // loadConfig refuses DB_IAM_AUTH=1 without these; a Config built by hand is checked again.
    const missing = (['DB_HOST', 'DB_USER'] as const).filter((name) => !config[name]);
    if (missing.length > 0)
      throw new ConfigError(`${missing.join(', ')}: required with DB_IAM_AUTH=1`, missing);
    return { kind: 'iam', host: config.DB_HOST!, user: config.DB_USER! };
  }
  if (options.required) throw new ConfigError(NO_DATABASE, ['DATABASE_URL', 'DB_SECRET_ARN', 'DB_IAM_AUTH']);
  return { kind: 'none' };
}

export const NO_DATABASE =
  'no database configured: set DATABASE_URL (or DATABASE_DSN), DB_SECRET_ARN, or DB_IAM_AUTH=1 with DB_HOST';
