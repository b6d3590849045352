import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../functions/api.ts';
import {
  ConflictError,
  cancelMany,
  cancelOne,
  type Db,
  enqueue,
  findFailedJobs,
  getJob,
  listAudit,
  planRequeue,
  putSchedule,
  requeueOne,
  retryFailed,
  setLimits,
  setQueuesPaused,
  setScheduleState,
} from '../../functions/engine/index.ts';
import { createRegistry } from '../../functions/tasks/index.ts';
import { createOverviewCache, resolve } from '../../tools/dashboard/routes.ts';
import { apiEvent, fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

/** Every statement runs as dte_api, as the deployed api's login user does. */
function asApiRole(db: Db): Db {
  const run = <T>(fn: (tx: Parameters<Parameters<Db['transaction']>[0]>[0]) => Promise<T>) =>
    db.transaction(async (tx) => {
      await tx.query('SET LOCAL ROLE dte_api');
      return fn(tx);
    });
  return {
    query: (text, values) => run((tx) => tx.query(text, values)),
    transaction: run,
    end: async () => {},
  };
}

describe.runIf(await postgresAvailable())(
  'operator actions: each change and its audit row commit together',
  () => {
    let t: TestSchema;
    const auditCount = async () =>
      Number((await t.db.query<{ n: string }>('SELECT count(*) AS n FROM job_audit')).rows[0]!.n);
    const breakAudit = () =>
      t.db.query(`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'audit refused'; END $$;
                CREATE TRIGGER refuse_audit BEFORE INSERT ON job_audit FOR EACH ROW EXECUTE FUNCTION refuse_audit()`);
    const mendAudit = () =>
      t.db.query('DROP TRIGGER IF EXISTS refuse_audit ON job_audit; DROP FUNCTION IF EXISTS refuse_audit()');
    const apiCancel = async (id: string, sub: string) => {
      const handler = createHandler({
        db: asApiRole(t.db),
        env: { LOG_LEVEL: 'silent' },
        logStream: logSink(),
      });
      const event = apiEvent('POST', `/jobs/${id}/cancel`, { reason: 'not needed' });
      const withJwt = {
        ...event,
        requestContext: { ...event.requestContext, authorizer: { jwt: { claims: { sub }, scopes: null } } },
      } as never;
      return (await handler(withJwt, fakeContext())) as APIGatewayProxyStructuredResultV2;
    };
    const dashboard = async (method: string, path: string, body: unknown) => {
      const { handler, param } = resolve(method, `/api/dashboard${path}`);
      const url = new URL(`http://127.0.0.1/api/dashboard${path}`);
      const overview = createOverviewCache(t.db, 0);
      return handler({ db: t.db, overview, actor: 'dash-op', method, url, body }, param);
    };

    beforeAll(async () => {
      t = await createTestSchema('operator');
    });
    afterAll(async () => t?.drop());
    beforeEach(async () => {
      await mendAudit();
      await t.db.query('TRUNCATE jobs, job_audit, job_counter_deltas, queues');
    });

    it('the API cancel writes one audit row naming the verified caller', async () => {
      // Prepare
      const { job } = await enqueue(t.db, { type: 'example.echo' });
      // Act
      const res = await apiCancel(job.id, 'alice-sub');
      // Assess
      expect(res.statusCode).toBe(200);
      const audit = await listAudit(t.db, job.id);
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({
        action: 'cancel',
        actor: 'alice-sub',
        reason: 'not needed',
        details: { previousStatus: 'queued', worker: null },
      });
    });

    it('a failing audit insert rolls the API cancel back: the job stays queued', async () => {
      // Prepare
      const { job } = await enqueue(t.db, { type: 'example.echo' });
      await breakAudit();
      // Act
      const res = await apiCancel(job.id, 'alice-sub');
      // Assess
      expect(res.statusCode).toBe(500);
      expect((await getJob(t.db, job.id))!.status).toBe('queued');
      expect(await auditCount()).toBe(0);
    });

    it('taskctl cancel (cancelMany) audits each job, and a failing audit rolls every cancel back', async () => {
      // Prepare
      const a = (await enqueue(t.db, { type: 'example.echo' })).job;
      const b = (await enqueue(t.db, { type: 'example.echo' })).job;
      // Act
      const done = await cancelMany(t.db, [a.id, b.id], { actor: 'ops', reason: 'dup' });
      // Assess
      expect(done.map((d) => d.id)).toEqual([a.id, b.id]);
      expect(await auditCount()).toBe(2);

      // Prepare
      const c = (await enqueue(t.db, { type: 'example.echo' })).job;
      const d = (await enqueue(t.db, { type: 'example.echo' })).job;
      await breakAudit();
      // Act
      const failed = cancelMany(t.db, [c.id, d.id], { actor: 'ops', reason: 'dup' });
      // Assess
      await expect(failed).rejects.toThrow(/audit refused/);
      expect((await getJob(t.db, c.id))!.status).toBe('queued');
      expect((await getJob(t.db, d.id))!.status).toBe('queued');
    });

    it('cancelMany changes nothing when one job finished meanwhile', async () => {
      // Prepare
      const a = (await enqueue(t.db, { type: 'example.echo' })).job;
      const b = (await enqueue(t.db, { type: 'example.echo' })).job;
      await cancelOne(t.db, b.id, { actor: 'other', reason: 'first' });
      // Act
      const second = cancelMany(t.db, [a.id, b.id], { actor: 'ops', reason: 'dup' });
      // Assess
      await expect(second).rejects.toBeInstanceOf(ConflictError);
      expect((await getJob(t.db, a.id))!.status).toBe('queued');
      expect(await listAudit(t.db, a.id)).toEqual([]);
    });

    it('the dashboard cancel audits once, and refuses a stale lease token or a finished job without a row', async () => {
      // Prepare
      const { job } = await enqueue(t.db, { type: 'example.echo' });
      // Act
      const stale = dashboard('POST', `/jobs/${job.id}/cancel`, { reason: 'x', leaseToken: '99' });
      // Assess
      await expect(stale).rejects.toMatchObject({ code: 'changed_meanwhile' });
      expect(await auditCount()).toBe(0);
      // Act
      const ok = await dashboard('POST', `/jobs/${job.id}/cancel`, { reason: 'stop it', leaseToken: '0' });
      const again = dashboard('POST', `/jobs/${job.id}/cancel`, { reason: 'stop it' });
      // Assess
      expect(ok.status).toBe(200);
      await expect(again).rejects.toMatchObject({ code: 'job_terminal' });
      expect(await listAudit(t.db, job.id)).toMatchObject([
        { action: 'cancel', actor: 'dash-op', reason: 'stop it' },
      ]);
    });

    it('requeueOne refuses the wrong status; planRequeue says why each job cannot be requeued', async () => {
      // Prepare
      const { job } = await enqueue(t.db, { type: 'example.echo' });
      // Act
      const wrong = requeueOne(t.db, job.id, 'running', { actor: 'ops', reason: 'r' });
      await expect(wrong).rejects.toMatchObject({ code: 'wrong_status' });
      const plan = await planRequeue(t.db, [job.id, '999999']);
      // Assess
      expect(plan.targets).toEqual([]);
      expect(plan.refused).toEqual([
        { id: job.id, reason: 'already queued' },
        { id: '999999', reason: 'not found' },
      ]);
    });

    it('retryFailed redrives a cancelled job with a fresh budget and one retry-failed audit row', async () => {
      // Prepare
      const { job } = await enqueue(t.db, { type: 'example.echo' });
      await cancelOne(t.db, job.id, { actor: 'ops', reason: 'oops' });
      const [failed] = await findFailedJobs(t.db, { includeCancelled: true, limit: 10 });
      // Act
      const changed = await retryFailed(t.db, [failed!], { actor: 'ops', reason: 'redo' });
      // Assess
      expect(changed).toMatchObject([{ id: job.id, previousStatus: 'failed' }]);
      expect((await getJob(t.db, job.id))!.status).toBe('queued');
      expect((await listAudit(t.db, job.id)).map((a) => a.action)).toEqual(['cancel', 'retry-failed']);
    });

    it('pause, resume and limits write their audit rows, or nothing when the audit fails', async () => {
      // Act
      await setQueuesPaused(t.db, ['a', 'b'], true, { actor: 'ops', reason: 'incident' });
      await setLimits(t.db, 'a', { maxRunning: 3 }, { actor: 'ops', reason: null });
      // Assess
      const rows = await t.db.query<{ queue: string; action: string }>(
        'SELECT queue, action FROM job_audit ORDER BY id',
      );
      expect(rows.rows).toEqual([
        { queue: 'a', action: 'pause' },
        { queue: 'b', action: 'pause' },
        { queue: 'a', action: 'set-limit' },
      ]);
      // Prepare
      await breakAudit();
      // Act
      const resumed = setQueuesPaused(t.db, ['a'], false, { actor: 'ops', reason: null });
      // Assess
      await expect(resumed).rejects.toThrow(/audit refused/);
      const paused = await t.db.query<{ paused: boolean }>(`SELECT paused FROM queues WHERE name = 'a'`);
      expect(paused.rows[0]!.paused).toBe(true);
    });

    it('a schedule pause (taskctl, dashboard) writes one audit row naming the schedule and its queue', async () => {
      // Prepare
      await t.db.query('TRUNCATE schedules');
      const def = { name: 'nightly', cron: '0 3 * * *', type: 'example.echo', queue: 'reports' };
      await putSchedule(t.db, def, createRegistry());
      // Act
      const s = await setScheduleState(t.db, 'nightly', false, { actor: 'ops', reason: 'INC-1' });
      // Assess
      expect(s.enabled).toBe(false);
      const rows = await t.db.query('SELECT queue, action, actor, reason, details FROM job_audit');
      expect(rows.rows).toEqual([
        {
          queue: 'reports',
          action: 'schedule-pause',
          actor: 'ops',
          reason: 'INC-1',
          details: { schedule: 'nightly' },
        },
      ]);
    });
  },
);
