import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  cancelJob,
  claimJobs,
  compactCounters,
  completeJobs,
  type Db,
  enqueue,
  enqueueMany,
  failJob,
  getJob,
  loadMigrations,
  migrate,
  pauseQueue,
  pruneFinished,
  type Queryable,
  readCounters,
  releaseJobs,
  renewLeases,
  requeueExpiredLeases,
} from '../../functions/engine/index.ts';
import { createDb } from '../../functions/platform/db.ts';
import { migrationsDir } from '../../functions/platform/paths.ts';
import { expectCountersMatchTable, expireLease, rowSnapshot } from '../helpers/invariants.ts';
import { createTestSchema, DATABASE_URL, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

const INSUFFICIENT_PRIVILEGE = '42501';

/** Polls until backend `pid` waits on a lock, so the race under test really happens. */
async function waitUntilBlocked(observer: pg.Client, pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await observer.query<{ waiting: boolean }>(
      `SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = $1`,
      [pid],
    );
    if (rows[0]?.waiting) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`backend ${pid} never blocked on the concurrent role creation`);
}
const claimOpts = { workerId: 'w1', limit: 10, leaseSeconds: 30, queues: [] as string[] };

describe.runIf(await postgresAvailable())('least-privilege database roles (migrations 0004, 0009)', () => {
  let t: TestSchema;

  /** Runs `fn` as `role` (SET LOCAL ROLE: it ends with the transaction) and commits. */
  const asRole = <T>(role: string, fn: (tx: Queryable) => Promise<T>): Promise<T> =>
    t.db.transaction(async (tx) => {
      await tx.query(`SET LOCAL ROLE ${role}`);
      return fn(tx);
    });
  /** A transaction as a Db, so enqueueMany (which may open one itself) runs inside asRole's. */
  const txDb = (tx: Queryable): Db => ({
    query: (text, values) => tx.query(text, values),
    transaction: (fn) => fn(tx),
    end: async () => {},
  });
  const denied = (role: string, sql: string) =>
    expect(asRole(role, (tx) => tx.query(sql))).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE });

  beforeAll(async () => {
    t = await createTestSchema('roles');
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas');
  });

  it('creates the api, consumer and reaper roles as group roles nobody can log in as', async () => {
    // Act
    const { rows } = await t.db.query<{ rolname: string; rolcanlogin: boolean; rolsuper: boolean }>(
      `SELECT rolname, rolcanlogin, rolsuper FROM pg_roles
       WHERE rolname IN ('dte_api', 'dte_consumer', 'dte_reaper') ORDER BY rolname`,
    );
    // Assess
    expect(rows).toEqual([
      { rolname: 'dte_api', rolcanlogin: false, rolsuper: false },
      { rolname: 'dte_consumer', rolcanlogin: false, rolsuper: false },
      { rolname: 'dte_reaper', rolcanlogin: false, rolsuper: false },
    ]);
  });

  it('lets the api role enqueue, read and cancel jobs, counting them in the ledger', async () => {
    // Act
    const { job } = await asRole('dte_api', (tx) => enqueue(tx, { type: 'example.echo', payload: { a: 1 } }));
    const read = await asRole('dte_api', (tx) => getJob(tx, job.id));
    const cancelled = await asRole('dte_api', (tx) => cancelJob(tx, job.id, 'not needed', 'tester'));
    const paused = await asRole('dte_api', (tx) => tx.query('SELECT paused FROM queues'));
    // Assess
    expect(read?.id).toBe(job.id);
    expect(cancelled?.status).toBe('failed');
    expect(paused.rows).toEqual([]);
    const counters = await readCounters(t.db);
    expect(counters.totals).toMatchObject({ submitted: 1, failed: 1 });
  });

  it('denies the api role deleting, truncating or dropping jobs and touching the ledger or migrations', async () => {
    await denied('dte_api', 'DELETE FROM jobs');
    await denied('dte_api', 'TRUNCATE jobs');
    await denied('dte_api', 'DROP TABLE jobs');
    await denied('dte_api', 'SELECT * FROM job_counter_deltas');
    await denied('dte_api', 'UPDATE job_counter_deltas SET submitted = 0');
    await denied(
      'dte_api',
      `INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'x', 'x')`,
    );
    await denied('dte_api', `INSERT INTO queues (name, paused) VALUES ('q', true)`);
  });

  it('lets only the consumer role claim and complete, and only the api role enqueue, through the functions of migrations 0006 and 0007', async () => {
    for (const role of ['dte_api', 'dte_reaper']) {
      await denied(role, `SELECT * FROM jobs_claim('w', 1, 30, NULL, false, '[]')`);
      await denied(role, `SELECT jobs_complete('[]')`);
    }
    for (const role of ['dte_consumer', 'dte_reaper']) {
      await denied(role, `SELECT * FROM jobs_enqueue('[{"type": "example.echo"}]', 5, false)`);
      await denied(
        role,
        `SELECT * FROM jobs_enqueue_columns(ARRAY['example.echo'], '[{}]', NULL, NULL, NULL, NULL, NULL, 5, false)`,
      );
    }
    const enqueued = await asRole('dte_api', (tx) =>
      tx.query<{ o_ids: string }>(
        `SELECT * FROM jobs_enqueue_columns(ARRAY['example.echo'], '[{}]', NULL, NULL, NULL, NULL, NULL, 5, false)`,
      ),
    );
    expect(enqueued.rows[0]!.o_ids).toMatch(/^\d+$/);
    const answer = await asRole('dte_consumer', (tx) =>
      tx.query<{ o_claimed: unknown[] }>(
        `SELECT * FROM jobs_claim('w', 1, 30, ARRAY['no-such-queue'], false, '[]')`,
      ),
    );
    expect(answer.rows[0]!.o_claimed).toEqual([]);
  });

  it('lets the consumer role claim, renew, release, complete and fail jobs', async () => {
    // Prepare
    for (let i = 0; i < 3; i++) await enqueue(t.db, { type: 'example.echo', payload: { i } });
    // Act
    const claimed = await asRole('dte_consumer', (tx) => claimJobs(tx, claimOpts));
    const [a, b, c] = claimed.map((j) => ({ id: j.id, leaseToken: j.leaseToken }));
    const renewed = await asRole('dte_consumer', (tx) => renewLeases(tx, [a!, b!, c!]));
    const completed = await asRole('dte_consumer', (tx) =>
      completeJobs(tx, [{ ...a!, result: { ok: true } }]),
    );
    const failed = await asRole('dte_consumer', (tx) =>
      failJob(tx, {
        ...b!,
        error: { message: 'boom', name: 'Error', attempt: 1, worker: 'w1' },
        permanent: true,
        backoffBaseSeconds: 2,
        maxBackoffSeconds: 600,
      }),
    );
    const released = await asRole('dte_consumer', (tx) => releaseJobs(tx, [c!], 'deadline'));
    // Assess
    expect(claimed).toHaveLength(3);
    expect(renewed.size).toBe(3);
    expect(completed.has(a!.id)).toBe(true);
    expect(failed).not.toBeNull();
    expect(released.has(c!.id)).toBe(true);
    expect((await getJob(t.db, a!.id))?.status).toBe('completed');
    expect((await getJob(t.db, b!.id))?.status).toBe('failed');
    expect((await getJob(t.db, c!.id))?.status).toBe('queued');
  });

  it('denies the consumer role enqueuing, deleting, dropping, altering and pausing', async () => {
    await denied('dte_consumer', `INSERT INTO jobs (task_type) VALUES ('example.echo')`);
    await denied('dte_consumer', 'DELETE FROM jobs');
    await denied('dte_consumer', 'DROP TABLE jobs');
    await denied('dte_consumer', 'ALTER TABLE jobs ADD COLUMN extra int');
    await denied('dte_consumer', 'DELETE FROM job_counter_deltas');
    await expect(asRole('dte_consumer', (tx) => pauseQueue(tx, 'q', 'consumer'))).rejects.toMatchObject({
      code: INSUFFICIENT_PRIVILEGE,
    });
  });

  it('lets the reaper role requeue expired leases, prune finished jobs and compact counters', async () => {
    // Prepare
    const { job: stuck } = await enqueue(t.db, { type: 'example.echo', payload: {} });
    const { job: old } = await enqueue(t.db, { type: 'example.echo', payload: {} });
    await claimJobs(t.db, claimOpts);
    await expireLease(t.db, stuck.id);
    await t.db.query(
      `UPDATE jobs SET status = 'completed', finished_at = now() - interval '30 days' WHERE id = $1`,
      [old.id],
    );
    await t.db.query(`UPDATE job_counter_deltas SET at = now() - interval '1 hour'`);
    // Act
    const recovery = await asRole('dte_reaper', (tx) => requeueExpiredLeases(tx, 100));
    const pruned = await asRole('dte_reaper', (tx) => pruneFinished(tx, 7, 100));
    const compacted = await asRole('dte_reaper', (tx) => compactCounters(tx));
    const snapshot = await asRole('dte_reaper', (tx) => readCounters(tx));
    // Assess
    expect(recovery.requeued).toBe(1);
    expect(pruned).toBe(1);
    expect(compacted).toBeGreaterThan(0);
    expect(snapshot.totals).toMatchObject({ submitted: 2, completed: 1, recovered: 1 });
    expect(await getJob(t.db, old.id)).toBeNull();
  });

  it('denies the reaper role enqueuing, truncating, dropping and writing the migration record', async () => {
    await denied('dte_reaper', `INSERT INTO jobs (task_type) VALUES ('example.echo')`);
    await denied('dte_reaper', 'TRUNCATE job_counter_deltas');
    await denied('dte_reaper', 'DROP TABLE job_counter_deltas');
    await denied('dte_reaper', 'DELETE FROM schema_migrations');
    await denied('dte_reaper', `UPDATE queues SET paused = true`);
  });

  it("grants no runtime role anything on the audit of manual changes (only the owner's tools write it)", async () => {
    // Act
    const { rows } = await t.db.query<{ grantee: string; privilege_type: string }>(
      `SELECT grantee, privilege_type FROM information_schema.role_table_grants
       WHERE table_schema = current_schema() AND table_name = 'job_audit' AND grantee LIKE 'dte\\_%'`,
    );
    // Assess
    expect(rows).toEqual([]);
  });

  /** A job claimed by the owner: running under lease token 1. */
  const runningJob = async () => {
    await enqueue(t.db, { type: 'example.echo', payload: { n: 1 } });
    const [claimed] = await claimJobs(t.db, { ...claimOpts, limit: 1 });
    return claimed!;
  };
  /** Writes that would forge state: every one must fail with 42501 for `role`. */
  const forgeries = (id: string) => [
    `INSERT INTO jobs (task_type, status) VALUES ('example.echo', 'completed')`,
    `INSERT INTO jobs (task_type, status, result, finished_at) VALUES ('example.echo', 'failed', '{}', now())`,
    `INSERT INTO jobs (task_type, attempts) VALUES ('example.echo', 1)`,
    `INSERT INTO jobs (task_type, lease_token, locked_at) VALUES ('example.echo', 7, now())`,
    `INSERT INTO jobs (task_type, created_by) VALUES ('example.echo', 'someone-else')`,
    `UPDATE jobs SET status = 'completed', result = '{"forged": true}' WHERE id = ${id}`,
    `UPDATE jobs SET status = 'failed' WHERE id = ${id}`,
    `UPDATE jobs SET payload = '{"evil": true}' WHERE id = ${id}`,
    `UPDATE jobs SET lease_token = lease_token + 1 WHERE id = ${id}`,
    `UPDATE jobs SET queue = 'other', max_attempts = 1000 WHERE id = ${id}`,
    `UPDATE jobs SET created_by = 'someone-else' WHERE id = ${id}`,
    `DELETE FROM jobs WHERE id = ${id}`,
    `INSERT INTO job_counter_deltas (completed) VALUES (1000000)`,
    `INSERT INTO job_counter_deltas (submitted, at, compacted) VALUES (5, '-infinity', true)`,
    `UPDATE job_counter_deltas SET completed = completed + 1`,
    `DELETE FROM job_counter_deltas`,
    `INSERT INTO job_audit (action, actor) VALUES ('cancel', 'alice')`,
  ];

  for (const role of ['dte_api', 'dte_reaper']) {
    it(`denies ${role} every write that would forge a job or a counter, and leaves both untouched`, async () => {
      // Prepare
      const job = await runningJob();
      const before = await rowSnapshot(t.db, job.id);
      // Act + Assess: each statement in its own transaction, each refused.
      for (const sql of forgeries(job.id)) await denied(role, sql);
      // Assess
      expect(await rowSnapshot(t.db, job.id)).toBe(before);
      expect((await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs')).rows[0]!.n).toBe(1);
      await expectCountersMatchTable(t.db);
    });
  }

  it('denies dte_consumer writing the counter deltas (only the counting triggers write them)', async () => {
    await denied('dte_consumer', `INSERT INTO job_counter_deltas (completed) VALUES (1000000)`);
    await denied('dte_consumer', `UPDATE job_counter_deltas SET completed = completed + 1`);
  });

  it('lets each role run only its own functions of migration 0009', async () => {
    const apiOnly = [
      `SELECT * FROM jobs_enqueue_unkeyed(ARRAY['example.echo'], '[{}]', NULL, NULL, NULL, NULL, NULL, 5, NULL, false)`,
      `SELECT * FROM jobs_enqueue_keyed(ARRAY['example.echo'], '[{}]', NULL, NULL, NULL, NULL, NULL, 5, NULL, ARRAY['k'], ARRAY['h'])`,
      `SELECT * FROM jobs_cancel(1, 'r', 'a', false, NULL)`,
    ];
    const reaperOnly = [
      'SELECT jobs_requeue_expired(10)',
      'SELECT jobs_prune_finished(0, 10)',
      'SELECT job_counters_compact(0, 0)',
    ];
    for (const sql of apiOnly) for (const role of ['dte_consumer', 'dte_reaper']) await denied(role, sql);
    for (const sql of reaperOnly) for (const role of ['dte_api', 'dte_consumer']) await denied(role, sql);
  });

  it('holds the grants of migration 0009: no runtime role may update or delete jobs or write the deltas, the api inserts only the enqueue columns', async () => {
    // Act
    const { rows } = await t.db.query<{ role: string; privilege: string }>(
      `SELECT r AS role, p AS privilege
       FROM unnest(ARRAY['dte_api', 'dte_reaper']) r, unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
       WHERE has_table_privilege(r, 'jobs', p)
       UNION ALL
       SELECT r, 'deltas ' || p
       FROM unnest(ARRAY['dte_api', 'dte_consumer', 'dte_reaper']) r, unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
       WHERE has_table_privilege(r, 'job_counter_deltas', p)
       UNION ALL
       SELECT r, 'column ' || c || ' ' || p
       FROM unnest(ARRAY['dte_api', 'dte_reaper']) r, unnest(ARRAY['UPDATE', 'INSERT']) p,
            (SELECT attname::text AS c FROM pg_attribute
              WHERE attrelid = 'jobs'::regclass AND attnum > 0 AND NOT attisdropped) cols
       WHERE has_column_privilege(r, 'jobs', c, p)
       ORDER BY 1, 2`,
    );
    // Assess: the enqueue columns (an app's transactional INSERT names them), nothing that sets state.
    expect(rows).toEqual(
      [
        'idempotency_key',
        'max_attempts',
        'payload',
        'priority',
        'queue',
        'request_hash',
        'run_at',
        'task_type',
      ].map((c) => ({ role: 'dte_api', privilege: `column ${c} INSERT` })),
    );
  });

  it('runs every SECURITY DEFINER function of the schema with a search_path fixed to the schema, and none is open to PUBLIC', async () => {
    // Act
    const { rows } = await t.db.query<{
      name: string;
      path: string | null;
      public: boolean;
      trigger: boolean;
    }>(
      `SELECT p.proname AS name,
              (SELECT substr(c, length('search_path=') + 1) FROM unnest(p.proconfig) c
                WHERE c LIKE 'search_path=%') AS path,
              has_function_privilege('public', p.oid, 'EXECUTE') AS public,
              p.prorettype = 'trigger'::regtype AS trigger
       FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace AND p.prosecdef
       ORDER BY 1`,
    );
    // Assess
    const names = rows.map((r) => r.name);
    for (const f of [
      'job_counters_compact',
      'jobs_cancel',
      'jobs_count_inserted',
      'jobs_count_updated',
      'jobs_enqueue',
      'jobs_enqueue_columns',
      'jobs_enqueue_keyed',
      'jobs_enqueue_unkeyed',
      'jobs_prune_finished',
      'jobs_requeue_expired',
    ]) {
      expect(names).toContain(f);
    }
    for (const r of rows) {
      // The schema itself, pg_catalog and pg_temp only, pg_temp (when named) last: no public, no $user.
      const path = (r.path ?? '').split(',').map((s) => s.trim().replace(/^"|"$/g, ''));
      expect(path, r.name).toContain(t.schema);
      expect(
        path.filter((s) => ![t.schema, 'pg_catalog', 'pg_temp'].includes(s)),
        r.name,
      ).toEqual([]);
      if (path.includes('pg_temp')) expect(path.at(-1), r.name).toBe('pg_temp');
      if (!r.trigger) expect(r.public, r.name).toBe(false);
    }
  });

  it('counts exactly even when the caller shadows the deltas table with a temporary one', async () => {
    // Prepare: a temporary table is searched first on an unqualified name, unless the function's
    // search_path puts pg_temp last.
    // Act
    await asRole('dte_api', async (tx) => {
      await tx.query(
        `CREATE TEMP TABLE job_counter_deltas (at timestamptz DEFAULT now(), compacted boolean DEFAULT false,
           submitted bigint DEFAULT 0, completed bigint DEFAULT 0, failed bigint DEFAULT 0,
           recovered bigint DEFAULT 0) ON COMMIT DROP`,
      );
      await tx.query(`CREATE TEMP TABLE jobs (LIKE ${t.schema}.jobs INCLUDING DEFAULTS) ON COMMIT DROP`);
      const [, keyed] = await enqueueMany(txDb(tx), [
        { type: 'example.echo' },
        { type: 'example.echo', idempotencyKey: 'k' },
      ]);
      await cancelJob(tx, keyed!.job.id, 'r', 'a');
    });
    // Assess
    expect((await readCounters(t.db)).totals).toMatchObject({ submitted: 2, failed: 1 });
    await expectCountersMatchTable(t.db);
  });

  it('lets the api role enqueue keyed batches, replay them and insert a keyed job by hand, a duplicate key refused', async () => {
    // Act
    const first = await asRole('dte_api', (tx) =>
      enqueueMany(txDb(tx), [{ type: 'example.echo', idempotencyKey: 'a' }, { type: 'example.echo' }]),
    );
    const replay = await asRole('dte_api', (tx) =>
      enqueue(tx, { type: 'example.echo', idempotencyKey: 'a' }),
    );
    // A keyed INSERT by hand, with the columns the api may insert. Since 0022 the key's
    // uniqueness is job_keys' (the insert trigger writes it): ON CONFLICT on jobs has no arbiter.
    const byHand = (key: string) =>
      asRole('dte_api', (tx) =>
        tx.query<{ id: string }>(
          `INSERT INTO jobs (queue, task_type, payload, priority, run_at, max_attempts, idempotency_key, request_hash)
           VALUES ('default', 'example.echo', '{}', 0, now(), 5, $1, 'h')
           RETURNING id`,
          [key],
        ),
      );
    const old = await byHand('old');
    const twice = await byHand('a').then(
      () => 'inserted',
      (err: { code?: string; constraint?: string }) => `${err.code} ${err.constraint}`,
    );
    // Assess
    expect(first.map((r) => r.created)).toEqual([true, true]);
    expect(replay).toMatchObject({ created: false, job: { id: first[0]!.job.id } });
    expect(old.rows).toHaveLength(1);
    expect((await getJob(t.db, old.rows[0]!.id))?.status).toBe('queued');
    expect(twice).toBe('23505 job_keys_pkey');
    await expectCountersMatchTable(t.db);
  });

  it('lets the api role cancel a running job through jobs_cancel, fencing out its worker', async () => {
    // Prepare
    const job = await runningJob();
    // Act
    const cancelled = await asRole('dte_api', (tx) => cancelJob(tx, job.id, 'stop', 'tester'));
    const late = await completeJobs(t.db, [
      { id: job.id, leaseToken: job.leaseToken, result: { late: true } },
    ]);
    // Assess
    expect(cancelled).toMatchObject({
      status: 'failed',
      last_error: { name: 'Cancelled', previousStatus: 'running' },
    });
    expect(late.size).toBe(0);
    await expectCountersMatchTable(t.db);
  });

  it('applies every migration as a non-superuser owner with only CREATEROLE, as the RDS master user is', async () => {
    // Prepare: an owner like RDS's master user (CREATEROLE, not superuser) and an empty schema it owns.
    const suffix = randomBytes(4).toString('hex');
    const owner = `dte_owner_${suffix}`;
    const prefix = `dte_o${suffix}_`;
    const schema = `roles_owner_${suffix}`;
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE ROLE ${owner} NOLOGIN CREATEROLE`);
    await admin.query(`CREATE SCHEMA ${schema} AUTHORIZATION ${owner}`);
    const files = loadMigrations(migrationsDir()).map((f) => ({
      ...f,
      sql: f.sql.replace(/\bdte_/g, prefix),
    }));
    const pool = createDb({ connectionString: DATABASE_URL, searchPath: schema, max: 1 });
    const asOwner = <T>(fn: (tx: Queryable) => Promise<T>) =>
      pool.transaction(async (tx) => {
        await tx.query(`SET LOCAL ROLE ${owner}`);
        return fn(tx);
      });
    const ownerDb: Db = {
      query: (text, values) => asOwner((tx) => tx.query(text, values)),
      transaction: asOwner,
      end: () => pool.end(),
    };
    try {
      // Act: the real runner, every file, each in its own transaction as the owner.
      const result = await migrate(ownerDb, files);
      // Assess
      const { rows } = await admin.query<{ api: boolean; reaper: boolean; superuser: boolean }>(
        `SELECT has_column_privilege($1, $3, 'task_type', 'INSERT')
                  AND NOT has_column_privilege($1, $3, 'status', 'INSERT') AS api,
                has_function_privilege($2, $5, 'EXECUTE') AND NOT has_table_privilege($2, $3, 'DELETE') AS reaper,
                (SELECT rolsuper FROM pg_roles WHERE rolname = $4) AS superuser`,
        [
          `${prefix}api`,
          `${prefix}reaper`,
          `${schema}.jobs`,
          owner,
          `${schema}.jobs_prune_finished(float8, integer)`,
        ],
      );
      expect(rows[0]).toEqual({ api: true, reaper: true, superuser: false });
      expect(result.applied).toEqual(files.map((f) => f.file));
    } finally {
      await pool.end();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      for (const r of ['api', 'consumer', 'reaper']) await admin.query(`DROP ROLE IF EXISTS ${prefix}${r}`);
      await admin.query(`DROP ROLE IF EXISTS ${owner}`);
      await admin.end();
    }
  });

  it('creates roles safely when two schemas migrate at the same time', async () => {
    // Prepare: the same migration under role names no other test uses, so the roles are new.
    const prefix = `dte_r${randomBytes(4).toString('hex')}_`;
    const sql = readFileSync(join(migrationsDir(), '0004_roles.sql'), 'utf8').replace(/\bdte_/g, prefix);
    const [s1, s2] = await Promise.all([createTestSchema('roles_a'), createTestSchema('roles_b')]);
    const c1 = new pg.Client({ connectionString: s1!.url });
    const c2 = new pg.Client({ connectionString: s2!.url });
    await Promise.all([c1.connect(), c2.connect()]);
    try {
      // Act: the first creates the roles and holds its transaction open; the second then waits
      // on the same role names and must shrug off the unique violation when the first commits.
      const pid2 = (await c2.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await c1.query('BEGIN');
      await c1.query(sql);
      await c2.query('BEGIN');
      const second = c2.query(sql);
      await waitUntilBlocked(c1, pid2);
      await c1.query('COMMIT');
      await second;
      await c2.query('COMMIT');
      // Assess
      const { rows } = await c2.query<{ n: string }>(
        'SELECT count(*) AS n FROM pg_roles WHERE rolname = ANY($1::text[])',
        [[`${prefix}api`, `${prefix}consumer`, `${prefix}reaper`]],
      );
      expect(Number(rows[0]!.n)).toBe(3);
      for (const c of [c1, c2]) {
        const { rows: grants } = await c.query<{ ok: boolean }>(
          `SELECT has_table_privilege($1, 'jobs', 'INSERT') AND NOT has_table_privilege($1, 'jobs', 'DELETE') AS ok`,
          [`${prefix}api`],
        );
        expect(grants[0]!.ok).toBe(true);
      }
    } finally {
      await Promise.all([c1.end(), c2.end()]);
      await Promise.all([s1!.drop(), s2!.drop()]);
      const admin = new pg.Client({ connectionString: DATABASE_URL });
      await admin.connect();
      for (const r of ['api', 'consumer', 'reaper']) await admin.query(`DROP ROLE IF EXISTS ${prefix}${r}`);
      await admin.end();
    }
  });
});
