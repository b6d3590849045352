import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createWaker,
  type Db,
  putSchedule,
  type Queryable,
  runReaper,
} from '../../functions/engine/index.ts';
import type { WakeReason } from '../../functions/engine/wake.ts';
import { createHandler as createReaperHandler } from '../../functions/reaper.ts';
import { fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Issue 18, gap 1: occurrences are materialised ahead (90 s) by the reaper, and the reaper wakes a
 * consumer for those falling due before its next run, through the api's waker (queues_wake's
 * presence check and debounce), so a 03:00 job has a consumer live at 03:00. Clocks are injected:
 * the materialiser's and the waker's; the database's own now() only decides presence and debounce.
 */
describe.runIf(await postgresAvailable())('the reaper wakes a consumer for materialised occurrences', () => {
  let t: TestSchema;

  /** Every statement as dte_reaper (SET LOCAL ROLE), as the deployed reaper's login runs them. */
  const reaperDb = (): Db => {
    const run = <T>(fn: (tx: Queryable) => Promise<T>) =>
      t.db.transaction(async (tx) => {
        await tx.query('SET LOCAL ROLE dte_reaper');
        return fn(tx);
      });
    return {
      query: (text, values) => run((tx) => tx.query(text, values)),
      transaction: run,
      end: async () => {},
    };
  };

  /** One reaper run at `at` with a fake invoker; the invokes it made. */
  const reapAt = async (at: string, o: { aheadMs?: number } = {}) => {
    const invokes: WakeReason[] = [];
    const now = new Date(at);
    const db = reaperDb();
    const wake = createWaker({
      db,
      invoker: { invoke: async (reason) => void invokes.push(reason) },
      logger: quiet,
      debounceMs: 0,
      horizonMs: 60_000,
      now: () => now.getTime(),
    });
    const summary = await runReaper(
      { db, logger: quiet, wake, settings: { retentionDays: 7, schedules: { now: () => now, ...o } } },
      () => 30_000,
    );
    return { invokes, summary };
  };

  beforeAll(async () => {
    t = await createTestSchema('reapwake');
  });
  afterAll(async () => t?.drop());
  beforeEach(async () => {
    await t.db.query('TRUNCATE schedules, jobs, consumer_presence, queue_wakes');
  });

  it('wakes one consumer at the run before an occurrence it materialised a run earlier', async () => {
    // Prepare: hourly, in a queue with no consumer.
    await putSchedule(t.db, { name: 'hourly', cron: '0 * * * *', type: 'example.echo', queue: 'reports' });
    // Act: at 02:58:45 the 03:00 occurrence is materialised (90 s ahead) but is 75 s away, past the
    // waker's 60 s horizon; at 02:59:45 nothing new is materialised and it is 15 s away.
    const first = await reapAt('2031-03-01T02:58:45Z');
    const second = await reapAt('2031-03-01T02:59:45Z');
    // Assess
    const { rows } = await t.db.query<{ queue: string; run_at: Date }>('SELECT queue, run_at FROM jobs');
    expect(rows).toEqual([{ queue: 'reports', run_at: new Date('2031-03-01T03:00:00Z') }]);
    expect(first.summary.schedules.enqueued).toBe(1);
    expect(first.invokes).toEqual([]);
    expect(first.summary.wake).toBe('skipped');
    expect(second.summary.schedules.enqueued).toBe(0);
    expect(second.invokes).toEqual(['enqueue']);
    expect(second.summary.wake).toBe('invoked');
  });

  it('does not wake for an occurrence not materialised yet, nor when a consumer of the queue is live', async () => {
    // Prepare
    await putSchedule(t.db, { name: 'minutely', cron: '* * * * *', type: 'example.echo', queue: 'reports' });
    // Act: 10 s ahead only: the 03:01 occurrence, 30 s away, is not a job yet.
    const notYet = await reapAt('2031-03-01T03:00:30Z', { aheadMs: 10_000 });
    await t.db.query('TRUNCATE schedules, jobs, queue_wakes');
    await putSchedule(t.db, { name: 'minutely', cron: '* * * * *', type: 'example.echo', queue: 'reports' });
    await t.db.query(`SELECT consumer_touch('live-consumer', ARRAY['reports'], 120000)`);
    const live = await reapAt('2031-03-01T03:00:30Z');
    // Assess
    expect(notYet.summary.schedules.enqueued).toBe(0);
    expect(notYet.invokes).toEqual([]);
    expect(live.summary.schedules.enqueued).toBeGreaterThan(0);
    expect(live.invokes).toEqual([]);
  });

  it('the reaper Lambda invokes the consumer through its invoker, and not with WAKE_ON_ENQUEUE=0', async () => {
    // Prepare: every second, so an occurrence is always due within the coming minute.
    await putSchedule(t.db, {
      name: 'everysecond',
      cron: '* * * * * *',
      type: 'example.echo',
      queue: 'ticks',
    });
    const run = async (env: Record<string, string>) => {
      const invokes: WakeReason[] = [];
      const handler = createReaperHandler({
        db: t.db,
        env: { LOG_LEVEL: 'warn', RETENTION_DAYS: '7', WAKE_DEBOUNCE_MS: '0', ...env },
        logStream: logSink(),
        invoker: { invoke: async (reason) => void invokes.push(reason) },
      });
      const summary = await handler({}, fakeContext(30_000, 'dte-reaper'));
      return { invokes, summary };
    };
    // Act
    const on = await run({});
    const off = await run({ WAKE_ON_ENQUEUE: '0' });
    // Assess
    expect(on.invokes).toEqual(['enqueue']);
    expect(on.summary.wake).toBe('invoked');
    expect(off.invokes).toEqual([]);
    expect(off.summary.wake).toBeUndefined();
  });
});
