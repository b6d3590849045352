import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listQueueLimits, setQueueLimits } from '../../functions/engine/sql/queueLimits.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

type Claimed = Array<{ id: string; queue: string; leaseToken: string }>;

/** The buffers (shared hit + read) of one claim, rolled back, as claim-backlog.test.ts measures them. */
async function claimBuffers(t: TestSchema, queues: string[] | null, limit: number) {
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
      client.query<{ o_claimed: Claimed }>('SELECT o_claimed FROM jobs_claim($1, $2, $3, $4, $5, $6)', [
        'w1',
        limit,
        30,
        queues,
        false,
        '[]',
      ]);
    await client.query('BEGIN');
    await claim();
    await client.query('ROLLBACK');
    plans.length = 0;
    await client.query('BEGIN');
    const { rows } = await claim();
    // Did this claim lock a queue's control row? A row lock sets the row's xmax to our transaction.
    const { rows: locked } = await client.query<{ name: string }>(
      `SELECT name FROM queues WHERE xmax::text = txid_current()::text ORDER BY name`,
    );
    await client.query('ROLLBACK');
    const top = plans.find((p) => p.includes('FROM jobs_claim(')) ?? '';
    const m = /Buffers: shared((?: \w+=\d+)+)/.exec(top);
    if (!m) throw new Error(`no buffer counts in the claim's plan:\n${top}`);
    let buffers = 0;
    for (const [, kind, n] of m[1]!.matchAll(/ (\w+)=(\d+)/g))
      if (kind === 'hit' || kind === 'read') buffers += Number(n);
    return { buffers, claimed: rows[0]!.o_claimed, locked: locked.map((r) => r.name) };
  } finally {
    await client.end();
  }
}

