import {
  cancelOne,
  countJobsByQueue,
  type Db,
  findFailedJobs,
  findJobsByIdempotencyKeys,
  getJob,
  int8Text,
  isName,
  type JobRow,
  type JobStatus,
  listAudit,
  listJobs,
  listQueueControls,
  listQueueLimits,
  listQueueRetention,
  listSchedules,
  NAMES,
  NotFoundError,
  parseWith,
  type Queryable,
  queueRows,
  type RequeueTarget,
  readCounterHistory,
  readRunningAges,
  requeueOne,
  retryFailed,
  setLimits,
  setQueuesPaused,
  setRetention,
  setScheduleState,
  toJob,
  ValidationError,
} from '../../functions/engine/index.ts';
import { HttpError } from '../../functions/http/errors.ts';
import { collectLedger, METRIC, renderExposition } from '../../functions/platform/metrics.ts';
import {
  bulkRetryBody,
  cancelBody,
  limitBody,
  parseFailedQuery,
  parseJobId,
  parseListQuery,
  parseQueueName,
  queueBody,
  requeueBody,
  retentionBody,
  retryBody,
} from './validate.ts';

export const API_PREFIX = '/api/dashboard';

const scheduleName = (raw: string): string => {
  if (!isName('schedule', raw)) throw new ValidationError(`schedule name must be ${NAMES.schedule.rule}`);
  return raw;
};

/** Pauses or resumes a schedule, with an audit row (queue: the schedule's queue). */
async function setSchedule(ctx: RouteContext, name: string, enabled: boolean): Promise<JsonReply> {
  const body = parseWith(queueBody, ctx.body ?? {});
  const s = await setScheduleState(ctx.db, name, enabled, { actor: ctx.actor, reason: body.reason ?? null });
  ctx.overview.invalidate();
  return ok({ schedule: s.name, enabled: s.enabled });
}

/** Sets or removes a queue's limits (absent: unchanged, null: removed), with an audit row holding the change. */
async function setQueueLimits(ctx: RouteContext, name: string): Promise<JsonReply> {
  const { reason, ...change } = parseWith(limitBody, ctx.body ?? {});
  const limits = await setLimits(ctx.db, name, change, { actor: ctx.actor, reason: reason ?? null });
  ctx.overview.invalidate();
  return ok(limits);
}

/** Sets a queue's retention (keep or delete), with an audit row holding it and the previous one. */
async function setQueueRetention(ctx: RouteContext, name: string): Promise<JsonReply> {
  const { retention, reason } = parseWith(retentionBody, ctx.body ?? {});
  const set = await setRetention(ctx.db, name, retention, { actor: ctx.actor, reason: reason ?? null });
  ctx.overview.invalidate();
  return ok(set);
}

/** The five series the release checklist requires, in the order the overview lists them. */
const REQUIRED = [METRIC.submitted, METRIC.running, METRIC.completed, METRIC.failed, METRIC.recovered];

export interface RouteContext {
  db: Db;
  overview: OverviewCache;
  actor: string;
  method: string;
  url: URL;
  /** The parsed JSON body of a POST (undefined for GET). */
  body: unknown;
}

export interface JsonReply {
  status: number;
  body: unknown;
}

const ok = (body: unknown): JsonReply => ({ status: 200, body });

async function dbNow(db: Queryable): Promise<Date> {
  const { rows } = await db.query<{ now: Date }>('SELECT now() AS now');
  return rows[0]!.now;
}

/** A job as the dashboard shows it: every column, plus the lease expiry the page would otherwise compute. */
function present(row: JobRow) {
  const job = toJob(row);
  return {
    ...job,
    leaseExpiresAt:
      job.status === 'running' && job.lockedAt && job.leaseSeconds !== null
        ? new Date(job.lockedAt.getTime() + job.leaseSeconds * 1000)
        : null,
  };
}

/**
 * A list row: no payload or result (up to MAX_PAYLOAD_BYTES each, refreshed every few seconds),
 * and only the error's name and message; the job page shows the rest.
 */
function summary(row: JobRow) {
  const { payload: _p, result: _r, lastError, ...rest } = present(row);
  const e = lastError as { name?: unknown; message?: unknown } | null;
  return {
    ...rest,
    lastError:
      e && typeof e === 'object'
        ? { name: String(e.name ?? ''), message: String(e.message ?? '').slice(0, 300) }
        : lastError,
  };
}

/** Keeps the five required families of an exposition (HELP, TYPE and samples), in REQUIRED order. */
function requiredFamilies(text: string): { text: string; values: Record<string, number> } {
  const byName = new Map<string, string[]>(REQUIRED.map((n) => [n, []]));
  const values: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const meta = /^# (?:HELP|TYPE) (\S+)/.exec(line);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    const name = meta?.[1] ?? (line.startsWith('#') ? undefined : sample?.[1]);
    if (name === undefined || !byName.has(name)) continue;
    byName.get(name)!.push(line);
    if (!meta && sample) values[name] = Number(sample[2]);
  }
  const ordered = Object.fromEntries(REQUIRED.filter((n) => n in values).map((n) => [n, values[n]!]));
  return { text: `${REQUIRED.flatMap((n) => byName.get(n)!).join('\n')}\n`, values: ordered };
}

