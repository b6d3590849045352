/**
 * The request schema every entry point shares (the HTTP API, the client, taskctl, the dashboard,
 * schedules): the name rule of queues, task types and schedules, 64-bit ids, the time fields of a
 * job request, text PostgreSQL can store, and the shape of a job request. Each entry point turns
 * a refusal into its own error (a 400, a UsageError, a ValidationError naming the field); the
 * rules themselves are written only here.
 */
import { z } from 'zod';
import { ValidationError } from './errors.ts';

/**
 * Queue, task-type and schedule names: letters, digits and `_.:-`, up to a length; never `.` or
 * `..` alone (a URL path drops those segments, so `/schedules/..` could never be reached).
 */
export const NAMES = {
  queue: { pattern: /^(?!\.\.?$)[A-Za-z0-9_.:-]{1,128}$/, rule: "1-128 of [A-Za-z0-9_.:-], not '.' or '..'" },
  type: { pattern: /^(?!\.\.?$)[A-Za-z0-9_.:-]{1,200}$/, rule: "1-200 of [A-Za-z0-9_.:-], not '.' or '..'" },
  schedule: {
    pattern: /^(?!\.\.?$)[A-Za-z0-9_.:-]{1,128}$/,
    rule: "1-128 of [A-Za-z0-9_.:-], not '.' or '..'",
  },
} as const;

export type NameKind = keyof typeof NAMES;

export function isName(kind: NameKind, value: unknown): value is string {
  return typeof value === 'string' && NAMES[kind].pattern.test(value);
}

export const LIMITS = {
  priority: { min: -32768, max: 32767 },
  maxAttempts: { min: 1, max: 1000 },
  delaySeconds: { min: 0, max: 365 * 86_400 },
  queue: NAMES.queue.pattern,
  type: NAMES.type.pattern,
  idempotencyKeyLength: 255,
  batch: 500,
} as const;

/**
 * Idempotency keys under this prefix belong to the schedule materialiser
 * (`schedule:<name>:<occurrence>`): a client taking one would stop that occurrence from being
 * enqueued, so callers of the API and the client may not use it.
 */
export const RESERVED_KEY_PREFIX = 'schedule:';
const callerKeySchema = z
  .string()
  .min(1)
  .max(LIMITS.idempotencyKeyLength)
  .refine((k) => !k.startsWith(RESERVED_KEY_PREFIX), {
    error: `idempotency keys starting with "${RESERVED_KEY_PREFIX}" are reserved for schedules`,
  });

/** An idempotency key a caller sends (body field or Idempotency-Key header). */
export function callerKeyProblem(key: string): string | null {
  const parsed = callerKeySchema.safeParse(key);
  return parsed.success ? null : (parsed.error.issues[0]?.message ?? 'invalid idempotency key');
}

/** The largest int8 (bigint) PostgreSQL stores: job ids and lease tokens. */
export const INT8_MAX = 9223372036854775807n;

/**
 * Decimal text of an int8 from `min` (default 1: an id) to INT8_MAX, as canonical text (no
 * leading zeros), or null. `strict` refuses leading zeros instead of dropping them (the API's
 * path ids: `/jobs/007` is not `/jobs/7`).
 */
export function int8Text(raw: unknown, opts: { min?: bigint; strict?: boolean } = {}): string | null {
  if (typeof raw !== 'string' || !/^[0-9]{1,19}$/.test(raw)) return null;
  if (opts.strict && raw.length > 1 && raw.startsWith('0')) return null;
  const n = BigInt(raw);
  if (n < (opts.min ?? 1n) || n > INT8_MAX) return null;
  return String(n);
}

/** A positive int8 in decimal, as canonical text (zod: bad shape is the schema's refusal). */
export const idText = (what: string) =>
  z
    .string()
    .refine((v) => int8Text(v) !== null, `${what} must be a positive integer below 2^63`)
    .transform((v) => int8Text(v)!);

/** A lease token as read: a non-negative int8, as canonical text. */
export const leaseTokenText = z
  .string()
  .refine((v) => int8Text(v, { min: 0n }) !== null, 'leaseToken must be a non-negative integer below 2^63')
  .transform((v) => int8Text(v, { min: 0n })!);

export const queueNameSchema = z.string().regex(NAMES.queue.pattern, `queue must be ${NAMES.queue.rule}`);
export const taskTypeSchema = z.string().regex(NAMES.type.pattern, `type must be ${NAMES.type.rule}`);

