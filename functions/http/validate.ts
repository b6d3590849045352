import { z } from 'zod';
import { checkFitsInvocation } from '../engine/enqueue.ts';
import { PayloadTooLargeError, UnknownTaskTypeError, ValidationError } from '../engine/errors.ts';
import type { EnqueueRequest } from '../engine/index.ts';
import {
  hasRunAtAndDelay,
  int8Text,
  jobRequestSchema,
  parseWith,
  RUN_AT_OR_DELAY,
  storableText,
  unstorableReason,
} from '../engine/schema.ts';
import type { TaskRegistry } from '../tasks/define.ts';

export { jobRequestSchema, parseWith, storableText };

/** Deepest nesting of objects/arrays accepted in a payload; deeper is refused with 400. */
export const MAX_PAYLOAD_DEPTH = 32;

export const batchRequestSchema = z.strictObject({
  jobs: z.array(z.unknown(), { error: 'jobs must be an array' }),
});

export const cancelRequestSchema = z
  .strictObject({
    reason: z
      .string()
      .min(1)
      .max(1000)
      .refine(storableText, 'reason must not contain NUL characters or lone UTF-16 surrogates')
      .optional(),
  })
  .optional();

/**
 * Walks a JSON value: depth, NUL characters and lone UTF-16 surrogates (PostgreSQL's jsonb
 * refuses both, so they must be a 400 here, not a 500 there), in keys as in values.
 */
export function checkJsonValue(value: unknown, path: string, depth = 0): void {
  if (depth > MAX_PAYLOAD_DEPTH) {
    throw new ValidationError(`${path}: nested deeper than ${MAX_PAYLOAD_DEPTH} levels`, {
      details: { path },
      code: 'payload_too_deep',
    });
  }
  if (typeof value === 'string') {
    checkString(value, path);
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkJsonValue(value[i], `${path}[${i}]`, depth + 1);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      checkString(k, `${path} key ${JSON.stringify(k.slice(0, 40))}`);
      checkJsonValue(v, `${path}.${k}`, depth + 1);
    }
  } else if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new ValidationError(`${path}: numbers must be finite`, { details: { path } });
  }
}

function checkString(s: string, path: string): void {
  const problem = unstorableReason(s);
  if (problem) throw new ValidationError(`${path}: ${problem}`, { details: { path } });
}

/**
 * Validates one job request at the door: shape, limits, payload size and content, then the
 * task's own schema. Returns the request the engine stores.
 */
export function validateJobRequest(
  raw: unknown,
  opts: {
    registry: TaskRegistry;
    maxPayloadBytes: number;
    headerKey?: string | undefined;
    index?: number;
    /** The deployed consumer's invocation limit, when known (CONSUMER_TIMEOUT_SECONDS). */
    consumerTimeoutSeconds?: number | undefined;
  },
): EnqueueRequest {
  const prefix = opts.index === undefined ? '' : `jobs.${opts.index}.`;
  const req = parseWith(jobRequestSchema, raw, prefix);
  const where = prefix || '';
  if (hasRunAtAndDelay(req)) {
    throw new ValidationError(`${where}runAt: ${RUN_AT_OR_DELAY}`, {
      details: { path: `${where}runAt` },
    });
  }
  if (
    opts.headerKey !== undefined &&
    req.idempotencyKey !== undefined &&
    opts.headerKey !== req.idempotencyKey
  ) {
    throw new ValidationError('the Idempotency-Key header and body idempotencyKey differ', {
      details: { path: 'idempotencyKey' },
    });
  }
  const payload = req.payload ?? null;
  // Depth first: JSON.stringify recurses and would overflow the stack on a deep enough value.
  checkJsonValue(payload, `${where}payload`);
  const bytes = Buffer.byteLength(JSON.stringify(payload));
  if (bytes > opts.maxPayloadBytes) {
    throw new PayloadTooLargeError(
      `${where}payload is ${bytes} bytes; the limit is ${opts.maxPayloadBytes}`,
      {
        details: { path: `${where}payload`, bytes, limit: opts.maxPayloadBytes },
      },
    );
  }
  if (req.idempotencyKey !== undefined) checkString(req.idempotencyKey, `${where}idempotencyKey`);
  const task = opts.registry.get(req.type);
  if (!task) throw new UnknownTaskTypeError(req.type, opts.index);
  checkFitsInvocation(task, opts.consumerTimeoutSeconds, opts.index);
  const parsed = task.schema.safeParse(payload);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({
      path: `${where}payload${i.path.length ? '.' : ''}${i.path.map(String).join('.')}`,
      message: i.message,
    }));
    throw new ValidationError(issues.map((i) => `${i.path}: ${i.message}`).join('; '), {
      code: 'invalid_payload',
      details: { type: req.type, issues },
    });
  }
  return {
    type: req.type,
    payload,
    queue: req.queue,
    priority: req.priority,
    runAt: req.runAt,
    delaySeconds: req.delaySeconds,
    maxAttempts: req.maxAttempts ?? task.maxAttempts,
    idempotencyKey: req.idempotencyKey ?? opts.headerKey,
  };
}

/** A job id from the path: a positive int8 in decimal, else 400. */
export function parseJobId(raw: string | undefined): string {
  const id = int8Text(raw, { strict: true });
  if (id === null) {
    throw new ValidationError(
      `job id must be a positive integer, got ${JSON.stringify(raw?.slice(0, 40) ?? null)}`,
      {
        code: 'invalid_id',
        details: { path: 'id' },
      },
    );
  }
  return id;
}