async function buildOverview(db: Db) {
  const [counts, controls, ages, history, ledger, now, schedules, limits, retention] = await Promise.all([
    countJobsByQueue(db),
    listQueueControls(db),
    // Multiple 1: running past the lease itself (the reaper's own criterion), not the alert's 5×.
    readRunningAges(db, 1),
    readCounterHistory(db, 60),
    collectLedger(db),
    dbNow(db),
    listSchedules(db),
    listQueueLimits(db),
    listQueueRetention(db),
  ]);
  const pastLease = new Map(ages.map((a) => [a.queue, a.stuck]));
  const queues = queueRows(counts, controls).map((q) => ({ ...q, pastLease: pastLease.get(q.queue) ?? 0 }));
  return {
    now,
    queues,
    history,
    schedules: schedules.map((s) => ({
      name: s.name,
      cron: s.cron,
      timezone: s.timezone,
      type: s.type,
      queue: s.queue,
      enabled: s.enabled,
      catchUp: s.catchUp,
      source: s.source,
      nextAt: s.nextAt,
      lastRunAt: s.lastRunAt,
    })),
    limits,
    /** Queues whose retention is not the default keep. */
    retention,
    metrics: requiredFamilies(await renderExposition(ledger)),
  };
}

export interface OverviewCache {
  get(): Promise<Awaited<ReturnType<typeof buildOverview>>>;
  /** After a change made here, the next read rebuilds (the operator sees the pause at once). */
  invalidate(): void;
}

/**
 * countJobsByQueue scans the whole table: 0.5 s at 1M rows (8 queues, local PostgreSQL, 4 runs).
 * One build is shared by every open tab and reused for 10× the time it took (at least 2 s), so
 * however many pages refresh, the overview costs the database at most about a tenth of a core.
 * minAgeMs 0 turns the cache off.
 */
export function createOverviewCache(db: Db, minAgeMs = 2000): OverviewCache {
  let current: { value: ReturnType<typeof buildOverview>; until: number } | undefined;
  return {
    get() {
      if (minAgeMs === 0) return buildOverview(db);
      if (current && performance.now() < current.until) return current.value;
      const started = performance.now();
      const value = buildOverview(db);
      const entry = { value, until: Number.POSITIVE_INFINITY };
      current = entry;
      value.then(
        () => {
          entry.until = performance.now() + Math.max(minAgeMs, 10 * (performance.now() - started));
        },
        () => {
          if (current === entry) current = undefined;
        },
      );
      return value;
    },
    invalidate() {
      current = undefined;
    },
  };
}

async function jobOr404(db: Queryable, id: string): Promise<JobRow> {
  const row = await getJob(db, id);
  if (!row) throw new NotFoundError(`job ${id} not found`, { details: { id } });
  return row;
}

/** A fenced requeue (running) or retry (failed) of one job the operator looked at; 409 when it changed since. */
async function requeueShown(ctx: RouteContext, id: string, want: 'failed' | 'running'): Promise<JsonReply> {
  const retry = want === 'failed';
  const body = parseWith(retry ? retryBody : requeueBody, ctx.body ?? {});
  await requeueOne(ctx.db, id, want, {
    actor: ctx.actor,
    reason: body.reason ?? (retry ? 'retried from the dashboard' : 'requeued from the dashboard'),
    leaseToken: body.leaseToken,
  });
  return ok({ job: present(await jobOr404(ctx.db, id)) });
}

async function cancel(ctx: RouteContext, id: string): Promise<JsonReply> {
  const body = parseWith(cancelBody, ctx.body ?? {});
  const act = { actor: ctx.actor, reason: body.reason, leaseToken: body.leaseToken };
  return ok({ job: present(await cancelOne(ctx.db, id, act)) });
}

async function setPaused(ctx: RouteContext, name: string, paused: boolean): Promise<JsonReply> {
  const body = parseWith(queueBody, ctx.body ?? {});
  await setQueuesPaused(ctx.db, [name], paused, { actor: ctx.actor, reason: body.reason ?? null });
  return ok({ queue: name, paused });
}

