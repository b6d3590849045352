import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cancelJob,
  claimJobs,
  enqueue,
  failJob,
  releaseJobs,
  renewLeases,
} from '../../functions/engine/index.ts';
import type { ClaimedJob } from '../../functions/engine/types.ts';
import { expectCountersMatchTable } from '../helpers/invariants.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { fill, RUNBOOK_CANCEL } from './partitions.helpers.ts';

// Since 0022 the runbook's cancel of a *running* job moves its row from jobs_live to a finished
// partition. A statement of the lease holder (renew, fail, release) or the API's cancel that
// waits on that row while the cancel's transaction is open fails with SQLSTATE 40001 once it
// commits ("tuple to be locked was already moved to another partition"), where before 0022 it
// matched nothing. The engine sends such a statement again (serializationRetry.ts): the row is
// gone from jobs_live, so the second attempt matches nothing, and the worker learns it lost the
// job as it always did. Each case is made deterministic by waiting for the engine's statement to
// be seen waiting on the cancel's lock before committing the cancel.

describe.runIf(await postgresAvailable())("the lease holder's calls beside a hand-written cancel", () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('movedrun');
  });
  afterAll(async () => t?.drop());

  const running = async (): Promise<ClaimedJob> => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
    await enqueue(t.db, { type: 'example.echo' });
    const [job] = await claimJobs(t.db, { workerId: 'w', limit: 1, leaseSeconds: 60, queues: [] });
    return job!;
  };

  /** Runs `call` while the runbook's cancel of `job` holds its row, committing once `call` waits on it. */
  async function beside<T>(job: ClaimedJob, call: () => Promise<T>): Promise<T> {
    const mover = new pg.Client({ connectionString: t.url, application_name: 'runbook' });
    await mover.connect();
    try {
      await mover.query('BEGIN');
      const cancel = fill(RUNBOOK_CANCEL, { id: job.id });
      expect((await mover.query(cancel)).rowCount).toBe(1);
      const pending = call();
      pending.catch(() => {});
      // Wait (for a condition, not a time) until a backend of this schema waits on a lock. The
      // mover is in a transaction, where pg_stat_activity keeps its first snapshot: cleared each time.
      for (let i = 0; ; i++) {
        await mover.query('SELECT pg_stat_clear_snapshot()');
        const { rows } = await mover.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND datname = current_database()
              AND query ~ '(jobs_renew|jobs_fail|jobs_release|jobs_cancel_audited)'`,
        );
        if (rows[0]!.n > 0) break;
        if (i > 2000) throw new Error('the engine statement never waited on the cancelled row');
        await new Promise((r) => setTimeout(r, 10));
      }
      await mover.query('COMMIT');
      return await pending;
    } finally {
      await mover.end();
    }
  }

  it('renew, fail, release and the api cancel match nothing instead of failing with 40001', async () => {
    // Prepare + Act: one job per call, each cancelled by hand while the call waits on it
    let job = await running();
    const renewed = await beside(job, () => renewLeases(t.db, [job]));
    job = await running();
    const failed = await beside(job, () =>
      failJob(t.db, {
        ...job,
        error: { message: 'boom', name: 'Error', attempt: 1, worker: 'w' },
        permanent: false,
        backoffBaseSeconds: 1,
        maxBackoffSeconds: 60,
      }),
    );
    job = await running();
    const released = await beside(job, () => releaseJobs(t.db, [job], 'shutting down'));
    job = await running();
    const cancelled = await beside(job, () => cancelJob(t.db, job.id, 'by api', 'api'));
    // Assess: the worker lost each job (nothing matched), the hand-written cancel stands
    expect(renewed.size).toBe(0);
    expect(failed).toBeNull();
    expect(released.size).toBe(0);
    expect(cancelled).toBeNull();
    const { rows } = await t.db.query<{ status: string; by: string }>(
      `SELECT status, last_error->>'actor' AS by FROM jobs WHERE id = $1`,
      [job.id],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.status).toBe('failed');
    expect(rows[0]!.by).not.toBe('api');
    await expectCountersMatchTable(t.db);
  });
});
