import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pauseQueue } from '../../functions/engine/index.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

/**
 * The buffers one claim touches (shared hit + read, every statement inside jobs_claim: the
 * top-level call's plan counts its function's), read through auto_explain with ANALYZE and
 * BUFFERS on a connection whose plans come back as notices. Buffers, not time: the same on a
 * loaded machine.
 */
async function claimBuffers(
  t: TestSchema,
  args: { queues: string[] | null; advisory: boolean; limit: number },
): Promise<{ buffers: number; claimed: Array<{ queue: string; payload: { i: number } }> }> {
  const client = new pg.Client({ connectionString: t.url });
  const plans: string[] = [];
  client.on('notice', (n) => plans.push(n.message ?? ''));
  await client.connect();
  try {
    await client.query("LOAD 'auto_explain'");
    for (const set of [
      'auto_explain.log_min_duration = 0',
      'auto_explain.log_analyze = on',
      'auto_explain.log_buffers = on',
      'auto_explain.log_timing = off',
      'auto_explain.log_level = notice',
      'client_min_messages = notice',
    ])
      await client.query(`SET ${set}`);
    const claim = () =>
      client.query<{ o_claimed: Array<{ queue: string; payload: { i: number } }> }>(
        'SELECT o_claimed FROM jobs_claim($1, $2, $3, $4, $5, $6)',
        ['w1', args.limit, 30, args.queues, args.advisory, '[]'],
      );
    // The first call in a backend compiles the function and plans its statements (catalog
    // reads: a thousand buffers): warm up in a transaction rolled back, then measure.
    await client.query('BEGIN');
    await claim();
    await client.query('ROLLBACK');
    plans.length = 0;
    await client.query('BEGIN');
    const { rows } = await claim();
    await client.query('ROLLBACK');
    const top = plans.find((p) => p.includes('FROM jobs_claim(')) ?? '';
    const m = /Buffers: shared((?: \w+=\d+)+)/.exec(top);
    if (!m) throw new Error(`no buffer counts in the claim's plan:\n${top}`);
    let buffers = 0;
    for (const [, kind, n] of m[1]!.matchAll(/ (\w+)=(\d+)/g))
      if (kind === 'hit' || kind === 'read') buffers += Number(n);
    return { buffers, claimed: rows[0]!.o_claimed };
  } finally {
    await client.end();
  }
}

describe.runIf(await postgresAvailable())(
  'claim cost against paused and future backlogs (issue 15 item 4)',
  () => {
    let t: TestSchema;
    beforeAll(async () => {
      t = await createTestSchema('backlog');
    });
    afterAll(async () => t?.drop());

    /**
     * 200 due jobs of queue "a" (priority 0, due a minute ago) and 20,000 more rows: in the
     * baseline running ones (the same live table and primary key size, nothing for a claim to read:
     * finished rows would be in another partition since 0022),
     * otherwise queued rows that come first in the claim index's order (earlier run_at, or a
     * higher priority) but must not be claimed: a paused queue's backlog, or jobs due in an hour.
     */
    const prepare = async (extra: 'none' | 'paused' | 'future') => {
      await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
      await t.db.query(
        `INSERT INTO jobs (queue, task_type, payload, run_at)
       SELECT 'a', 'example.echo', jsonb_build_object('i', i), now() - interval '1 minute' + i * interval '1 ms'
         FROM generate_series(1, 200) i`,
      );
      const [queue, status, priority, runAt] = {
        none: ['a', 'running', 10, "now() - interval '1 hour'"],
        paused: ['p', 'queued', 0, "now() - interval '1 hour'"],
        future: ['a', 'queued', 10, "now() + interval '1 hour'"],
      }[extra];
      await t.db.query(
        `INSERT INTO jobs (queue, task_type, status, priority, run_at, attempts, locked_at)
       SELECT $1, 'example.echo', $2, $3, ${runAt}, CASE WHEN $2 = 'running' THEN 1 ELSE 0 END,
              CASE WHEN $2 = 'running' THEN now() END
         FROM generate_series(1, 20000)`,
        [queue, status, priority],
      );
      if (extra === 'paused') await pauseQueue(t.db, 'p', 'test');
      await t.db.query('VACUUM ANALYZE jobs');
    };
    const variants = [false, true].flatMap((advisory) =>
      [null, ['a']].map((queues) => ({
        advisory,
        queues,
        name: `${advisory ? 'advisory' : 'default'} path, ${queues ? 'named queue' : 'all queues'}`,
      })),
    );

    it('a claim reads about as many buffers behind 20,000 paused or future jobs as behind none, on every path', async () => {
      // Prepare + Act: each scenario once, then one claim of 10 per path (rolled back, vacuumed after)
      const seen: Record<string, Record<string, number>> = {};
      for (const extra of ['none', 'paused', 'future'] as const) {
        await prepare(extra);
        for (const v of variants) {
          const { buffers, claimed } = await claimBuffers(t, { ...v, limit: 10 });
          await t.db.query('VACUUM jobs');
          // Assess: the right ten jobs each time, in claim order
          expect(
            claimed.map((j) => [j.queue, j.payload.i]),
            `${v.name}, ${extra}`,
          ).toEqual(Array.from({ length: 10 }, (_, i) => ['a', i + 1]));
          seen[v.name] = { ...seen[v.name], [extra]: buffers };
        }
      }
      // Assess: on the same table, the backlog adds a few index probes at most (walking it: hundreds of
      // buffers for the future rows, 40,000 for the paused ones)
      for (const v of variants)
        for (const extra of ['paused', 'future'])
          expect(seen[v.name]![extra], `${v.name}, ${extra}: ${JSON.stringify(seen)}`).toBeLessThan(
            seen[v.name]!.none! + 40,
          );
    });

    it('claims across priority levels in claim order, skipping paused queues and future rows', async () => {
      // Prepare: levels 5, 1 and 0 with due rows, level 9 only in the future, and a paused queue at level 7
      await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
      await t.db.query(
        `INSERT INTO jobs (queue, task_type, priority, payload, run_at)
       SELECT q, 'example.echo', p, jsonb_build_object('i', i), now() - interval '1 minute' + i * interval '1 ms'
         FROM (VALUES ('a', 5), ('b', 1), ('a', 0), ('p', 7)) AS v(q, p), generate_series(1, 3) i`,
      );
      await t.db.query(
        `INSERT INTO jobs (queue, task_type, priority, run_at) VALUES ('a', 'example.echo', 9, now() + interval '1 hour')`,
      );
      await pauseQueue(t.db, 'p', 'test');
      for (const advisory of [false, true]) {
        // Act
        const client = new pg.Client({ connectionString: t.url });
        await client.connect();
        try {
          await client.query('BEGIN');
          const { rows } = await client.query<{
            o_claimed: Array<{ queue: string; payload: { i: number } }>;
          }>('SELECT o_claimed FROM jobs_claim($1, $2, $3, $4, $5, $6)', ['w1', 8, 30, null, advisory, '[]']);
          // Assess
          expect(rows[0]!.o_claimed.map((j) => `${j.queue}${j.payload.i}`)).toEqual([
            'a1',
            'a2',
            'a3',
            'b1',
            'b2',
            'b3',
            'a1',
            'a2',
          ]);
        } finally {
          await client.query('ROLLBACK');
          await client.end();
        }
      }
    });
  },
);
