/**
 * Wake on enqueue (issue 17, migration 0010). Liveness lives in the database, with no session
 * state: consumers touch a presence row while they claim and delete it before their last claim;
 * the api, after committing jobs, asks `queues_wake` which of their queues have no live consumer
 * and were not woken within the debounce, and invokes one consumer when any has. The schedule
 * stays the floor: a failed invoke is logged and counted, never an enqueue error.
 */
import { coerceError } from './errors.ts';
import type { Queryable } from './queryable.ts';

/** Starts one consumer invocation asynchronously (Lambda Invoke, InvocationType Event; in process locally). */
export interface Invoker {
  invoke(reason: WakeReason): Promise<void>;
}

export type WakeReason = 'enqueue' | 'successor';

export interface WakeLogger {
  warn(message: string, ...extra: Array<Record<string, unknown>>): void;
  info(message: string, ...extra: Array<Record<string, unknown>>): void;
}

/** What a wake attempt came to, for the metrics: invoked, invoke failed, nothing to do, or the check itself failed. */
export type WakeOutcome = 'invoked' | 'invoke_failed' | 'skipped' | 'check_failed';

export interface WakeOptions {
  db: Queryable;
  invoker: Invoker;
  logger: WakeLogger;
  /** At most one invoke per queue in this window while no consumer is live (WAKE_DEBOUNCE_MS). */
  debounceMs: number;
  /**
   * Jobs due within this of now wake a consumer (CONSUMER_DELAY_STAY_MS): it stays until they
   * are due. Jobs due later are left to a scheduled consumer, which stays for them when they fit.
   */
  horizonMs: number;
  onOutcome?(outcome: WakeOutcome): void;
  /** The clock, epoch ms (tests inject it). */
  now?: () => number;
}

export interface Enqueued {
  queue: string;
  runAt: Date;
}

/** The wake settings of a function that may invoke the consumer (the api, the reaper). */
export interface WakeSettings {
  WAKE_ON_ENQUEUE: boolean;
  WAKE_DEBOUNCE_MS: number;
  CONSUMER_DELAY_STAY_MS: number;
}

/**
 * The waker of a function's configuration: undefined when wake is off (WAKE_ON_ENQUEUE) or
 * there is no consumer to invoke. One place for the api's and the reaper's wiring.
 */
export function configuredWaker(
  config: WakeSettings,
  o: Pick<WakeOptions, 'db' | 'logger' | 'onOutcome'> & { invoker: Invoker | undefined },
): ((jobs: readonly Enqueued[]) => Promise<WakeOutcome>) | undefined {
  if (!config.WAKE_ON_ENQUEUE || !o.invoker) return undefined;
  return createWaker({
    ...o,
    invoker: o.invoker,
    debounceMs: config.WAKE_DEBOUNCE_MS,
    horizonMs: config.CONSUMER_DELAY_STAY_MS,
  });
}

/** Enqueued jobs → a waker. `wake` never throws: the enqueue answered already (the api's, the reaper's after materialising). */
export function createWaker(o: WakeOptions): (jobs: readonly Enqueued[]) => Promise<WakeOutcome> {
  return async (jobs) => {
    const horizon = (o.now ?? Date.now)() + o.horizonMs;
    const queues = new Set<string>();
    for (const j of jobs) if (j.runAt.getTime() <= horizon) queues.add(j.queue);
    let outcome: WakeOutcome = 'skipped';
    if (queues.size > 0) {
      let woken: string[] = [];
      try {
        woken = await requestWake(o.db, [...queues], o.debounceMs);
      } catch (err) {
        outcome = 'check_failed';
        o.logger.warn('wake check failed; the schedule will start a consumer', {
          error: coerceError(err).message,
        });
      }
      if (woken.length > 0) {
        try {
          await o.invoker.invoke('enqueue');
          outcome = 'invoked';
          o.logger.info('consumer woken', { queues: woken });
        } catch (err) {
          outcome = 'invoke_failed';
          o.logger.warn('wake invoke failed; the schedule will start a consumer', {
            queues: woken,
            error: coerceError(err).message,
          });
        }
      }
    }
    o.onOutcome?.(outcome);
    return outcome;
  };
}

/** The queues of `queues` to wake a consumer for now (see queues_wake, migration 0010). */
export async function requestWake(
  db: Queryable,
  queues: readonly string[],
  debounceMs: number,
): Promise<string[]> {
  const { rows } = await db.query<{ queue: string }>('SELECT queues_wake AS queue FROM queues_wake($1, $2)', [
    queues,
    debounceMs,
  ]);
  return rows.map((r) => r.queue);
}

/** The consumer claims: it is live for `liveMs` (consumer_touch). `queues` empty: every queue. */
export async function touchPresence(
  db: Queryable,
  workerId: string,
  queues: readonly string[],
  liveMs: number,
): Promise<void> {
  await db.query('SELECT consumer_touch($1, $2, $3)', [workerId, queues.length > 0 ? queues : null, liveMs]);
}

/** The consumer leaves; its last claim follows (consumer_leave). */
export async function leavePresence(db: Queryable, workerId: string): Promise<void> {
  await db.query('SELECT consumer_leave($1)', [workerId]);
}

/**
 * The earliest run_at after now of a queued job in `queues` (empty: every queue) that is not
 * paused, within `horizonMs`, as epoch ms; undefined when none. Read per priority level through
 * jobs_claim_idx (priority DESC, run_at, id): a loose scan over the few priority levels instead
 * of reading every queued row.
 */
export async function nextDueAt(
  db: Queryable,
  queues: readonly string[],
  horizonMs: number,
): Promise<number | undefined> {
  const { rows } = await db.query<{ at: number | null }>(
    `WITH RECURSIVE levels(p) AS (
       (SELECT j.priority FROM jobs j WHERE j.status = 'queued' ORDER BY j.priority DESC LIMIT 1)
       UNION ALL
       SELECT (SELECT j.priority FROM jobs j WHERE j.status = 'queued' AND j.priority < levels.p
                ORDER BY j.priority DESC LIMIT 1)
         FROM levels WHERE levels.p IS NOT NULL
     )
     SELECT (extract(epoch FROM min(d.run_at)) * 1000)::float8 AS at
       FROM levels,
            LATERAL (SELECT j.run_at FROM jobs j
                      WHERE j.status = 'queued' AND j.priority = levels.p
                        AND j.run_at > now() AND j.run_at <= now() + make_interval(secs => $2::float8 / 1000)
                        AND ($1::text[] IS NULL OR j.queue = ANY ($1::text[]))
                        AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = j.queue AND q.paused)
                      ORDER BY j.priority DESC, j.run_at LIMIT 1) AS d
      WHERE levels.p IS NOT NULL`,
    [queues.length > 0 ? queues : null, horizonMs],
  );
  const at = rows[0]?.at;
  return at === null || at === undefined ? undefined : Number(at);
}