async function bulkRetry(ctx: RouteContext): Promise<JsonReply> {
  const body = parseWith(bulkRetryBody, ctx.body);
  const targets: RequeueTarget[] = [
    ...new Map(
      body.targets.map((t) => [t.id, { id: t.id, status: 'failed' as const, leaseToken: t.leaseToken }]),
    ).values(),
  ];
  // Fenced on (failed, lease token) as previewed: exactly the jobs the operator confirmed, or fewer.
  const changed = await retryFailed(ctx.db, targets, {
    actor: ctx.actor,
    reason: body.reason ?? 'dead-letter redrive from the dashboard',
  });
  const done = new Set(changed.map((c) => c.id));
  return ok({
    requeued: changed.map((c) => c.id),
    skipped: targets.filter((t) => !done.has(t.id)).map((t) => t.id),
  });
}

async function listOrSearch(ctx: RouteContext): Promise<JsonReply> {
  const q = parseListQuery(ctx.url);
  const now = await dbNow(ctx.db);
  if (q.q !== undefined) {
    // Search: an exact id or an exact idempotency key (both indexed); never a scan.
    const text = q.q.trim();
    const found = new Map<string, JobRow>();
    const id = int8Text(text);
    if (id !== null) {
      const row = await getJob(ctx.db, id);
      if (row) found.set(String(row.id), row);
    }
    // A key whose job its queue deleted on completion (retention `delete`) has no row to list.
    for (const row of await findJobsByIdempotencyKeys(ctx.db, [text]))
      if (!row.gone) found.set(String(row.id), row);
    return ok({ now, jobs: [...found.values()].map(summary), nextCursor: null });
  }
  const rows = await listJobs(ctx.db, {
    status: q.status as JobStatus | undefined,
    queue: q.queue,
    type: q.type,
    before: q.before,
    limit: q.limit,
  });
  const jobs = rows.map(summary);
  return ok({ now, jobs, nextCursor: jobs.length === q.limit ? jobs[jobs.length - 1]!.id : null });
}

type Handler = (ctx: RouteContext, param: string) => Promise<JsonReply>;

/** Method, path pattern (one `:param` at most), handler. */
const TABLE: Array<[string, RegExp, Handler]> = [
  ['GET', /^\/overview$/, async (ctx) => ok(await ctx.overview.get())],
  ['GET', /^\/jobs$/, listOrSearch],
  [
    'GET',
    /^\/jobs\/([^/]+)$/,
    async (ctx, raw) => {
      const id = parseJobId(raw);
      const [row, audit, now] = await Promise.all([getJob(ctx.db, id), listAudit(ctx.db, id), dbNow(ctx.db)]);
      if (!row) throw new NotFoundError(`job ${id} not found`, { details: { id } });
      return ok({ now, job: present(row), audit });
    },
  ],
  ['POST', /^\/jobs\/([^/]+)\/retry$/, (ctx, raw) => requeueShown(ctx, parseJobId(raw), 'failed')],
  ['POST', /^\/jobs\/([^/]+)\/requeue$/, (ctx, raw) => requeueShown(ctx, parseJobId(raw), 'running')],
  ['POST', /^\/jobs\/([^/]+)\/cancel$/, (ctx, raw) => cancel(ctx, parseJobId(raw))],
  [
    'GET',
    /^\/failed$/,
    async (ctx) => {
      const f = parseFailedQuery(ctx.url);
      const jobs = await findFailedJobs(ctx.db, f);
      return ok({ jobs, limit: f.limit });
    },
  ],
  ['POST', /^\/retry-failed$/, (ctx) => bulkRetry(ctx)],
  ['POST', /^\/queues\/([^/]+)\/pause$/, (ctx, raw) => setPaused(ctx, parseQueueName(raw), true)],
  ['POST', /^\/queues\/([^/]+)\/resume$/, (ctx, raw) => setPaused(ctx, parseQueueName(raw), false)],
  ['POST', /^\/queues\/([^/]+)\/limits$/, (ctx, raw) => setQueueLimits(ctx, parseQueueName(raw))],
  ['POST', /^\/queues\/([^/]+)\/retention$/, (ctx, raw) => setQueueRetention(ctx, parseQueueName(raw))],
  ['POST', /^\/schedules\/([^/]+)\/pause$/, (ctx, raw) => setSchedule(ctx, scheduleName(raw), false)],
  ['POST', /^\/schedules\/([^/]+)\/resume$/, (ctx, raw) => setSchedule(ctx, scheduleName(raw), true)],
];

/** Which route a path under API_PREFIX names, before the body is read (404/405 need no body). */
export function resolve(method: string, path: string): { handler: Handler; param: string } {
  const sub = path.slice(API_PREFIX.length);
  let pathMatched = false;
  for (const [m, pattern, handler] of TABLE) {
    const match = pattern.exec(sub);
    if (!match) continue;
    pathMatched = true;
    if (m !== method) continue;
    let param = match[1] ?? '';
    try {
      param = decodeURIComponent(param);
    } catch {
      // Left as is: the parser refuses it with a 400.
    }
    return { handler, param };
  }
  if (pathMatched) throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on ${path}`);
  throw new HttpError(404, 'route_not_found', `no route for ${method} ${path}`);
}
