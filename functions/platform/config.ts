import { z } from 'zod';

/**
 * Configuration is parsed once, at cold start. A bad value throws a ConfigError naming the
 * variable, so a typo fails the deploy's first invocation instead of the thousandth job.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const flag = z.enum(['0', '1', 'true', 'false', '']).transform((v) => v === '1' || v === 'true');
const queueName = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'queue names are 1-128 of [A-Za-z0-9_.:-]');

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
    BATCH_SIZE: int(1, 1000).default(50),
    CONSUMER_CONCURRENCY: int(1, 1000).default(10),
    CONSUMER_IDLE_EXIT_MS: int(0, 900_000).default(2000),
    CONSUMER_POLL_MS: int(1, 60_000).default(20),
    CONSUMER_FANOUT_MAX: int(0, 100).default(0),
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
      .pipe(z.array(queueName)),
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
  })
  .superRefine((c, ctx) => {
    if (c.MAX_BACKOFF_SECONDS < c.BACKOFF_BASE_SECONDS) {
      ctx.addIssue({
        code: 'custom',
        path: ['MAX_BACKOFF_SECONDS'],
        message: 'must be >= BACKOFF_BASE_SECONDS',
      });
    }
  });

export type Config = z.infer<typeof schema> & { databaseUrl: string | undefined };

/** Parses an environment (default: process.env). Empty strings count as unset. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const cleaned: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value !== '') cleaned[key] = value;
  }
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${lines.join('; ')}`);
  }
  return { ...parsed.data, databaseUrl: parsed.data.DATABASE_URL ?? parsed.data.DATABASE_DSN };
}
