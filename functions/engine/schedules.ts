/**
 * Recurring schedules (issue 18): validation, storage and the materialiser.
 *
 * A schedule's cursor (`next_at`) is the earliest occurrence not yet materialised. Each reaper
 * run calls materialiseSchedules: for every enabled schedule whose cursor is within the
 * look-ahead, the occurrences up to `now + aheadMs` are computed here (croner: 5-field cron, or
 * 6 with seconds, in an IANA time zone) and handed to `schedule_advance` (migration 0011), which
 * in one statement checks the cursor is unchanged, inserts one job per occurrence (run_at = the
 * occurrence, idempotency key `schedule:<name>:<ISO time>`) and moves the cursor. Occurrences are
 * materialised ahead, so a job is queued with its run_at before its time and starts at it.
 *
 * Occurrences more than `graceMs` in the past when found (everything was down) follow the
 * schedule's catchUp: `skip` drops them, `latest` enqueues the most recent one, `all` enqueues
 * them, at most MAX_CATCH_UP (the most recent ones).
 *
 * Time zones: a wall time skipped by a spring-forward change runs at the first valid time after
 * it (02:30 Europe/Berlin on the last Sunday of March runs at 03:30 CEST); a wall time repeated
 * by a fall-back change runs once, at its first instance (croner's behaviour, the one of the Open
 * Cron Pattern Specification).
 */

import { Cron } from 'croner';
import type { TaskRegistry } from '../tasks/define.ts';
import { DEFAULT_MAX_ATTEMPTS, LIMITS } from './enqueue.ts';
import { ConflictError, NotFoundError, UnknownTaskTypeError, ValidationError } from './errors.ts';
import type { Db, Queryable } from './queryable.ts';
import { type CatchUp, isName, NAMES, type Schedule, type ScheduleDefinition } from './schema.ts';
import type { AuditBy } from './sql/audit.ts';

export type { CatchUp, Schedule, ScheduleDefinition };

/** The most missed occurrences `catchUp: 'all'` enqueues after an outage (the most recent ones). */
export const MAX_CATCH_UP = 100;
/** The most occurrences one schedule gets per run inside the look-ahead (a `* * * * * *` cron: 90). */
const MAX_AHEAD = 1000;

/** The idempotency key of one occurrence: the same for every materialiser, so it is enqueued once. */
export function occurrenceKey(name: string, at: Date): string {
  return `schedule:${name}:${at.toISOString()}`;
}

function cronOf(expr: string, timezone: string): Cron {
  return new Cron(expr, { timezone, paused: true, mode: 'auto' });
}

/** True when `tz` is an IANA time zone this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function invalid(field: string, message: string, code = 'invalid_request'): never {
  throw new ValidationError(`${field}: ${message}`, { code, details: { field } });
}

/**
 * Checks a definition at the edge (the API, taskctl, defineSchedule) and returns it with its
 * defaults. With a registry, the task type must be registered and the payload must pass its
 * schema. Throws ValidationError (or UnknownTaskTypeError) naming the field.
 */
