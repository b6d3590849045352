import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Queryable } from '../../functions/engine/index.ts';
import {
  deleteSchedule,
  getSchedule,
  listSchedules,
  materialiseSchedules,
  putSchedule,
  setScheduleEnabled,
  syncCodeSchedules,
} from '../../functions/engine/schedules.ts';
import { createRegistry } from '../../functions/tasks/index.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

const registry = createRegistry();
const at = (s: string) => new Date(s);

describe.runIf(await postgresAvailable())('schedules: exactly once per occurrence (issue 18)', () => {
  let t: TestSchema;
  const asRole = <T>(role: string, fn: (tx: Queryable) => Promise<T>): Promise<T> =>
    t.db.transaction(async (tx) => {
      await tx.query(`SET LOCAL ROLE ${role}`);
      return fn(tx);
    });
  const jobs = async () =>
    (
      await t.db.query<{ key: string; run_at: Date; queue: string; task_type: string; payload: unknown }>(
        'SELECT idempotency_key AS key, run_at, queue, task_type, payload FROM jobs ORDER BY run_at, id',
      )
    ).rows;

  beforeAll(async () => {
    t = await createTestSchema('sched');
  });
  afterAll(async () => t?.drop());
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, schedules, job_counter_deltas');
  });

  it('8 racing materialisers (as dte_reaper, two clocks) enqueue each occurrence exactly once', async () => {
    // Prepare: every minute, cursor at 10:00
    await putSchedule(
      t.db,
      { name: 'm', cron: '* * * * *', type: 'example.echo', payload: { x: 1 }, queue: 'sq' },
      registry,
    );
    await t.db.query(`UPDATE schedules SET next_at = '2026-06-01T10:00:00Z'`);
    const pools = Array.from({ length: 8 }, () => t.connect({ max: 1 }));
    // Act: 8 at once, half of them a few seconds later
    const results = await Promise.all(
      pools.map((p, i) =>
        p.transaction(async (tx) => {
          await tx.query('SET LOCAL ROLE dte_reaper');
          return materialiseSchedules(tx, {
            now: () => at(i % 2 ? '2026-06-01T10:00:05Z' : '2026-06-01T10:00:00Z'),
          });
        }),
      ),
    );
    // Assess: 10:00 .. 10:01:30 ahead: 10:00 and 10:01, each once; one materialiser advanced it
    const rows = await jobs();
    expect(rows.map((r) => r.key)).toEqual([
      'schedule:m:2026-06-01T10:00:00.000Z',
      'schedule:m:2026-06-01T10:01:00.000Z',
    ]);
    expect(rows.map((r) => r.run_at.toISOString())).toEqual([
      '2026-06-01T10:00:00.000Z',
      '2026-06-01T10:01:00.000Z',
    ]);
    expect(rows[0]).toMatchObject({ queue: 'sq', task_type: 'example.echo', payload: { x: 1 } });
    expect(results.reduce((n, r) => n + r.enqueued, 0)).toBe(2);
    const s = await getSchedule(t.db, 'm');
    expect(s?.nextAt?.toISOString()).toBe('2026-06-01T10:02:00.000Z');
    expect(s?.lastRunAt?.toISOString()).toBe('2026-06-01T10:01:00.000Z');
  });

  it('a cursor moved back (a schedule removed and added again) never enqueues an occurrence twice: the key', async () => {
    await putSchedule(
      t.db,
      { name: 'k', cron: '*/5 * * * *', type: 'example.echo', catchUp: 'all' },
      registry,
    );
    await t.db.query(`UPDATE schedules SET next_at = '2026-06-01T10:00:00Z'`);
    await materialiseSchedules(t.db, { now: () => at('2026-06-01T10:20:30Z') });
    const first = (await jobs()).map((r) => r.key);
    expect(first).toHaveLength(5); // 10:00 .. 10:15 missed (all), 10:20 inside the grace; 10:25 is past 90 s
    // Act: the cursor goes back to 10:00 and the materialiser runs again
    await t.db.query(`UPDATE schedules SET next_at = '2026-06-01T10:00:00Z'`);
    const again = await materialiseSchedules(t.db, { now: () => at('2026-06-01T10:20:30Z') });
    // Assess
    expect(again.enqueued).toBe(0);
    expect((await jobs()).map((r) => r.key)).toEqual(first);
  });

  it('catchUp after a 3-hour outage, through the database: skip, latest, all', async () => {
    for (const catchUp of ['skip', 'latest', 'all'] as const) {
      await putSchedule(
        t.db,
        { name: `c-${catchUp}`, cron: '0 * * * *', type: 'example.echo', catchUp },
        registry,
      );
    }
    // first run at 08:59:00: 09:00 is ahead
    await materialiseSchedules(t.db, { now: () => at('2026-06-01T08:59:00Z') });
    // Act: down until 12:00:10
    await materialiseSchedules(t.db, { now: () => at('2026-06-01T12:00:10Z') });
    // Assess
    const rows = await jobs();
    const of = (n: string) =>
      rows.filter((r) => r.key.startsWith(`schedule:${n}:`)).map((r) => r.run_at.toISOString().slice(11, 16));
    expect(of('c-skip')).toEqual(['09:00', '12:00']);
    expect(of('c-latest')).toEqual(['09:00', '11:00', '12:00']);
    expect(of('c-all')).toEqual(['09:00', '10:00', '11:00', '12:00']);
  });

  it('a paused schedule enqueues nothing; resumed, it goes on', async () => {
    await putSchedule(
      t.db,
      { name: 'p', cron: '0 * * * *', type: 'example.echo', catchUp: 'skip' },
      registry,
    );
    await setScheduleEnabled(t.db, 'p', false);
    await materialiseSchedules(t.db, { now: () => at('2026-06-01T08:59:00Z') });
    expect(await jobs()).toEqual([]);
    await setScheduleEnabled(t.db, 'p', true);
    await materialiseSchedules(t.db, { now: () => at('2026-06-01T09:59:00Z') });
    expect((await jobs()).map((r) => r.key)).toEqual(['schedule:p:2026-06-01T10:00:00.000Z']);
  });

  it('refuses bad input with a clear message and stores nothing', async () => {
    const ok = { name: 'bad', cron: '0 3 * * *', type: 'example.echo' };
    for (const [def, message] of [
      [{ ...ok, cron: '0 25 * * *' }, /cron: .*not a valid cron expression/],
      [{ ...ok, timezone: 'Europe/Atlantis' }, /unknown time zone/],
      [{ ...ok, type: 'example.nope' }, /example\.nope/],
      [{ ...ok, type: 'example.sleep', payload: { ms: 'soon' } }, /payload\.ms/],
    ] as const) {
      await expect(putSchedule(t.db, def as never, registry)).rejects.toThrow(message);
    }
    expect(await listSchedules(t.db)).toEqual([]);
  });

  it('code-defined schedules are synced, and the api role cannot edit or remove them', async () => {
    await syncCodeSchedules(
      t.db,
      [{ name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', type: 'example.echo' }],
      registry,
    );
    await asRole('dte_api', (tx) =>
      putSchedule(tx, { name: 'mine', cron: '*/5 * * * *', type: 'example.echo' }, registry),
    );
    await expect(
      asRole('dte_api', (tx) =>
        putSchedule(tx, { name: 'nightly', cron: '* * * * *', type: 'example.echo' }, registry),
      ),
    ).rejects.toMatchObject({ code: 'schedule_defined_in_code' });
    await expect(asRole('dte_api', (tx) => deleteSchedule(tx, 'nightly'))).rejects.toMatchObject({
      code: 'schedule_defined_in_code',
    });
    await expect(asRole('dte_api', (tx) => deleteSchedule(tx, 'none'))).rejects.toMatchObject({
      code: 'not_found',
    });
    // the api role has no table writes on schedules
    await expect(
      asRole('dte_api', (tx) => tx.query(`UPDATE schedules SET cron = '* * * * *'`)),
    ).rejects.toMatchObject({
      code: '42501',
    });
    await expect(asRole('dte_reaper', (tx) => tx.query(`DELETE FROM schedules`))).rejects.toMatchObject({
      code: '42501',
    });
    // pausing is allowed; removing from code removes it
    await asRole('dte_api', (tx) => setScheduleEnabled(tx, 'nightly', false));
    const list = await listSchedules(t.db);
    expect(list.map((s) => [s.name, s.source, s.enabled, s.cron])).toEqual([
      ['mine', 'api', true, '*/5 * * * *'],
      ['nightly', 'code', false, '0 3 * * *'],
    ]);
    await syncCodeSchedules(t.db, [], registry);
    expect((await listSchedules(t.db)).map((s) => s.name)).toEqual(['mine']);
    await asRole('dte_api', (tx) => deleteSchedule(tx, 'mine'));
    expect(await listSchedules(t.db)).toEqual([]);
  });
});
