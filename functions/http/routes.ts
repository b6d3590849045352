import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';
import { type JobsVisibleTo, type Viewer, viewerOf } from '../engine/access.ts';
import {
  addSchedule,
  cancelOne,
  type Db,
  enqueue,
  enqueueMany,
  getJob,
  getSchedule,
  isName,
  type Job,
  LIMITS,
  listQueueLimits,
  listQueueRetention,
  listSchedules,
  NAMES,
  NotFoundError,
  type QueueLimitChange,
  removeSchedule,
  SCHEDULE_FIELDS,
  type Schedule,
  type ScheduleDefinition,
  setLimits,
  setRetention,
  setScheduleState,
  toJob,
  ValidationError,
  validateRetention,
} from '../engine/index.ts';
import type { Enqueued } from '../engine/wake.ts';
import type { TaskRegistry } from '../tasks/define.ts';
import { HttpError } from './errors.ts';
import {
  batchRequestSchema,
  cancelRequestSchema,
  parseJobId,
  parseWith,
  validateJobRequest,
} from './validate.ts';

/** Who an audited change names: the verified caller (as the viewer is built, and as cancel records it). */
const actorOf = (viewer: Viewer) => ({ actor: viewer.caller ?? 'api', reason: null });

/** The HTTP API's routes, as API Gateway declares them (infra/ uses this list too). */
export const ROUTES = [
  'POST /jobs',
  'POST /jobs/batch',
  'GET /jobs/{id}',
  'POST /jobs/{id}/cancel',
  'GET /schedules',
  'POST /schedules',
  'GET /schedules/{name}',
  'DELETE /schedules/{name}',
  'POST /schedules/{name}/pause',
  'POST /schedules/{name}/resume',
  'GET /queues/limits',
  'POST /queues/{name}/limits',
  'GET /queues/retention',
  'POST /queues/{name}/retention',
  'GET /health',
] as const;
export type RouteKey = (typeof ROUTES)[number];

/** Decodes one path segment; a bad percent-encoding (`%ZZ`) is the client's 400, not a URIError's 500. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'invalid_path', 'the path has an invalid percent-encoding');
  }
}

/**
 * Matches a method and path to a route key and its path parameters (for `$default` and the
 * local engine). HEAD matches the GET routes (RFC 9110 9.3.2); the answer has no body.
 */
export function matchRoute(
  method: string,
  path: string,
): { routeKey: RouteKey; pathParameters: Record<string, string> } | undefined {
  const parts = path.replace(/\/+$/, '').split('/').filter(Boolean);
  const wanted = method.toUpperCase() === 'HEAD' ? 'GET' : method.toUpperCase();
  for (const route of ROUTES) {
    const [m, pattern] = route.split(' ') as [string, string];
    if (m !== wanted) continue;
    const want = pattern.split('/').filter(Boolean);
    if (want.length !== parts.length) continue;
    const params: Record<string, string> = {};
    const ok = want.every((seg, i) => {
      if (seg.startsWith('{')) {
        params[seg.slice(1, -1)] = decodeSegment(parts[i]!);
        return true;
      }
      return seg === parts[i];
    });
    if (ok) return { routeKey: route, pathParameters: params };
  }
  return undefined;
}

/**
 * Date → ISO text, remembering the last one: a batch's jobs share created_at (one statement's
 * now()) and mostly run_at, and toISOString was the batch route's largest single cost.
 */
let lastMs = Number.NaN;
let lastIso = '';
function iso(d: Date): string {
  const ms = d.getTime();
  if (ms !== lastMs) {
    lastIso = d.toISOString();
    lastMs = ms;
  }
  return lastIso;
}

/**
 * last_error as the API shows it: no `stack` (absolute paths and code layout are for operators;
 * the row keeps it for taskctl and the dashboard).
 */
function publicError(lastError: unknown): unknown {
  if (lastError === null || lastError === undefined) return null;
  if (typeof lastError !== 'object' || Array.isArray(lastError) || !('stack' in lastError)) return lastError;
  const { stack: _stack, ...rest } = lastError as Record<string, unknown>;
  return rest;
}

/** The job as the API shows it (DESIGN.md section 3); batch entries also say whether they were created. */
export function present(job: Job, created?: boolean) {
  const shown = {
    id: job.id,
    queue: job.queue,
    type: job.type,
    status: job.status,
    priority: job.priority,
    runAt: iso(job.runAt),
    attempts: job.attempts,
    maxAttempts: job.maxAttempts,
    lastError: publicError(job.lastError),
    result: job.result ?? null,
    createdAt: iso(job.createdAt),
    updatedAt: iso(job.updatedAt),
    finishedAt: job.finishedAt ? iso(job.finishedAt) : null,
  };
  // Built in place rather than spread: spreading 13 fields per job was a fifth of the batch
  // route's CPU at 500 jobs per request.
  if (created !== undefined) (shown as typeof shown & { created?: boolean }).created = created;
  return shown;
}

