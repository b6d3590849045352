import pg from 'pg';

/**
 * The baseline: what a hand-written SKIP LOCKED queue does with no fencing, no counters, no
 * leases, on a minimal table. Our engine's drain is reported as a fraction of this, same run.
 */
const SCHEMA = `
  CREATE TABLE raw_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_type text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'queued',
    locked_at timestamptz,
    finished_at timestamptz
  );
  CREATE INDEX raw_jobs_queued_idx ON raw_jobs (id) WHERE status = 'queued';`;

export async function rawSetup(url: string, jobs: number): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(SCHEMA);
    await c.query(
      `INSERT INTO raw_jobs (task_type, payload)
       SELECT 'example.echo', '{}'::jsonb FROM generate_series(1, $1::int)`,
      [jobs],
    );
    await c.query('VACUUM ANALYZE raw_jobs');
  } finally {
    await c.end();
  }
}

const CLAIM = `
  UPDATE raw_jobs SET status = 'running', locked_at = now()
  WHERE id IN (
    SELECT id FROM raw_jobs WHERE status = 'queued' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
  )
  RETURNING id`;
const COMPLETE = `UPDATE raw_jobs SET status = 'completed', finished_at = now() WHERE id = ANY($1::bigint[])`;

/**
 * `loops` claim→complete loops at `batch`, each on its own connection; resolves with jobs done.
 * A loop ends when a claim comes back empty and no job is queued.
 * `onClaim` gets each non-empty claim statement's latency in ms (scenario d's reference);
 * `onDrained` is called once every loop has ended, before the connections close.
 */
export async function rawDrain(
  url: string,
  loops: number,
  batch: number,
  onClaim?: (ms: number) => void,
  onDrained?: () => void,
): Promise<number> {
  const clients = await Promise.all(
    Array.from({ length: loops }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }),
  );
  let done = 0;
  try {
    await Promise.all(
      clients.map(async (c) => {
        for (;;) {
          const t0 = performance.now();
          const { rows } = await c.query<{ id: string }>(CLAIM, [batch]);
          if (rows.length === 0) {
            const left = await c.query<{ left: boolean }>(
              "SELECT EXISTS (SELECT 1 FROM raw_jobs WHERE status = 'queued') AS left",
            );
            if (!left.rows[0]!.left) return;
            continue;
          }
          onClaim?.(performance.now() - t0);
          await c.query(COMPLETE, [rows.map((r) => r.id)]);
          done += rows.length;
        }
      }),
    );
    onDrained?.();
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
  return done;
}

/** The raw enqueue: the same rows enqueueMany writes, as one INSERT … SELECT FROM unnest(…). */
export async function rawUnnestEnqueue(
  url: string,
  reqs: ReadonlyArray<{ type: string; payload?: unknown }>,
): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('SELECT 1');
    const t0 = performance.now();
    const types = reqs.map((r) => r.type);
    const payloads = reqs.map((r) => JSON.stringify(r.payload ?? null));
    await c.query(
      `INSERT INTO jobs (queue, task_type, payload, priority, max_attempts)
       SELECT 'default', t, p, 0, 5 FROM unnest($1::text[], $2::jsonb[]) AS u(t, p)`,
      [types, payloads],
    );
    return (performance.now() - t0) / 1000;
  } finally {
    await c.end();
  }
}
