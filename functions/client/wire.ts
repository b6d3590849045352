import { isName, NAMES, SCHEDULE_FIELDS } from '../engine/schema.ts';
import { ValidationError } from './errors.ts';
import { type JobRequest, type ScheduleDefinition, type TaskLike, taskOf } from './types.ts';

/**
 * `schedules/{name}` or `queues/{name}`, checked before sending against the request schema's
 * name rule: a name outside it would be refused anyway, and `.` or `..` would be resolved away
 * by URL parsing (even percent-encoded) and address another route.
 */
export function namePath(prefix: 'schedules' | 'queues', name: string, kind: 'schedule' | 'queue'): string {
  if (!isName(kind, name)) {
    throw new ValidationError(
      undefined,
      'invalid_request',
      `${kind} name must be ${NAMES[kind].rule}, got ${JSON.stringify(name)}`,
      { details: { field: 'name' } },
    );
  }
  return `${prefix}/${encodeURIComponent(name)}`;
}

/** A schedule as the API takes it: known fields only (the API refuses any other), undefined ones left out. */
export function wireSchedule(definition: ScheduleDefinition): Record<string, unknown> {
  if (definition === null || typeof definition !== 'object')
    throw new TypeError('a schedule definition must be an object');
  const body: Record<string, unknown> = {};
  for (const f of SCHEDULE_FIELDS) if (definition[f] !== undefined) body[f] = definition[f];
  return body;
}

/** The request as the API takes it: known fields only, dates as ISO text. */
export function wireJob(request: JobRequest, idempotencyKey: string): Record<string, unknown> {
  const task = taskOf(request);
  if (task) checkPayload(task, request.payload);
  const body: Record<string, unknown> = { type: request.type, payload: request.payload ?? null };
  const fields = ['queue', 'priority', 'delaySeconds', 'maxAttempts'] as const;
  for (const f of fields) if (request[f] !== undefined) body[f] = request[f];
  if (request.runAt !== undefined)
    body.runAt = request.runAt instanceof Date ? request.runAt.toISOString() : request.runAt;
  body.idempotencyKey = idempotencyKey;
  return body;
}

/** The task's schema, checked here as the api will check it (same paths), before anything is sent. */
export function checkPayload(task: TaskLike, payload: unknown): void {
  const parsed = task.schema.safeParse(payload ?? null);
  if (parsed.success) return;
  const issues = parsed.error.issues.map((i) => ({
    path: `payload${i.path.length ? '.' : ''}${i.path.map(String).join('.')}`,
    message: i.message,
  }));
  throw new ValidationError(
    undefined,
    'invalid_payload',
    issues.map((i) => `${i.path}: ${i.message}`).join('; '),
    {
      details: { type: task.type, issues },
    },
  );
}

/** `jobs/{id}`, the id checked before sending. */
export function jobPath(id: string): string {
  if (typeof id !== 'string' || !/^[1-9][0-9]{0,18}$/.test(id)) {
    throw new ValidationError(
      undefined,
      'invalid_id',
      `job id must be a positive integer, got ${JSON.stringify(id)}`,
      {
        details: { path: 'id' },
      },
    );
  }
  return `jobs/${id}`;
}