/** The one rule of a job request's time fields. */
export const RUN_AT_OR_DELAY = 'give runAt or delaySeconds, not both';

export function hasRunAtAndDelay(req: { runAt?: unknown; delaySeconds?: unknown }): boolean {
  return req.runAt !== undefined && req.delaySeconds !== undefined;
}

/**
 * runAt as the ISO text PostgreSQL reads, or the reason it cannot be: not an ISO 8601
 * timestamp, or outside the years 1-9999 (PostgreSQL has no year 0 and cannot read
 * toISOString's six-digit years, +010000-…).
 */
export function runAtText(runAt: Date | string): { iso: string } | { problem: string } {
  const date = runAt instanceof Date ? runAt : new Date(runAt);
  if (Number.isNaN(date.getTime()) || (typeof runAt === 'string' && !/^\d{4}-\d{2}-\d{2}T/.test(runAt)))
    return { problem: 'must be an ISO 8601 timestamp' };
  const year = date.getUTCFullYear();
  if (year < 1 || year > 9999) return { problem: 'must fall between the years 1 and 9999 (UTC)' };
  return { iso: date.toISOString() };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Text PostgreSQL can store: no NUL (text refuses it) and no lone UTF-16 surrogate (not UTF-8). */
export function storableText(s: string): boolean {
  return !s.includes('\u0000') && !LONE_SURROGATE.test(s);
}

/** Why a string cannot be stored, or null. */
export function unstorableReason(s: string): string | null {
  if (s.includes('\u0000')) return 'NUL characters are not allowed';
  if (LONE_SURROGATE.test(s)) return 'lone UTF-16 surrogates are not allowed';
  return null;
}

/** A job request as it arrives (the API's body, the client's call): shape and bounds. */
export const jobRequestSchema = z.strictObject({
  type: z.string({ error: 'type is required and must be a string' }).min(1, 'type must not be empty'),
  payload: z.unknown().optional(),
  queue: queueNameSchema.optional(),
  priority: z.number().int().min(LIMITS.priority.min).max(LIMITS.priority.max).optional(),
  runAt: z.iso
    .datetime({ offset: true, error: 'runAt must be an ISO 8601 timestamp with a time zone' })
    .optional(),
  delaySeconds: z.number().min(LIMITS.delaySeconds.min).max(LIMITS.delaySeconds.max).optional(),
  maxAttempts: z.number().int().min(LIMITS.maxAttempts.min).max(LIMITS.maxAttempts.max).optional(),
  idempotencyKey: callerKeySchema.optional(),
});

/** Parses with a zod schema; a refusal is a ValidationError listing every issue (paths after `prefix`). */
export function parseWith<T>(schema: z.ZodType<T>, value: unknown, prefix = ''): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({
    path: `${prefix}${i.path.map(String).join('.')}`,
    message: i.message,
  }));
  throw new ValidationError(issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; '), {
    details: { issues },
  });
}

/** What to change of a queue's limits: an absent field is left as it is, `null` removes that limit. */
export interface QueueLimitChange {
  maxRunning?: number | null;
  rate?: number | null;
  burst?: number | null;
}

/** Checks a limit change at the edge; throws ValidationError with a message naming the field. */
export function validateLimitChange(name: string, change: QueueLimitChange): void {
  if (!isName('queue', name)) throw new ValidationError(`queue name must be ${NAMES.queue.rule}`);
  const { maxRunning, rate, burst } = change;
  if (maxRunning === undefined && rate === undefined) {
    throw new ValidationError('give maxRunning and/or rate (null removes a limit)');
  }
  if (maxRunning !== undefined && maxRunning !== null) {
    if (!Number.isInteger(maxRunning) || maxRunning < 1 || maxRunning > 1_000_000) {
      throw new ValidationError(
        `maxRunning must be an integer from 1 to 1000000 (or null to remove it), got ${maxRunning}`,
      );
    }
  }
  if (rate !== undefined && rate !== null) {
    if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0 || rate > 1_000_000) {
      throw new ValidationError(
        `rate must be a number of jobs per second above 0 and at most 1000000 (or null), got ${rate}`,
      );
    }
  }
  if (burst !== undefined && burst !== null) {
    if (rate === undefined || rate === null) throw new ValidationError('burst needs a rate');
    if (!Number.isInteger(burst) || burst < 1 || burst > 1_000_000) {
      throw new ValidationError(`burst must be an integer from 1 to 1000000, got ${burst}`);
    }
  }
}

