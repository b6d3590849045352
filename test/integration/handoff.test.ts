import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { claimJobs, completeJobs, enqueueMany } from '../../functions/engine/index.ts';
import { completeAndClaim } from '../../functions/engine/sql/completeAndClaim.ts';
import { isValueError } from '../../functions/engine/sql/completeJobs.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

// The hand-off without jsonb (issue 21): the claim answers one row of parallel arrays and the
// completion takes parallel arrays; the previous release's jsonb signatures keep working.
const options = { workerId: 'w', leaseSeconds: 30, queues: [] as string[] };

describe.runIf(await postgresAvailable())('the claim and completion hand-off as arrays', () => {
  let t: TestSchema;
  beforeAll(async () => {
    t = await createTestSchema('handoff');
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
  });

  it('claims in claim order (priority DESC, run_at, id), each job with its own queue, type, payload, attempt and token', async () => {
    // Prepare: three priorities over two queues, payloads of several shapes
    await enqueueMany(t.db, [
      { type: 'low', queue: 'a', payload: { s: 'x "quoted" \\ line\n' }, priority: 0, maxAttempts: 3 },
      { type: 'high', queue: 'b', payload: [1, null, { n: 2 }], priority: 5 },
      { type: 'mid', queue: 'a', payload: 'text', priority: 1 },
      { type: 'high2', queue: 'a', payload: {}, priority: 5 },
    ]);
    // Act
    const claimed = await claimJobs(t.db, { ...options, limit: 10 });
    // Assess
    expect(claimed.map((j) => [j.type, j.queue, j.payload])).toEqual([
      ['high', 'b', [1, null, { n: 2 }]],
      ['high2', 'a', {}],
      ['mid', 'a', 'text'],
      ['low', 'a', { s: 'x "quoted" \\ line\n' }],
    ]);
    const { rows } = await t.db.query<{ id: string; lease_token: string; max_attempts: number }>(
      "SELECT id, lease_token, max_attempts FROM jobs WHERE task_type = 'low'",
    );
    expect(claimed[3]).toEqual({
      id: rows[0]!.id,
      queue: 'a',
      type: 'low',
      payload: { s: 'x "quoted" \\ line\n' },
      attempt: 1,
      maxAttempts: 3,
      leaseToken: rows[0]!.lease_token,
      leaseSeconds: 30,
    });
    expect(typeof claimed[0]!.id).toBe('string');
    expect(await claimJobs(t.db, { ...options, limit: 10 })).toEqual([]);
  });

  it('a riding completion completes only the jobs whose lease it holds, stores each result, and the claim after it takes new jobs', async () => {
    // Prepare: four running jobs, one of them re-leased since (a stale token)
    await enqueueMany(
      t.db,
      Array.from({ length: 6 }, (_, i) => ({ type: 't', payload: { i } })),
    );
    const first = await claimJobs(t.db, { ...options, limit: 4 });
    await t.db.query('UPDATE jobs SET lease_token = lease_token + 1 WHERE id = $1', [first[3]!.id]);
    // Act
    const { completed, claimed } = await completeAndClaim(
      t.db,
      first.map((j, i) => ({ id: j.id, leaseToken: j.leaseToken, resultJson: JSON.stringify({ r: i }) })),
      { ...options, limit: 10 },
    );
    // Assess
    expect([...completed].sort()).toEqual(
      first
        .slice(0, 3)
        .map((j) => j.id)
        .sort(),
    );
    expect(claimed.map((j) => j.payload)).toEqual([{ i: 4 }, { i: 5 }]);
    const { rows } = await t.db.query<{ id: string; status: string; result: unknown }>(
      'SELECT id, status, result FROM jobs WHERE id = ANY ($1::bigint[]) ORDER BY id',
      [first.map((j) => j.id)],
    );
    expect(rows.map((r) => [r.status, r.result])).toEqual([
      ['completed', { r: 0 }],
      ['completed', { r: 1 }],
      ['completed', { r: 2 }],
      ['running', null],
    ]);
  });

  it("the previous release's jobs_claim(…, jsonb) and jobs_complete(jsonb) still claim, complete and fence", async () => {
    // Prepare
    await enqueueMany(
      t.db,
      Array.from({ length: 3 }, (_, i) => ({ type: 't', payload: { i }, priority: i })),
    );
    // Act: the old claim, then the old completion (one stale token), then the old riding completion
    const { rows: claimRows } = await t.db.query<{ o_claimed: Array<Record<string, unknown>> }>(
      "SELECT o_claimed FROM jobs_claim('old', 2, 30, NULL, false, '[]')",
    );
    const old = claimRows[0]!.o_claimed;
    const { rows: doneRows } = await t.db.query<{ ids: string | null }>('SELECT jobs_complete($1) AS ids', [
      JSON.stringify([
        { id: Number(old[0]!.id), token: Number(old[0]!.leaseToken), result: { ok: 1 } },
        { id: Number(old[1]!.id), token: Number(old[1]!.leaseToken) + 1, result: null },
      ]),
    ]);
    const { rows: rideRows } = await t.db.query<{ o_claimed: unknown[]; o_completed: string | null }>(
      'SELECT o_claimed, o_completed FROM jobs_claim($1, $2, $3, $4, $5, $6)',
      [
        'old',
        5,
        30,
        null,
        false,
        JSON.stringify([{ id: Number(old[1]!.id), token: Number(old[1]!.leaseToken) }]),
      ],
    );
    // Assess: the jsonb shape of ClaimedJob, in claim order; the fence held
    expect(old).toEqual([
      expect.objectContaining({
        type: 't',
        queue: 'default',
        payload: { i: 2 },
        attempt: 1,
        maxAttempts: 5,
        leaseSeconds: 30,
      }),
      expect.objectContaining({ payload: { i: 1 } }),
    ]);
    expect(typeof old[0]!.id).toBe('string');
    expect(typeof old[0]!.leaseToken).toBe('string');
    expect(doneRows[0]!.ids).toBe(String(old[0]!.id));
    expect(rideRows[0]!.o_completed).toBe(String(old[1]!.id));
    expect(rideRows[0]!.o_claimed).toEqual([expect.objectContaining({ payload: { i: 0 } })]);
    const { rows: empty } = await t.db.query<{ o_claimed: unknown[]; o_completed: string | null }>(
      "SELECT o_claimed, o_completed FROM jobs_claim('old', 5, 30, NULL, false, '[]')",
    );
    expect(empty[0]).toEqual({ o_claimed: [], o_completed: null });
  });

  it('a result jsonb refuses fails the batch statement with a value error and completes nothing, so the consumer can retry job by job', async () => {
    // Prepare
    await enqueueMany(t.db, [{ type: 't' }, { type: 't' }]);
    const [a, b] = await claimJobs(t.db, { ...options, limit: 2 });
    // Act: NUL, which jsonb cannot store, in the second job's result (storableResult would catch it)
    const err = await completeJobs(t.db, [
      { id: a!.id, leaseToken: a!.leaseToken, resultJson: '{"ok":true}' },
      { id: b!.id, leaseToken: b!.leaseToken, resultJson: '"\\u0000"' },
    ]).catch((e: unknown) => e);
    // Assess
    expect(isValueError(err)).toBe(true);
    const { rows } = await t.db.query<{ n: string }>(
      "SELECT count(*) AS n FROM jobs WHERE status = 'running'",
    );
    expect(rows[0]!.n).toBe('2');
    expect(
      await completeJobs(t.db, [{ id: a!.id, leaseToken: a!.leaseToken, resultJson: '{"ok":true}' }]),
    ).toEqual(new Set([a!.id]));
  });

  it('the completion inside its function is one primary-key probe per id: a nested loop that reads the unnest once', async () => {
    // Prepare: a table large enough that a scan would show, analyzed before any job ran (the
    // statistics say no row is running), 400 jobs running; plans come back as notices
    await t.db.query("INSERT INTO jobs (task_type, payload) SELECT 't', '{}' FROM generate_series(1, 20000)");
    await t.db.query('ANALYZE jobs');
    const claimed = await claimJobs(t.db, { ...options, limit: 400 });
    const client = new pg.Client({ connectionString: t.url });
    const plans: string[] = [];
    client.on('notice', (n) => plans.push(n.message ?? ''));
    await client.connect();
    try {
      await client.query("LOAD 'auto_explain'");
      for (const set of [
        'auto_explain.log_min_duration = 0',
        'auto_explain.log_analyze = on',
        'auto_explain.log_timing = off',
        'auto_explain.log_nested_statements = on',
        'auto_explain.log_level = notice',
        'client_min_messages = notice',
      ])
        await client.query(`SET ${set}`);
      // Act: the function as the consumer calls it, in a transaction rolled back
      await client.query('BEGIN');
      const { rows } = await client.query<{ ids: string[] }>(
        'SELECT jobs_complete_batch($1, $2, $3) AS ids',
        [claimed.map((j) => j.id), claimed.map((j) => j.leaseToken), claimed.map(() => 'null')],
      );
      await client.query('ROLLBACK');
      // Assess
      expect(rows[0]!.ids).toHaveLength(400);
    } finally {
      await client.end();
    }
    const plan = plans.find((p) => p.includes('WITH done AS')) ?? '';
    expect(plan).toMatch(/Nested Loop {2}\([^)]*\) \(actual rows=400 loops=1\)/);
    expect(plan).toMatch(/Function Scan on u {2}\([^)]*\) \(actual rows=400 loops=1\)/);
    expect(plan).toMatch(
      /Index Scan using jobs_pkey on jobs_live d {2}\([^)]*\) \(actual rows=1 loops=400\)/,
    );
  });
});