export interface ApiDeps {
  db: Db;
  registry: TaskRegistry;
  maxPayloadBytes: number;
  /** JOBS_VISIBLE_TO: `creator` limits reading and cancelling a job to its creator (default all). */
  jobsVisibleTo?: JobsVisibleTo;
  /** CONSUMER_TIMEOUT_SECONDS: jobs whose task timeout cannot fit an invocation are refused. */
  consumerTimeoutSeconds?: number | undefined;
  /** Wake on enqueue (engine/wake.ts): called with the jobs created, after they committed. Never throws. */
  wake?: ((jobs: readonly Enqueued[]) => Promise<unknown>) | undefined;
}

/** A schedule as the API shows it. */
export function presentSchedule(s: Schedule) {
  return {
    name: s.name,
    cron: s.cron,
    timezone: s.timezone,
    type: s.type,
    payload: s.payload,
    queue: s.queue,
    priority: s.priority,
    maxAttempts: s.maxAttempts,
    enabled: s.enabled,
    catchUp: s.catchUp,
    source: s.source,
    nextAt: s.nextAt ? s.nextAt.toISOString() : null,
    lastRunAt: s.lastRunAt ? s.lastRunAt.toISOString() : null,
    lastEnqueuedAt: s.lastEnqueuedAt ? s.lastEnqueuedAt.toISOString() : null,
  };
}

const SCHEDULE_FIELD_SET = new Set<string>(SCHEDULE_FIELDS);
const LIMIT_FIELDS = new Set(['maxRunning', 'rate', 'burst']);
const RETENTION_FIELDS = new Set(['retention']);

/** A JSON object with only `allowed` keys, or a 400 naming the first stranger. */
function objectBody(body: unknown, allowed: Set<string>, what: string): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new ValidationError(`${what} must be a JSON object`, { code: 'invalid_request' });
  for (const k of Object.keys(body)) {
    if (!allowed.has(k))
      throw new ValidationError(
        `${what}: unknown field ${JSON.stringify(k)} (allowed: ${[...allowed].join(', ')})`,
        {
          code: 'invalid_request',
          details: { path: k },
        },
      );
  }
  return body as Record<string, unknown>;
}

function scheduleName(raw: string | undefined): string {
  const name = raw ?? '';
  if (!isName('schedule', name))
    throw new ValidationError(`schedule name must be ${NAMES.schedule.rule}`, { code: 'invalid_request' });
  return name;
}

const json = (
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): APIGatewayProxyResultV2 => ({
  statusCode,
  headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers },
  body: JSON.stringify(body),
});

type ParsedEvent = Omit<APIGatewayProxyEventV2, 'body'> & { body?: unknown };

/** Routes one (already JSON-parsed) API Gateway v2 event. Errors are thrown and shaped by errorShape. */
export async function route(event: ParsedEvent, deps: ApiDeps): Promise<APIGatewayProxyResultV2> {
  const out = await dispatch(event, deps);
  if (event.requestContext.http.method.toUpperCase() !== 'HEAD' || typeof out === 'string') return out;
  return { ...out, body: '' };
}

/** POST /jobs/batch: every job validated, then one all-or-nothing insert; 201 when any was created. */
async function enqueueBatch(
  event: ParsedEvent,
  deps: ApiDeps,
  viewer: Viewer,
  headerKey: string | undefined,
): Promise<APIGatewayProxyResultV2> {
  // One header key cannot name many jobs; silently ignoring it made a retried batch twice.
  if (headerKey !== undefined) {
    throw new ValidationError(
      'POST /jobs/batch does not take an Idempotency-Key header: give each job its own idempotencyKey in the body',
      { code: 'batch_idempotency_key', details: { path: 'Idempotency-Key' } },
    );
  }
  const { jobs } = parseWith(batchRequestSchema, event.body);
  if (jobs.length === 0)
    throw new ValidationError('jobs must hold at least one job', { code: 'empty_batch' });
  if (jobs.length > LIMITS.batch) {
    throw new HttpError(
      413,
      'batch_too_large',
      `a batch holds at most ${LIMITS.batch} jobs, got ${jobs.length}`,
      {
        limit: LIMITS.batch,
        got: jobs.length,
      },
    );
  }
  const reqs = jobs.map((raw, index) =>
    validateJobRequest(raw, {
      registry: deps.registry,
      maxPayloadBytes: deps.maxPayloadBytes,
      index,
      consumerTimeoutSeconds: deps.consumerTimeoutSeconds,
    }),
  );
  const results = await enqueueMany(deps.db, reqs, { viewer });
  if (deps.wake) {
    const made = results.filter((r) => r.created).map((r) => r.job);
    if (made.length > 0) await deps.wake(made);
  }
  const anyCreated = results.some((r) => r.created);
  return json(anyCreated ? 201 : 200, {
    jobs: results.map((r) => present(r.job, r.created)),
  });
}