describe.runIf(await postgresAvailable())('per-queue concurrency and rate limits (issue 18)', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('limits');
  });
  afterAll(async () => t?.drop());

  const reset = async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
  };
  const enqueueN = (queue: string, n: number) =>
    t.db.query(
      `INSERT INTO jobs (queue, task_type, payload, run_at)
       SELECT $1, 'example.echo', jsonb_build_object('i', i), now() - interval '1 minute' + i * interval '1 ms'
         FROM generate_series(1, $2::int) i`,
      [queue, n],
    );

  it('8 concurrent claimers never run more than 3 jobs of a queue limited to 3, and the queue drains', async () => {
    // Prepare: 60 jobs in "lim" (max_running 3), 60 in "free" (no limit)
    await reset();
    await setQueueLimits(t.db, 'lim', { maxRunning: 3 });
    await enqueueN('lim', 60);
    await enqueueN('free', 60);
    const clients = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const c = new pg.Client({ connectionString: t.url });
        await c.connect();
        return c;
      }),
    );
    const sampler = new pg.Client({ connectionString: t.url });
    await sampler.connect();
    let maxSampled = 0;
    let samples = 0;
    let done = false;
    const sampling = (async () => {
      while (!done) {
        const { rows } = await sampler.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM jobs WHERE queue = 'lim' AND status = 'running'`,
        );
        maxSampled = Math.max(maxSampled, rows[0]!.n);
        samples++;
      }
    })();
    // Act: each claimer claims up to 5 (all queues or only "lim"), holds its jobs briefly, completes them
    const claimer = async (c: pg.Client, i: number) => {
      for (let round = 0; round < 2000; round++) {
        const { rows } = await c.query<{ o_claimed: Claimed }>(
          'SELECT o_claimed FROM jobs_claim($1, $2, $3, $4, $5, $6)',
          [`w${i}`, 5, 30, i % 2 === 0 ? null : ['lim'], false, '[]'],
        );
        const claimed = rows[0]!.o_claimed;
        if (claimed.length > 0) {
          await new Promise((r) => setTimeout(r, 2));
          await c.query('SELECT jobs_complete($1)', [
            JSON.stringify(claimed.map((j) => ({ id: j.id, token: j.leaseToken, result: null }))),
          ]);
        } else {
          const { rows: left } = await c.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM jobs WHERE status <> 'completed'`,
          );
          if (left[0]!.n === 0) return;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    try {
      await Promise.all(clients.map((c, i) => claimer(c, i)));
    } finally {
      done = true;
      await sampling;
      await sampler.end();
      await Promise.all(clients.map((c) => c.end()));
    }
    // Assess: drained; never above 3, sampled and exactly (the database's own claim and finish
    // times: at each start, how many jobs of the queue had started and not finished)
    const { rows: status } = await t.db.query<{ queue: string; status: string; n: number }>(
      'SELECT queue, status, count(*)::int AS n FROM jobs GROUP BY 1, 2 ORDER BY 1, 2',
    );
    expect(status).toEqual([
      { queue: 'free', status: 'completed', n: 60 },
      { queue: 'lim', status: 'completed', n: 60 },
    ]);
    expect(samples).toBeGreaterThan(0);
    expect(maxSampled).toBeLessThanOrEqual(3);
    const { rows: overlap } = await t.db.query<{ max: number }>(
      `SELECT max((SELECT count(*) FROM jobs o WHERE o.queue = 'lim'
                     AND o.started_at <= j.started_at AND o.finished_at > j.started_at))::int AS max
         FROM jobs j WHERE j.queue = 'lim'`,
    );
    expect(overlap[0]!.max).toBeLessThanOrEqual(3);
    expect(overlap[0]!.max).toBeGreaterThanOrEqual(1);
  });

  it('claims at most N - running, and a claim of only unlimited queues locks no control row and reads what it read before', async () => {
    // Prepare: "b" unlimited with 200 due jobs; "a" with a 20,000-job backlog
    await reset();
    await enqueueN('b', 200);
    await enqueueN('a', 20000);
    // the same control row for "a" before, without a limit (the paused checks read that table)
    await setQueueLimits(t.db, 'a', { maxRunning: 4 });
    await setQueueLimits(t.db, 'a', { maxRunning: null });
    await t.db.query('VACUUM ANALYZE jobs, queues');
    const before = await claimBuffers(t, ['b'], 10);
    const beforeAll = await claimBuffers(t, null, 10);
    // Act: limit "a" to 4
    await setQueueLimits(t.db, 'a', { maxRunning: 4 });
    const after = await claimBuffers(t, ['b'], 10);
    const limited = await claimBuffers(t, ['a'], 10);
    const mixed = await claimBuffers(t, null, 10);
    // Assess: the unlimited claim gets the same ten jobs, locks nothing, and reads at most the
    // small queues table twice more (the limited-queue check: one page each look)
    expect(after.claimed.map((j) => j.id)).toEqual(before.claimed.map((j) => j.id));
    expect(before.locked).toEqual([]);
    expect(after.locked).toEqual([]);
    expect(after.buffers, JSON.stringify({ before, after })).toBeLessThanOrEqual(before.buffers + 2);
    expect(beforeAll.locked).toEqual([]);
    // the limited queue: its control row locked, at most 4 claimed
    expect(limited.locked).toEqual(['a']);
    expect(limited.claimed).toHaveLength(4);
    // all queues: 4 from "a" and the rest from "b"
    expect(mixed.locked).toEqual(['a']);
    expect(mixed.claimed.filter((j) => j.queue === 'a')).toHaveLength(4);
    expect(mixed.claimed.filter((j) => j.queue === 'b')).toHaveLength(6);
    // 2 already running: at most 2 more
    await t.db.query(
      `UPDATE jobs SET status = 'running', locked_at = now(), attempts = 1
        WHERE id IN (SELECT id FROM jobs WHERE queue = 'a' ORDER BY id LIMIT 2)`,
    );
    const two = await claimBuffers(t, ['a'], 10);
    expect(two.claimed).toHaveLength(2);
    // removed: no lock, ten claimed
    await setQueueLimits(t.db, 'a', { maxRunning: null });
    const freed = await claimBuffers(t, ['a'], 10);
    expect(freed.locked).toEqual([]);
    expect(freed.claimed).toHaveLength(10);
    expect(await listQueueLimits(t.db)).toEqual([]);
  });

  it('a claim of all queues skips a limited queue another claimer is serving, instead of waiting for it', async () => {
    // Prepare: "a" limited (with due jobs), "b" unlimited; a claimer holds "a"'s control row
    await reset();
    await enqueueN('a', 20);
    await enqueueN('b', 20);
    await setQueueLimits(t.db, 'a', { maxRunning: 5, rate: 100, burst: 100 });
    const bucket = async () =>
      (await t.db.query(`SELECT tokens, tokens_at FROM queues WHERE name = 'a'`)).rows[0] as unknown;
    const full = await bucket();
    const holder = new pg.Client({ connectionString: t.url });
    const claimer = new pg.Client({ connectionString: t.url });
    await holder.connect();
    await claimer.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM queues WHERE name = 'a' FOR UPDATE`);
      // Act: a claim of every queue, which must not wait (lock_timeout turns a wait into an error)
      await claimer.query(`SET lock_timeout = '5s'`);
      const { rows } = await claimer.query<{ o_claimed: Claimed }>(
        'SELECT o_claimed FROM jobs_claim($1, $2, $3, $4, $5, $6)',
        ['w2', 10, 30, null, false, '[]'],
      );
      // Assess: ten of "b", none of "a", and "a"'s bucket untouched
      expect(rows[0]!.o_claimed.map((j) => j.queue)).toEqual(Array(10).fill('b'));
      await holder.query('ROLLBACK');
      expect(await bucket()).toEqual(full);
      // and once released, "a" is claimed again, within its limit
      const { rows: next } = await claimer.query<{ o_claimed: Claimed }>(
        'SELECT o_claimed FROM jobs_claim($1, $2, $3, $4, $5, $6)',
        ['w2', 10, 30, null, false, '[]'],
      );
      expect(next[0]!.o_claimed.filter((j) => j.queue === 'a')).toHaveLength(5);
    } finally {
      await holder.end();
      await claimer.end();
    }
  });

  it('a queue limited to 50 claims/s (burst 10) never claims more than rate + burst in any second, by the database clock', async () => {
    // Prepare: far more jobs than 10 s of the rate
    await reset();
    await setQueueLimits(t.db, 'r', { rate: 50, burst: 10 });
    await enqueueN('r', 2000);
    const clients = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const c = new pg.Client({ connectionString: t.url });
        await c.connect();
        return c;
      }),
    );
    // Act: 4 claimers claim as fast as they can (up to 20 at once) until the database clock says
    // 10 s have passed since the first claim
    const { rows: t0 } = await t.db.query<{ at: Date }>('SELECT clock_timestamp() AS at');
    const claimer = async (c: pg.Client, i: number) => {
      for (;;) {
        const { rows } = await c.query<{ o_claimed: Claimed; elapsed: number }>(
          `SELECT o_claimed, extract(epoch FROM clock_timestamp() - $7::timestamptz)::float8 AS elapsed
             FROM jobs_claim($1, $2, $3, $4, $5, $6)`,
          [`w${i}`, 20, 300, ['r'], false, '[]', t0[0]!.at],
        );
        if (rows[0]!.elapsed > 10) return;
        if (rows[0]!.o_claimed.length === 0) await new Promise((r) => setTimeout(r, 3));
      }
    };
    try {
      await Promise.all(clients.map((c, i) => claimer(c, i)));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    // Assess: for every claim time s (started_at: taken under the control row's lock when the
    // tokens were spent), the claims in [s, s + 1 s) are at most rate + burst
    const { rows } = await t.db.query<{ worst: number; total: number; span: number }>(
      `SELECT (SELECT max((SELECT count(*) FROM jobs o WHERE o.queue = 'r' AND o.status = 'running'
                            AND o.started_at >= j.started_at AND o.started_at < j.started_at + interval '1 second'))
                 FROM jobs j WHERE j.queue = 'r' AND j.status = 'running')::int AS worst,
              (SELECT count(*) FROM jobs WHERE queue = 'r' AND status = 'running')::int AS total,
              (SELECT extract(epoch FROM max(started_at) - min(started_at)) FROM jobs
                WHERE queue = 'r' AND status = 'running')::float8 AS span`,
    );
    const { worst, total, span } = rows[0]!;
    expect(worst).toBeLessThanOrEqual(60);
    // the bucket bound over the whole run: burst + rate × span (and the limiter did let claims through)
    expect(total).toBeLessThanOrEqual(10 + Math.ceil(50 * span) + 1);
    expect(total).toBeGreaterThan(50);
  });

  it('refuses bad limits with a clear message and stores nothing', async () => {
    await reset();
    for (const [change, message] of [
      [{ maxRunning: -1 }, /maxRunning must be an integer from 1/],
      [{ maxRunning: 1.5 }, /maxRunning must be an integer/],
      [{ rate: -5 }, /rate must be a number of jobs per second above 0/],
      [{ rate: 0 }, /rate must be/],
      [{ rate: 10, burst: 0 }, /burst must be an integer/],
      [{ burst: 3 }, /give maxRunning and\/or rate/],
      [{}, /give maxRunning and\/or rate/],
    ] as const) {
      await expect(setQueueLimits(t.db, 'q', change)).rejects.toThrow(message);
    }
    await expect(setQueueLimits(t.db, 'bad name!', { maxRunning: 1 })).rejects.toThrow(/queue name/);
    const { rows } = await t.db.query('SELECT * FROM queues');
    expect(rows).toEqual([]);
    // the database refuses them too (a hand-written call)
    await expect(
      t.db.query(`SELECT * FROM queue_set_limits('q', true, -1, false, null, null)`),
    ).rejects.toThrow(/max_running/);
  });
});