/** A job request as the engine takes it (enqueue, enqueueMany): everything but `type` optional. */
export interface EnqueueRequest {
  type: string;
  payload?: unknown;
  queue?: string | undefined;
  priority?: number | undefined;
  runAt?: Date | string | undefined;
  delaySeconds?: number | undefined;
  maxAttempts?: number | undefined;
  idempotencyKey?: string | undefined;
}

function fail(index: number | undefined, message: string, field: string): never {
  const where = index === undefined ? field : `jobs[${index}].${field}`;
  throw new ValidationError(`${where}: ${message}`, { details: { field: where } });
}

const inRange = (n: unknown, r: { min: number; max: number }, integer: boolean): boolean =>
  typeof n === 'number' && (integer ? Number.isInteger(n) : Number.isFinite(n)) && n >= r.min && n <= r.max;

/**
 * The engine's own check of a request (callers inside the process may skip the API's schema):
 * names, bounds, the time fields, the idempotency key. Throws ValidationError naming the field
 * (`jobs[i].field` within a batch).
 */
export function checkEnqueueRequest(req: EnqueueRequest, index?: number): void {
  if (!isName('type', req.type)) fail(index, `must be ${NAMES.type.rule}`, 'type');
  if (!isName('queue', req.queue ?? 'default')) fail(index, `must be ${NAMES.queue.rule}`, 'queue');
  const { priority: p, maxAttempts: m, delaySeconds: d } = LIMITS;
  if (!inRange(req.priority ?? 0, p, true))
    fail(index, `must be an integer from ${p.min} to ${p.max}`, 'priority');
  if (!inRange(req.maxAttempts ?? m.min, m, true))
    fail(index, `must be an integer from ${m.min} to ${m.max}`, 'maxAttempts');
  if (hasRunAtAndDelay(req)) fail(index, RUN_AT_OR_DELAY, 'runAt');
  if (req.runAt !== undefined) {
    const checked = runAtText(req.runAt);
    if ('problem' in checked) fail(index, checked.problem, 'runAt');
  }
  if (!inRange(req.delaySeconds ?? 0, d, false))
    fail(index, `must be a number from ${d.min} to ${d.max}`, 'delaySeconds');
  const key: unknown = req.idempotencyKey ?? null;
  if (
    key !== null &&
    (typeof key !== 'string' || key.length === 0 || key.length > LIMITS.idempotencyKeyLength)
  )
    fail(index, `must be 1-${LIMITS.idempotencyKeyLength} characters`, 'idempotencyKey');
}

/** What an occurrence missed while everything was down does: skip it, run the latest, or run all (bounded). */
export type CatchUp = 'skip' | 'latest' | 'all';

/**
 * A schedule as defined in code (defineSchedule) or sent to the API and taskctl; validated by
 * validateSchedule (engine/schedules.ts) against the registry.
 */
export interface ScheduleDefinition {
  name: string;
  /** Standard 5-field cron (minute hour day-of-month month day-of-week), or 6 with seconds first. */
  cron: string;
  /** IANA time zone, default UTC. */
  timezone?: string;
  type: string;
  payload?: unknown;
  queue?: string;
  priority?: number;
  maxAttempts?: number;
  enabled?: boolean;
  catchUp?: CatchUp;
}

/** A schedule as stored (engine/schedules.ts reads and writes it). */
export interface Schedule {
  name: string;
  cron: string;
  timezone: string;
  type: string;
  payload: unknown;
  queue: string;
  priority: number;
  maxAttempts: number | null;
  enabled: boolean;
  catchUp: CatchUp;
  /** `code`: defined with defineSchedule, synced at migrate/start, not editable elsewhere. */
  source: 'api' | 'code';
  /** The cursor: the earliest occurrence not yet enqueued (null until the first run). */
  nextAt: Date | null;
  /** When the materialiser last enqueued an occurrence. */
  lastEnqueuedAt: Date | null;
  /** The latest occurrence enqueued. */
  lastRunAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** The fields of a ScheduleDefinition: the API refuses any other, the client sends only these. */
export const SCHEDULE_FIELDS = [
  'name',
  'cron',
  'timezone',
  'type',
  'payload',
  'queue',
  'priority',
  'maxAttempts',
  'enabled',
  'catchUp',
] as const satisfies readonly (keyof ScheduleDefinition)[];