export function validateSchedule(
  def: ScheduleDefinition,
  registry?: TaskRegistry,
): Required<Omit<ScheduleDefinition, 'maxAttempts'>> & { maxAttempts: number } {
  if (def === null || typeof def !== 'object') invalid('schedule', 'must be an object');
  if (!isName('schedule', def.name)) invalid('name', `must be ${NAMES.schedule.rule}`);
  if (typeof def.cron !== 'string' || def.cron.trim() === '' || def.cron.length > 256)
    invalid('cron', 'must be a cron expression of at most 256 characters', 'invalid_cron');
  const timezone = def.timezone ?? 'UTC';
  if (typeof timezone !== 'string' || timezone.length > 64 || !isTimeZone(timezone))
    invalid(
      'timezone',
      `unknown time zone ${JSON.stringify(timezone)} (an IANA name, e.g. Europe/Berlin)`,
      'invalid_timezone',
    );
  const fields = def.cron.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6)
    invalid(
      'cron',
      `${JSON.stringify(def.cron)} must have 5 fields (minute hour day month weekday) or 6 (seconds first)`,
      'invalid_cron',
    );
  let next: Date | null;
  try {
    next = cronOf(def.cron, timezone).nextRun();
  } catch (err) {
    invalid(
      'cron',
      `${JSON.stringify(def.cron)} is not a valid cron expression (${(err as Error).message})`,
      'invalid_cron',
    );
  }
  if (next === null) invalid('cron', `${JSON.stringify(def.cron)} never occurs`, 'invalid_cron');
  if (!isName('type', def.type)) invalid('type', `must be ${NAMES.type.rule}`);
  const queue = def.queue ?? 'default';
  if (!isName('queue', queue)) invalid('queue', `must be ${NAMES.queue.rule}`);
  const priority = def.priority ?? 0;
  if (!Number.isInteger(priority) || priority < LIMITS.priority.min || priority > LIMITS.priority.max)
    invalid('priority', `must be an integer from ${LIMITS.priority.min} to ${LIMITS.priority.max}`);
  if (
    def.maxAttempts !== undefined &&
    (!Number.isInteger(def.maxAttempts) ||
      def.maxAttempts < LIMITS.maxAttempts.min ||
      def.maxAttempts > LIMITS.maxAttempts.max)
  )
    invalid('maxAttempts', `must be an integer from ${LIMITS.maxAttempts.min} to ${LIMITS.maxAttempts.max}`);
  const catchUp = def.catchUp ?? 'latest';
  if (!['skip', 'latest', 'all'].includes(catchUp)) invalid('catchUp', "must be 'skip', 'latest' or 'all'");
  const enabled = def.enabled ?? true;
  if (typeof enabled !== 'boolean') invalid('enabled', 'must be a boolean');
  const payload = def.payload === undefined ? {} : def.payload;
  let maxAttempts = def.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (registry) {
    const task = registry.get(def.type);
    if (!task) throw new UnknownTaskTypeError(def.type);
    const parsed = task.schema.safeParse(payload);
    if (!parsed.success) {
      const issues = parsed.error.issues.map(
        (i) => `payload${i.path.length ? '.' : ''}${i.path.map(String).join('.')}: ${i.message}`,
      );
      throw new ValidationError(issues.join('; '), {
        code: 'invalid_payload',
        details: { field: 'payload' },
      });
    }
    maxAttempts = def.maxAttempts ?? task.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  }
  return {
    name: def.name,
    cron: def.cron.trim(),
    timezone,
    type: def.type,
    payload,
    queue,
    priority,
    maxAttempts,
    enabled,
    catchUp,
  };
}

