import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/consumer.ts';
import {
  claimJobs,
  type Db,
  enqueue,
  enqueueMany,
  getJob,
  type Queryable,
  readCounters,
} from '../../functions/engine/index.ts';
import { countByStatus, expectCountersMatchTable } from '../helpers/invariants.ts';
import { fakeContext, logSink, schedulerEvent } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

const INSUFFICIENT_PRIVILEGE = '42501';
const CONSUMER_FUNCTIONS = [
  'jobs_claim',
  'jobs_claim_batch',
  'jobs_complete',
  'jobs_complete_batch',
  'jobs_fail',
  'jobs_release',
  'jobs_renew',
];

describe.runIf(await postgresAvailable())(
  'the consumer role writes jobs only through its functions (migration 0008)',
  () => {
    let t: TestSchema;

    /** Runs `fn` as `role` (SET LOCAL ROLE: it ends with the transaction) and commits. */
    const asRole = <T>(role: string, fn: (tx: Queryable) => Promise<T>): Promise<T> =>
      t.db.transaction(async (tx) => {
        await tx.query(`SET LOCAL ROLE ${role}`);
        return fn(tx);
      });
    const denied = (role: string, sql: string, values?: unknown[]) =>
      expect(
        asRole(role, (tx) => tx.query(sql, values)),
        sql,
      ).rejects.toMatchObject({
        code: INSUFFICIENT_PRIVILEGE,
      });
    /** A Db on which every statement runs as the consumer role, as a deployed consumer's login does. */
    const consumerDb = (): Db => ({
      query: (text, values) => asRole('dte_consumer', (tx) => tx.query(text, values)),
      transaction: (fn) => asRole('dte_consumer', fn),
      end: async () => {},
    });

    beforeAll(async () => {
      t = await createTestSchema('croles');
    });
    afterAll(async () => t?.drop());
    beforeEach(async () => {
      await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
    });

    it('denies the consumer role rewriting payloads, queues, max_attempts or states, and forging counter deltas', async () => {
      // Prepare: one queued job and one claimed by someone else
      const { job: queued } = await enqueue(t.db, { type: 'example.echo', payload: { a: 1 } });
      const { job: other } = await enqueue(t.db, { type: 'example.echo', payload: { b: 2 } });
      const [held] = await claimJobs(t.db, { workerId: 'w', limit: 1, leaseSeconds: 30, queues: [] });
      expect(held!.id).toBe(queued.id);
      // Act + Assess
      await denied('dte_consumer', `UPDATE jobs SET payload = '{"evil": true}' WHERE id = $1`, [other.id]);
      await denied('dte_consumer', `UPDATE jobs SET queue = 'elsewhere' WHERE id = $1`, [other.id]);
      await denied('dte_consumer', 'UPDATE jobs SET max_attempts = 1000');
      await denied(
        'dte_consumer',
        `UPDATE jobs SET status = 'completed', result = '"forged"' WHERE id = $1`,
        [other.id],
      );
      await denied('dte_consumer', `UPDATE jobs SET lease_token = 0, locked_by = 'me' WHERE id = $1`, [
        held!.id,
      ]);
      await denied('dte_consumer', 'INSERT INTO job_counter_deltas (completed) VALUES (1000000)');
      await denied('dte_consumer', 'UPDATE job_counter_deltas SET completed = completed + 1');
      // The previous release's statements, sent as text, are refused too (what 0008 breaks)
      await denied(
        'dte_consumer',
        `UPDATE jobs j SET locked_at = now(), updated_at = now() WHERE j.id = $1 AND j.lease_token = $2`,
        [held!.id, held!.leaseToken],
      );
      // Around the fence through the functions: a wrong token or a job not running changes nothing
      const forged = await asRole('dte_consumer', (tx) =>
        tx.query<{ ids: string | null }>('SELECT jobs_complete($1) AS ids', [
          JSON.stringify([
            { id: held!.id, token: Number(held!.leaseToken) + 1, result: 'forged' },
            { id: other.id, token: 0, result: 'forged' },
          ]),
        ]),
      );
      expect(forged.rows[0]!.ids).toBeNull();
      expect(await getJob(t.db, other.id)).toMatchObject({
        status: 'queued',
        payload: { b: 2 },
        result: null,
      });
      expect(await getJob(t.db, held!.id)).toMatchObject({ status: 'running', result: null });
      expect((await readCounters(t.db)).totals).toMatchObject({ submitted: 2, completed: 0 });
    });

    it('runs the real consumer as the consumer role: completes, retries, fails and releases with exact counters', async () => {
      // Prepare
      await enqueueMany(t.db, [
        ...Array.from({ length: 40 }, (_, i) => ({ type: 'example.echo', payload: { i } })),
        { type: 'example.flaky', payload: { failTimes: 1 } },
        { type: 'example.flaky', payload: { failTimes: 5, permanent: true } },
      ]);
      const consumer = createHandler({
        db: consumerDb(),
        env: {
          LOG_LEVEL: 'warn',
          CONSUMER_IDLE_EXIT_MS: '2000',
          CONSUMER_POLL_MS: '20',
          BACKOFF_BASE_SECONDS: '0',
          MAX_BACKOFF_SECONDS: '0',
          LEASE_SECONDS: '2',
        },
        logStream: logSink(),
      });
      // Act
      const summary = await consumer(schedulerEvent, fakeContext(20_000));
      // Assess: the renewals ran too (a 2 s lease over the run), nothing was lost
      expect(summary).toMatchObject({ completed: 41, failed: 1, retried: 1, lost: 0, exitReason: 'idle' });
      expect(await countByStatus(t.db)).toEqual({ queued: 0, running: 0, completed: 41, failed: 1 });
      await expectCountersMatchTable(t.db);
      // And a deadline release, as the consumer role
      await enqueue(t.db, { type: 'example.sleep', payload: { ms: 60_000 } });
      const short = await consumer(schedulerEvent, fakeContext(1500));
      expect(short).toMatchObject({ released: 1, exitReason: 'deadline' });
      expect(await countByStatus(t.db)).toMatchObject({ queued: 1, running: 0 });
    });

    it('makes every consumer function SECURITY DEFINER with this schema then pg_temp as its search_path, executable by the consumer role only', async () => {
      // Act
      const { rows } = await t.db.query<{ name: string; definer: boolean; config: string[] | null }>(
        `SELECT p.proname AS name, p.prosecdef AS definer, p.proconfig AS config
         FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = ANY ($1)
        ORDER BY 1`,
        [CONSUMER_FUNCTIONS],
      );
      // Assess
      expect(rows.map((r) => r.name)).toEqual([...CONSUMER_FUNCTIONS].sort());
      for (const r of rows) {
        expect(r.definer, r.name).toBe(true);
        expect(r.config, r.name).toContain(`search_path=${t.schema}, pg_temp`);
      }
      for (const role of ['dte_api', 'dte_reaper']) {
        await denied(role, `SELECT * FROM jobs_fail(1, 1, true, 1, 1, '{}')`);
        await denied(role, `SELECT * FROM jobs_renew('[]')`);
        await denied(role, `SELECT * FROM jobs_release('[]', 'x', 3)`);
        await denied(role, `SELECT jobs_complete_batch('{}', '{}', '{}')`);
        await denied(role, `SELECT * FROM jobs_claim_batch('w', 1, 30, NULL, false, '{}', '{}', '{}')`);
      }
    });

    it('a temporary table of the caller cannot stand in for the engine tables inside the functions', async () => {
      // Prepare: a queued job of queue "a"; the caller shadows `queues` with one saying "a" is paused
      await enqueue(t.db, { type: 'example.echo', queue: 'a' });
      // Act
      const claimed = await asRole('dte_consumer', async (tx) => {
        await tx.query('CREATE TEMP TABLE queues (name text, paused boolean) ON COMMIT DROP');
        await tx.query(`INSERT INTO queues VALUES ('a', true)`);
        const { rows } = await tx.query<{ o_claimed: unknown[] }>(
          `SELECT o_claimed FROM jobs_claim('w', 5, 30, NULL, false, '[]')`,
        );
        return rows[0]!.o_claimed;
      });
      // Assess
      expect(claimed).toHaveLength(1);
    });
  },
);
