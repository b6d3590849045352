import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { taskctl } from './taskctl.helpers.ts';

describe.runIf(await postgresAvailable())('taskctl schedule and queue set-limit (issue 18)', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('ctlsched');
  });
  afterAll(async () => t?.drop());
  const run = (...args: string[]) => taskctl(t.url, args);

  it('adds, lists, pauses, resumes and removes a schedule; remove needs --yes', async () => {
    const added = await run(
      'schedule',
      'add',
      'nightly',
      '--cron',
      '0 3 * * *',
      '--type',
      'example.sleep',
      '--payload',
      '{"ms":5}',
      '--timezone',
      'Europe/Berlin',
      '--queue',
      'reports',
    );
    expect(added.code, added.stderr).toBe(0);
    expect(added.json).toMatchObject({
      name: 'nightly',
      timezone: 'Europe/Berlin',
      queue: 'reports',
      enabled: true,
    });
    expect((await run('schedule', 'pause', 'nightly')).json.enabled).toBe(false);
    const list = await run('schedule', 'list');
    expect(list.json.schedules.map((s: { name: string; enabled: boolean }) => [s.name, s.enabled])).toEqual([
      ['nightly', false],
    ]);
    expect((await run('schedule', 'resume', 'nightly')).json.enabled).toBe(true);
    const noYes = await run('schedule', 'remove', 'nightly');
    expect(noYes.code).toBe(2);
    expect(noYes.stderr).toMatch(/--yes/);
    expect((await run('schedule', 'remove', 'nightly', '--yes')).code).toBe(0);
    expect((await run('schedule', 'remove', 'nightly', '--yes')).code).toBe(3);
  });

  it.each([
    [['--cron', '99 * * * *', '--type', 'example.echo'], /not a valid cron expression/],
    [['--cron', '0 3 * * *', '--type', 'example.echo', '--timezone', 'Nowhere/City'], /unknown time zone/],
    [['--cron', '0 3 * * *', '--type', 'example.missing'], /example\.missing/],
    [['--cron', '0 3 * * *', '--type', 'example.sleep', '--payload', '{"ms":"x"}'], /payload\.ms/],
  ])('schedule add %j exits 2 with a clear message and stores nothing', async (args, message) => {
    const r = await run('schedule', 'add', 'bad', ...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect((await t.db.query(`SELECT * FROM schedules WHERE name = 'bad'`)).rows).toEqual([]);
  });

  it('queue set-limit sets, shows in status and removes limits; negative ones exit 2', async () => {
    const set = await run(
      'queue',
      'set-limit',
      'emails',
      '--max-running',
      '5',
      '--rate',
      '20',
      '--burst',
      '40',
    );
    expect(set.code, set.stderr).toBe(0);
    expect(set.json).toEqual({ name: 'emails', maxRunning: 5, ratePerSecond: 20, rateBurst: 40 });
    const status = await run('status');
    expect(status.json.queueLimits).toEqual([
      { name: 'emails', maxRunning: 5, ratePerSecond: 20, rateBurst: 40 },
    ]);
    for (const args of [['--max-running', '-1'], ['--rate', '-3'], ['--max-running', 'lots'], []]) {
      const r = await run('queue', 'set-limit', 'other', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.length).toBeGreaterThan(0);
    }
    expect((await t.db.query(`SELECT * FROM queues WHERE name = 'other'`)).rows).toEqual([]);
    const removed = await run('queue', 'set-limit', 'emails', '--max-running', 'none', '--rate', '0');
    expect(removed.json).toEqual({ name: 'emails', maxRunning: null, ratePerSecond: null, rateBurst: null });
  });
});