interface ScheduleRow {
  name: string;
  cron: string;
  timezone: string;
  task_type: string;
  payload: unknown;
  queue: string;
  priority: number;
  max_attempts: number | null;
  enabled: boolean;
  catch_up: CatchUp;
  source: 'api' | 'code';
  next_at: Date | null;
  last_enqueued_at: Date | null;
  last_run_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const toSchedule = (r: ScheduleRow): Schedule => ({
  name: r.name,
  cron: r.cron,
  timezone: r.timezone,
  type: r.task_type,
  payload: r.payload,
  queue: r.queue,
  priority: r.priority,
  maxAttempts: r.max_attempts,
  enabled: r.enabled,
  catchUp: r.catch_up,
  source: r.source,
  nextAt: r.next_at,
  lastEnqueuedAt: r.last_enqueued_at,
  lastRunAt: r.last_run_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export async function listSchedules(db: Queryable): Promise<Schedule[]> {
  const { rows } = await db.query<ScheduleRow>('SELECT * FROM schedules ORDER BY name');
  return rows.map(toSchedule);
}

export async function getSchedule(db: Queryable, name: string): Promise<Schedule | null> {
  const { rows } = await db.query<ScheduleRow>('SELECT * FROM schedules WHERE name = $1', [name]);
  return rows[0] ? toSchedule(rows[0]) : null;
}

/** A validated schedule as the ten parameters schedule_put (and the code-schedule sync) take, in order. */
const scheduleParams = (s: ReturnType<typeof validateSchedule>) => [
  s.name,
  s.cron,
  s.timezone,
  s.type,
  JSON.stringify(s.payload),
  s.queue,
  s.priority,
  s.maxAttempts,
  s.enabled,
  s.catchUp,
];

/**
 * Creates or replaces a run-time schedule (validated first: nothing is stored on bad input).
 * A code-defined schedule of that name is refused with 409 `schedule_defined_in_code`.
 */
export async function putSchedule(
  db: Queryable,
  def: ScheduleDefinition,
  registry?: TaskRegistry,
  audit?: AuditBy,
): Promise<Schedule> {
  const s = validateSchedule(def, registry);
  const { rows } = audit
    ? await db.query<ScheduleRow>(
        'SELECT * FROM schedule_put_audited($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)',
        [...scheduleParams(s), audit.actor, audit.reason],
      )
    : await db.query<ScheduleRow>(
        'SELECT * FROM schedule_put($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
        scheduleParams(s),
      );
  if (!rows[0]) throw definedInCode(s.name);
  return toSchedule(rows[0]);
}

function definedInCode(name: string): ConflictError {
  return new ConflictError(
    'schedule_defined_in_code',
    `schedule ${JSON.stringify(name)} is defined in code (defineSchedule): change it there`,
  );
}

/** Removes a run-time schedule; 404 when missing, 409 when it is defined in code. */
export async function deleteSchedule(db: Queryable, name: string, audit?: AuditBy): Promise<void> {
  const { rows } = audit
    ? await db.query<{ removed: boolean }>('SELECT schedule_delete_audited($1, $2, $3) AS removed', [
        name,
        audit.actor,
        audit.reason,
      ])
    : await db.query<{ removed: boolean }>('SELECT schedule_delete($1) AS removed', [name]);
  if (rows[0]!.removed) return;
  const existing = await getSchedule(db, name);
  if (existing) throw definedInCode(name);
  throw new NotFoundError(`no schedule ${JSON.stringify(name)}`);
}

/** Pauses or resumes a schedule (code-defined ones too: this is an operation, not an edit). */
export async function setScheduleEnabled(
  db: Queryable,
  name: string,
  enabled: boolean,
  audit?: AuditBy,
): Promise<Schedule> {
  const { rows } = audit
    ? await db.query<ScheduleRow>('SELECT * FROM schedule_set_enabled_audited($1, $2, $3, $4)', [
        name,
        enabled,
        audit.actor,
        audit.reason,
      ])
    : await db.query<ScheduleRow>('SELECT * FROM schedule_set_enabled($1, $2)', [name, enabled]);
  if (!rows[0]) throw new NotFoundError(`no schedule ${JSON.stringify(name)}`);
  return toSchedule(rows[0]);
}

/**
 * Makes the code-defined schedules (defineSchedule) the `code` rows of the table: inserted,
 * updated (an unchanged cron and time zone keep their cursor; `enabled` is the operator's and
 * is kept), and removed when no longer in code. Runs as the owner (migrate, the local engine's
 * start). A run-time schedule of the same name is replaced by the code one.
 */
export async function syncCodeSchedules(
  db: Db,
  defs: readonly ScheduleDefinition[],
  registry?: TaskRegistry,
): Promise<{ upserted: number; removed: number }> {
  const checked = defs.map((d) => validateSchedule(d, registry));
  const names = checked.map((s) => s.name);
  if (new Set(names).size !== names.length)
    throw new ValidationError('a schedule name is defined twice in code');
  return db.transaction(async (tx) => {
    for (const s of checked) {
      await tx.query(
        `INSERT INTO schedules AS s (name, cron, timezone, task_type, payload, queue, priority, max_attempts,
                                     enabled, catch_up, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'code')
         ON CONFLICT (name) DO UPDATE SET
           cron = excluded.cron, timezone = excluded.timezone, task_type = excluded.task_type,
           payload = excluded.payload, queue = excluded.queue, priority = excluded.priority,
           max_attempts = excluded.max_attempts, catch_up = excluded.catch_up, source = 'code',
           enabled = CASE WHEN s.source = 'code' THEN s.enabled ELSE excluded.enabled END,
           next_at = CASE WHEN s.cron = excluded.cron AND s.timezone = excluded.timezone THEN s.next_at END,
           updated_at = now()
         WHERE (s.cron, s.timezone, s.task_type, s.payload, s.queue, s.priority, s.max_attempts, s.catch_up, s.source)
               IS DISTINCT FROM
               (excluded.cron, excluded.timezone, excluded.task_type, excluded.payload, excluded.queue,
                excluded.priority, excluded.max_attempts, excluded.catch_up, 'code')`,
        scheduleParams(s),
      );
    }
    const removed = await tx.query(
      `DELETE FROM schedules WHERE source = 'code' AND NOT (name = ANY ($1::text[]))`,
      [names],
    );
    return { upserted: checked.length, removed: removed.rowCount ?? 0 };
  });
}

/** What to enqueue for one schedule now: pure, so the catch-up rules are tested without a database. */
export function planOccurrences(
  s: Pick<Schedule, 'cron' | 'timezone' | 'catchUp' | 'nextAt'>,
  now: Date,
  o: { aheadMs: number; graceMs: number },
): { occurrences: Date[]; nextAt: Date | null; skipped: number } {
  const cron = cronOf(s.cron, s.timezone);
  const horizon = new Date(now.getTime() + o.aheadMs);
  const lateBound = new Date(now.getTime() - o.graceMs);
  // The cursor, or (first run, or reset) the first occurrence from now on.
  const start = s.nextAt ?? new Date(now.getTime() - 1);
  const startMs = start.getTime();
  // Missed: occurrences in [start, now - grace), found backwards from the late bound (bounded).
  let missed: Date[] = [];
  let skipped = 0;
  if (startMs < lateBound.getTime()) {
    const limit = s.catchUp === 'all' ? MAX_CATCH_UP : 1;
    const back = cron
      .previousRuns(limit + 1, lateBound)
      .filter((d) => d.getTime() >= startMs && d.getTime() < lateBound.getTime());
    // previousRuns is newest first.
    missed = back.slice(0, limit).reverse();
    if (s.catchUp === 'skip') {
      skipped = back.length > 0 ? 1 : 0;
      missed = [];
    } else if (back.length > limit) {
      skipped = 1;
    }
  }
  // Due soon: [max(start, now - grace), horizon].
  const fromMs = Math.max(startMs, lateBound.getTime());
  const upcoming: Date[] = [];
  let cursor: Date | null = cron.nextRun(new Date(fromMs - 1));
  while (cursor && cursor.getTime() <= horizon.getTime() && upcoming.length < MAX_AHEAD) {
    upcoming.push(cursor);
    cursor = cron.nextRun(cursor);
  }
  return { occurrences: [...missed, ...upcoming], nextAt: cursor, skipped };
}

export interface MaterialiseOptions {
  /** The clock (injected by tests). */
  now?: () => Date;
  /** How far ahead occurrences are enqueued (default 90 s: more than the reaper's one minute). */
  aheadMs?: number;
  /** An occurrence later than this when found is "missed" and follows catchUp (default 60 s). */
  graceMs?: number;
}

export interface MaterialiseSummary {
  schedules: number;
  enqueued: number;
  /** Another materialiser advanced the schedule first. */
  raced: number;
  failed: number;
}

/**
 * One pass over the enabled schedules whose cursor is inside the look-ahead (or unset). Each is
 * advanced by one schedule_advance statement; a schedule that fails (its cron no longer parses)
 * is logged and skipped, never the whole pass.
 */
export async function materialiseSchedules(
  db: Queryable,
  options: MaterialiseOptions = {},
  onError: (name: string, err: unknown) => void = () => {},
): Promise<MaterialiseSummary> {
  const now = (options.now ?? (() => new Date()))();
  const aheadMs = options.aheadMs ?? 90_000;
  const graceMs = options.graceMs ?? 60_000;
  const { rows } = await db.query<ScheduleRow>(
    `SELECT * FROM schedules WHERE enabled AND (next_at IS NULL OR next_at <= $1) ORDER BY name`,
    [new Date(now.getTime() + aheadMs)],
  );
  const summary: MaterialiseSummary = { schedules: rows.length, enqueued: 0, raced: 0, failed: 0 };
  for (const row of rows) {
    const s = toSchedule(row);
    try {
      const plan = planOccurrences(s, now, { aheadMs, graceMs });
      const { rows: r } = await db.query<{ n: number }>('SELECT schedule_advance($1, $2, $3, $4, $5) AS n', [
        s.name,
        s.nextAt,
        plan.occurrences.map((d) => d.toISOString()),
        plan.occurrences.map((d) => occurrenceKey(s.name, d)),
        plan.nextAt,
      ]);
      const n = Number(r[0]!.n);
      if (n < 0) summary.raced++;
      else summary.enqueued += n;
    } catch (err) {
      summary.failed++;
      onError(s.name, err);
    }
  }
  return summary;
}

/**
 * The next occurrence of each enabled schedule, when already materialised (before the schedule's cursor) that fall due in
 * (now, now + windowMs], as the jobs the waker takes: the reaper hands them to the api's
 * waker, which invokes a consumer when their queue has none live, and that consumer stays
 * until they are due (CONSUMER_DELAY_STAY_MS). Computed from the schedules' crons, not read
 * from jobs: the schedules table is small, jobs may not be. A schedule whose cron no longer
 * parses is left out (the materialiser reports it).
 */
export async function dueOccurrences(
  db: Queryable,
  now: Date,
  windowMs: number,
): Promise<Array<{ queue: string; runAt: Date; schedule: string }>> {
  const { rows } = await db.query<Pick<ScheduleRow, 'name' | 'cron' | 'timezone' | 'queue' | 'next_at'>>(
    `SELECT name, cron, timezone, queue, next_at FROM schedules
      WHERE enabled AND next_at IS NOT NULL AND next_at > $1 ORDER BY name`,
    [now],
  );
  const until = now.getTime() + windowMs;
  const out: Array<{ queue: string; runAt: Date; schedule: string }> = [];
  for (const r of rows) {
    let cron: Cron;
    try {
      cron = cronOf(r.cron, r.timezone);
    } catch {
      continue;
    }
    // The first is enough: the woken consumer stays for it, then for the next ones while live.
    const at = cron.nextRun(now);
    if (at && at.getTime() <= until && at.getTime() < (r.next_at as Date).getTime())
      out.push({ queue: r.queue, runAt: at, schedule: r.name });
  }
  return out;
}