async function dispatch(event: ParsedEvent, deps: ApiDeps): Promise<APIGatewayProxyResultV2> {
  const resolved =
    event.routeKey && event.routeKey !== '$default'
      ? { routeKey: event.routeKey as RouteKey, pathParameters: event.pathParameters ?? {} }
      : matchRoute(event.requestContext.http.method, event.rawPath);
  if (!resolved)
    throw new HttpError(
      404,
      'route_not_found',
      `no route for ${event.requestContext.http.method} ${event.rawPath}`,
    );
  const viewer = viewerOf(event.requestContext, deps.jobsVisibleTo);
  const headerKey = event.headers?.['idempotency-key'];
  const needsBody =
    resolved.routeKey === 'POST /jobs' ||
    resolved.routeKey === 'POST /jobs/batch' ||
    resolved.routeKey === 'POST /schedules' ||
    resolved.routeKey === 'POST /queues/{name}/limits' ||
    resolved.routeKey === 'POST /queues/{name}/retention';
  if (needsBody && (event.body === undefined || event.body === null || event.body === '')) {
    throw new ValidationError('a JSON body is required', { code: 'missing_body' });
  }
  switch (resolved.routeKey) {
    case 'GET /health': {
      await deps.db.query('SELECT 1');
      return json(200, { status: 'ok' });
    }
    case 'POST /jobs': {
      const req = validateJobRequest(event.body, {
        registry: deps.registry,
        maxPayloadBytes: deps.maxPayloadBytes,
        headerKey,
        consumerTimeoutSeconds: deps.consumerTimeoutSeconds,
      });
      const { job, created } = await enqueue(deps.db, req, viewer);
      if (created && deps.wake) await deps.wake([job]);
      return json(created ? 201 : 200, present(job), created ? { Location: `/jobs/${job.id}` } : {});
    }
    case 'POST /jobs/batch':
      return enqueueBatch(event, deps, viewer, headerKey);
    case 'GET /schedules':
      return json(200, { schedules: (await listSchedules(deps.db)).map(presentSchedule) });
    case 'POST /schedules': {
      const def = objectBody(event.body, SCHEDULE_FIELD_SET, 'schedule') as unknown as ScheduleDefinition;
      // Through the operator actions: the audit row (actor: the verified caller) is the change's own statement.
      const { schedule: s, created } = await addSchedule(deps.db, def, actorOf(viewer), deps.registry);
      return json(
        created ? 201 : 200,
        presentSchedule(s),
        created ? { Location: `/schedules/${s.name}` } : {},
      );
    }
    case 'GET /schedules/{name}': {
      const name = scheduleName(resolved.pathParameters.name);
      const s = await getSchedule(deps.db, name);
      if (!s) throw new NotFoundError(`no schedule ${JSON.stringify(name)}`, { details: { name } });
      return json(200, presentSchedule(s));
    }
    case 'DELETE /schedules/{name}': {
      const name = scheduleName(resolved.pathParameters.name);
      await removeSchedule(deps.db, name, actorOf(viewer));
      return json(200, { name, removed: true });
    }
    case 'POST /schedules/{name}/pause':
    case 'POST /schedules/{name}/resume': {
      const name = scheduleName(resolved.pathParameters.name);
      const s = await setScheduleState(deps.db, name, resolved.routeKey.endsWith('/resume'), actorOf(viewer));
      return json(200, presentSchedule(s));
    }
    case 'GET /queues/limits':
      return json(200, { queues: await listQueueLimits(deps.db) });
    case 'POST /queues/{name}/limits': {
      const change = objectBody(event.body, LIMIT_FIELDS, 'limits') as QueueLimitChange;
      return json(200, await setLimits(deps.db, resolved.pathParameters.name ?? '', change, actorOf(viewer)));
    }
    case 'GET /queues/retention':
      return json(200, { queues: await listQueueRetention(deps.db) });
    case 'POST /queues/{name}/retention': {
      const { retention } = objectBody(event.body, RETENTION_FIELDS, 'retention');
      const name = resolved.pathParameters.name ?? '';
      validateRetention(name, retention);
      return json(200, await setRetention(deps.db, name, retention, actorOf(viewer)));
    }
    case 'GET /jobs/{id}': {
      const id = parseJobId(resolved.pathParameters.id);
      const row = await getJob(deps.db, id, viewer);
      if (!row) throw new NotFoundError(`job ${id} not found`, { details: { id } });
      return json(200, present(toJob(row)));
    }
    case 'POST /jobs/{id}/cancel': {
      const id = parseJobId(resolved.pathParameters.id);
      const body = parseWith(cancelRequestSchema, event.body === '' ? undefined : event.body);
      const reason = body?.reason ?? 'cancelled through the API';
      // The actor is the verified caller (as the viewer is built); the audit row is the cancel's own statement.
      const row = await cancelOne(deps.db, id, { reason, actor: viewer.caller ?? 'api', viewer });
      return json(200, present(toJob(row)));
    }
  }
}
