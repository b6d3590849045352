import { z } from 'zod';
import {
  idText,
  JOB_STATUSES,
  LIMITS,
  leaseTokenText,
  parseWith,
  queueNameSchema,
  storableText,
  taskTypeSchema,
  ValidationError,
} from '../../functions/engine/index.ts';

/** Reasons are kept in last_error and the audit: a sentence or two, not a document. */
export const MAX_REASON_LENGTH = 500;
/** Largest JSON body a dashboard POST may carry; a bulk retry of 500 targets is about 30 KB. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Most jobs one bulk retry may name (the same cap as a batch enqueue). */
export const MAX_BULK = 500;
export const PAGE_SIZE = { default: 50, max: 200 } as const;

const queueName = queueNameSchema;
const taskType = taskTypeSchema;
const reason = z
  .string()
  .trim()
  .min(1, 'reason must not be empty')
  .max(MAX_REASON_LENGTH, `reason must be at most ${MAX_REASON_LENGTH} characters`)
  .refine(storableText, 'reason must not contain NUL characters or lone UTF-16 surrogates');

/** A job id from the path: bad shape is 400; a well-formed id that does not exist is 404 later. */
export function parseJobId(raw: string): string {
  return parseWith(idText('job id'), raw);
}

export function parseQueueName(raw: string): string {
  return parseWith(queueName, raw);
}

/** Query strings: every value once, no unknown keys (a typo in a filter must not silently widen it). */
function queryObject(url: URL, allowed: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (key === 'token') continue;
    if (!allowed.includes(key)) {
      throw new ValidationError(`unknown query parameter ${JSON.stringify(key)}`, {
        details: { allowed },
        code: 'unknown_parameter',
      });
    }
    if (key in out)
      throw new ValidationError(`query parameter ${key} given twice`, { code: 'duplicate_parameter' });
    if (value !== '') out[key] = value;
  }
  return out;
}

const listQuery = z.strictObject({
  status: z
    .enum(JOB_STATUSES as [string, ...string[]], {
      error: `status must be one of ${JOB_STATUSES.join(', ')}`,
    })
    .optional(),
  queue: queueName.optional(),
  type: taskType.optional(),
  before: idText('before').optional(),
  limit: z.coerce.number().int().min(1).max(PAGE_SIZE.max).default(PAGE_SIZE.default),
  q: z.string().min(1).max(LIMITS.idempotencyKeyLength, 'search text is at most 255 characters').optional(),
});
export type ListQuery = z.infer<typeof listQuery>;

export function parseListQuery(url: URL): ListQuery {
  return parseWith(listQuery, queryObject(url, ['status', 'queue', 'type', 'before', 'limit', 'q']));
}

const failedQuery = z.strictObject({
  queue: queueName.optional(),
  type: taskType.optional(),
  includeCancelled: z.enum(['true', 'false']).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_BULK).default(MAX_BULK),
});

export function parseFailedQuery(url: URL) {
  const q = parseWith(failedQuery, queryObject(url, ['queue', 'type', 'includeCancelled', 'limit']));
  return { ...q, includeCancelled: q.includeCancelled === 'true' };
}

export const retryBody = z.strictObject({ reason: reason.optional(), leaseToken: leaseTokenText.optional() });
export const requeueBody = retryBody;
export const cancelBody = z.strictObject({ reason: reason, leaseToken: leaseTokenText.optional() });
export const queueBody = z.strictObject({ reason: reason.optional() });
/** A limit change: types here, ranges in validateLimitChange (the same rules as taskctl and the API). */
const limitValue = (field: string) =>
  z
    .number({ error: `${field} must be a number, or null to remove it` })
    .nullable()
    .optional();
export const limitBody = z.strictObject({
  maxRunning: limitValue('maxRunning'),
  rate: limitValue('rate'),
  burst: limitValue('burst'),
  reason: reason.optional(),
});
/** A retention change (the same two values as taskctl queue set-retention and the API). */
export const retentionBody = z.strictObject({
  retention: z.enum(['keep', 'delete'], { error: 'retention must be "keep" or "delete"' }),
  reason: reason.optional(),
});
export const bulkRetryBody = z.strictObject({
  reason: reason.optional(),
  targets: z
    .array(z.strictObject({ id: idText('id'), leaseToken: leaseTokenText }))
    .min(1, 'targets must name at least one job')
    .max(MAX_BULK, `targets may name at most ${MAX_BULK} jobs`),
});
