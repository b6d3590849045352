import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ApiHandler, createHandler } from '../../functions/api.ts';
import { type Db, type Queryable, syncCodeSchedules } from '../../functions/engine/index.ts';
import { apiEvent, fakeContext, logSink } from '../helpers/lambda.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { taskctl } from './taskctl.helpers.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are read field by field in assertions
type Res = APIGatewayProxyStructuredResultV2 & { json: any };

const CAROL = 'arn:aws:sts::123456789012:assumed-role/ops/carol';

/** An IAM-signed request, as API Gateway hands it over (the caller is the audited actor). */
function signed(event: APIGatewayProxyEventV2): APIGatewayProxyEventV2 {
  const iam = {
    accessKey: 'AKIAEXAMPLE',
    accountId: '123456789012',
    callerId: 'AIDAEXAMPLE',
    userArn: CAROL,
  };
  const authorizer = {
    iam: { ...iam, cognitoIdentity: null, principalOrgId: null, userId: 'AIDAEXAMPLE' },
  };
  return { ...event, requestContext: { ...event.requestContext, authorizer } as never };
}

/**
 * Issue 18, gap 2: schedule add/replace/remove/pause/resume and queue limit changes are operator
 * actions: from the API (as dte_api, which has no INSERT on job_audit), taskctl and the dashboard
 * each writes one job_audit row with the actor, in the same statement as the change; a refused
 * change writes none. (The dashboard's pause/resume and limit rows: dashboard-api.test.ts.)
 */
describe.runIf(await postgresAvailable())('schedule and limit changes are audited (API, taskctl)', () => {
  let t: TestSchema;
  let api: ApiHandler;

  /** Every statement as dte_api (SET LOCAL ROLE), as the deployed api's login runs them. */
  const apiDb = (): Db => {
    const run = <T>(fn: (tx: Queryable) => Promise<T>) =>
      t.db.transaction(async (tx) => {
        await tx.query('SET LOCAL ROLE dte_api');
        return fn(tx);
      });
    return {
      query: (text, values) => run((tx) => tx.query(text, values)),
      transaction: run,
      end: async () => {},
    };
  };
  const call = async (method: string, path: string, body?: unknown): Promise<Res> => {
    const res = (await api(
      signed(apiEvent(method, path, body)),
      fakeContext(),
    )) as APIGatewayProxyStructuredResultV2;
    return { ...res, json: res.body ? JSON.parse(res.body) : undefined };
  };
  const audit = async () =>
    (await t.db.query('SELECT job_id, action, actor, queue, reason, details FROM job_audit ORDER BY id'))
      .rows;

  beforeAll(async () => {
    t = await createTestSchema('schedaudit');
    api = createHandler({ db: apiDb(), env: { LOG_LEVEL: 'warn' }, logStream: logSink() });
  });
  afterAll(async () => t?.drop());
  beforeEach(async () => {
    await t.db.query('TRUNCATE schedules, queues, job_audit');
  });

  it('API: add, replace, pause, resume, remove a schedule and set a limit: one row each, actor the caller', async () => {
    // Act
    const statuses = [
      (
        await call('POST', '/schedules', {
          name: 'nightly',
          cron: '0 3 * * *',
          type: 'example.echo',
          queue: 'reports',
        })
      ).statusCode,
      (
        await call('POST', '/schedules', {
          name: 'nightly',
          cron: '0 4 * * *',
          type: 'example.echo',
          queue: 'reports',
        })
      ).statusCode,
      (await call('POST', '/schedules/nightly/pause')).statusCode,
      (await call('POST', '/schedules/nightly/resume')).statusCode,
      (await call('POST', '/queues/mail/limits', { maxRunning: 5, rate: 20 })).statusCode,
      (await call('DELETE', '/schedules/nightly')).statusCode,
    ];
    // Assess
    expect(statuses).toEqual([201, 200, 200, 200, 200, 200]);
    const base = { job_id: null, actor: CAROL, reason: null };
    const sched = { schedule: 'nightly', type: 'example.echo', timezone: 'UTC' };
    expect(await audit()).toEqual([
      {
        ...base,
        action: 'schedule-add',
        queue: 'reports',
        details: { ...sched, cron: '0 3 * * *', enabled: true, catchUp: 'latest' },
      },
      {
        ...base,
        action: 'schedule-replace',
        queue: 'reports',
        details: { ...sched, cron: '0 4 * * *', enabled: true, catchUp: 'latest' },
      },
      { ...base, action: 'schedule-pause', queue: 'reports', details: { schedule: 'nightly' } },
      { ...base, action: 'schedule-resume', queue: 'reports', details: { schedule: 'nightly' } },
      { ...base, action: 'set-limit', queue: 'mail', details: { maxRunning: 5, rate: 20 } },
      { ...base, action: 'schedule-remove', queue: 'reports', details: { ...sched, cron: '0 4 * * *' } },
    ]);
  });

  it('API: a refused change (unknown schedule, code-defined schedule, bad limit) writes no audit row', async () => {
    // Prepare
    await syncCodeSchedules(t.db, [{ name: 'coded', cron: '0 3 * * *', type: 'example.echo' }]);
    // Act
    const statuses = [
      (await call('POST', '/schedules/nope/pause')).statusCode,
      (await call('DELETE', '/schedules/nope')).statusCode,
      (await call('DELETE', '/schedules/coded')).statusCode,
      (await call('POST', '/schedules', { name: 'coded', cron: '0 5 * * *', type: 'example.echo' }))
        .statusCode,
      (await call('POST', '/queues/mail/limits', { maxRunning: -1 })).statusCode,
    ];
    // Assess
    expect(statuses).toEqual([404, 404, 409, 409, 400]);
    expect(await audit()).toEqual([]);
  });

  it('taskctl: schedule add, pause, resume, remove and queue set-limit: one row each, actor --actor', async () => {
    // Act
    const run = (...args: string[]) => taskctl(t.url, ['--actor', 'alice', ...args]);
    const codes = [
      (
        await run(
          'schedule',
          'add',
          'nightly',
          '--cron',
          '0 3 * * *',
          '--type',
          'example.echo',
          '--queue',
          'reports',
        )
      ).code,
      (await run('schedule', 'pause', 'nightly')).code,
      (await run('schedule', 'resume', 'nightly')).code,
      (await run('queue', 'set-limit', 'mail', '--max-running', '3')).code,
      (await run('schedule', 'remove', 'nightly', '--yes')).code,
      (await run('schedule', 'pause', 'nightly')).code,
    ];
    // Assess
    expect(codes).toEqual([0, 0, 0, 0, 0, 3]);
    const rows = await audit();
    expect(rows.map((r) => [r.action, r.actor, r.queue])).toEqual([
      ['schedule-add', 'alice', 'reports'],
      ['schedule-pause', 'alice', 'reports'],
      ['schedule-resume', 'alice', 'reports'],
      ['set-limit', 'alice', 'mail'],
      ['schedule-remove', 'alice', 'reports'],
    ]);
    expect(rows[1]!.details).toEqual({ schedule: 'nightly' });
    expect(rows[3]!.details).toEqual({ maxRunning: 3 });
  });
});
