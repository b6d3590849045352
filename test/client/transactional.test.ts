import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConflictError, enqueue, enqueueMany, ValidationError } from '../../functions/client/index.ts';
import { type Queryable, readCounters } from '../../functions/engine/index.ts';
import { createRegistry } from '../../functions/tasks/index.ts';
import { expectCountersMatchTable } from '../helpers/invariants.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';
import { type Bouncer, pgbouncerAvailable, startBouncer } from './bouncer.ts';

/** A task as an application shares it with the service that runs it: type, schema, defaults. */
const sendEmail = {
  type: 'email.send',
  schema: z.object({ to: z.email(), subject: z.string().max(200) }),
  maxAttempts: 9,
};

/** Polls until backend `pid` waits on a lock, so the race under test really happens. */
async function waitUntilBlocked(observer: Queryable, pid: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const { rows } = await observer.query<{ waiting: boolean }>(
      `SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = $1`,
      [pid],
    );
    if (rows[0]?.waiting) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`backend ${pid} never blocked on the other transaction's key`);
}

interface Fixture {
  t: TestSchema;
  connect(): Promise<pg.Client>;
  count(sql: string): Promise<number>;
}

/** The behaviours every connection path must keep: run directly and again through PgBouncer. */
function transactionalSuite(name: string, fixture: () => Fixture) {
  describe(name, () => {
    let f: Fixture;
    const clients: pg.Client[] = [];
    const connect = async () => {
      const c = await f.connect();
      clients.push(c);
      return c;
    };
    beforeAll(() => {
      f = fixture();
    });
    afterAll(async () => {
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
    });
    beforeEach(async () => {
      await f.t.db.query('TRUNCATE jobs, job_counter_deltas, orders');
    });

    it('a rolled-back business transaction leaves no job and the counters unchanged', async () => {
      const app = await connect();
      const before = await readCounters(f.t.db);

      await app.query('BEGIN');
      await app.query(`INSERT INTO orders (ref) VALUES ('o-1')`);
      const { job } = await enqueue(app, { type: 'example.echo', payload: { order: 'o-1' } });
      const inside = await app.query('SELECT count(*)::int AS n FROM jobs WHERE id = $1', [job.id]);
      await app.query('ROLLBACK');

      expect(inside.rows[0].n).toBe(1);
      expect(await f.count('SELECT count(*) FROM jobs')).toBe(0);
      expect(await f.count('SELECT count(*) FROM orders')).toBe(0);
      expect((await readCounters(f.t.db)).totals).toEqual(before.totals);
    });

    it('a committed business transaction makes one job, counted as submitted', async () => {
      const app = await connect();
      const before = (await readCounters(f.t.db)).totals.submitted;

      await app.query('BEGIN');
      const { rows } = await app.query(`INSERT INTO orders (ref) VALUES ('o-2') RETURNING id`);
      const { job, created } = await enqueue(app, sendEmail, {
        to: 'a@example.com',
        subject: `order ${rows[0].id}`,
      });
      await app.query('COMMIT');

      expect(created).toBe(true);
      expect(job.maxAttempts).toBe(9);
      expect(
        await f.count(`SELECT count(*) FROM jobs WHERE task_type = 'email.send' AND max_attempts = 9`),
      ).toBe(1);
      expect((await readCounters(f.t.db)).totals.submitted).toBe(before + 1);
      await expectCountersMatchTable(f.t.db);
    });

    it('concurrent transactions with one key: the second waits for the first and gets its job, never a second', async () => {
      // The observer reads pg_stat_activity directly: behind the bouncer A and B hold both server connections.
      const [a, b, observer] = [await connect(), await connect(), f.t.db];
      const key = 'order-77';
      const req = { type: 'example.echo', payload: { order: 77 }, idempotencyKey: key };

      // Committed first: B, blocked on A's uncommitted key, ends up with A's job.
      await a.query('BEGIN');
      await a.query(`INSERT INTO orders (ref) VALUES ('a')`);
      const first = await enqueue(a, req);
      await b.query('BEGIN');
      const { rows: pid } = await b.query('SELECT pg_backend_pid() AS pid');
      const second = enqueue(b, req);
      await waitUntilBlocked(observer, pid[0].pid);
      await a.query('COMMIT');
      const replay = await second;
      await b.query('COMMIT');
      expect(first.created).toBe(true);
      expect(replay).toMatchObject({ created: false, job: { id: first.job.id } });

      // Rolled back first: B's insert goes ahead and B's job is the one that stays.
      await a.query('BEGIN');
      await enqueue(a, { ...req, idempotencyKey: 'order-78' });
      await b.query('BEGIN');
      const { rows: pid2 } = await b.query('SELECT pg_backend_pid() AS pid');
      const wins = enqueue(b, { ...req, idempotencyKey: 'order-78' });
      await waitUntilBlocked(observer, pid2[0].pid);
      await a.query('ROLLBACK');
      const won = await wins;
      await b.query('COMMIT');
      expect(won.created).toBe(true);

      expect(await f.count(`SELECT count(*) FROM jobs`)).toBe(2);
      await expectCountersMatchTable(f.t.db);
    });

    it('many concurrent business transactions, some rolled back: a job exists exactly for each committed order', async () => {
      const apps = await Promise.all(Array.from({ length: 6 }, () => connect()));
      await Promise.all(
        apps.map(async (app, i) => {
          for (let round = 0; round < 5; round++) {
            const ref = `order-${i}-${round}`;
            await app.query('BEGIN');
            await app.query('INSERT INTO orders (ref) VALUES ($1)', [ref]);
            await enqueueMany(app, [
              { type: 'example.echo', payload: { ref }, idempotencyKey: `mail-${ref}` },
              { type: 'example.echo', payload: { ref, audit: true } },
            ]);
            await app.query((i + round) % 3 === 0 ? 'ROLLBACK' : 'COMMIT');
          }
        }),
      );

      const committed = await f.count('SELECT count(*) FROM orders');
      expect(committed).toBe(20);
      expect(await f.count('SELECT count(*) FROM jobs')).toBe(2 * committed);
      expect(
        await f.count(
          `SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM jobs j WHERE j.payload->>'ref' = o.ref) <> 2`,
        ),
      ).toBe(0);
      expect(
        await f.count(`SELECT count(*) FROM jobs WHERE idempotency_key = 'mail-' || (payload->>'ref')`),
      ).toBe(committed);
      await expectCountersMatchTable(f.t.db);
    });

    it("a conflicting key undoes the whole batch and leaves the caller's transaction usable", async () => {
      const app = await connect();
      await app.query('BEGIN');
      await app.query(`INSERT INTO orders (ref) VALUES ('kept')`);
      await enqueue(app, { type: 'example.echo', payload: 1, idempotencyKey: 'k' });
      const err = await enqueueMany(app, [
        { type: 'example.echo', payload: 'a', idempotencyKey: 'a' },
        { type: 'example.echo', payload: 2, idempotencyKey: 'k' },
      ]).catch((e: unknown) => e);
      await app.query(`INSERT INTO orders (ref) VALUES ('after')`);
      await app.query('COMMIT');

      expect(err).toBeInstanceOf(ConflictError);
      expect(err).toMatchObject({ code: 'idempotency_conflict', status: undefined, details: { index: 1 } });
      expect(await f.count(`SELECT count(*) FROM jobs WHERE idempotency_key = 'a'`)).toBe(0);
      expect(await f.count(`SELECT count(*) FROM jobs`)).toBe(1);
      expect(await f.count(`SELECT count(*) FROM orders`)).toBe(2);
      await expectCountersMatchTable(f.t.db);
    });
  });
}

describe.runIf(await postgresAvailable())('transactional enqueue in the caller’s own transaction', () => {
  let t: TestSchema;
  const count = async (sql: string) => Number((await t.db.query<{ count: string }>(sql)).rows[0]!.count);
  beforeAll(async () => {
    t = await createTestSchema('client_tx');
    await t.db.query('CREATE TABLE orders (id bigserial PRIMARY KEY, ref text UNIQUE NOT NULL)');
    await t.db.query('GRANT SELECT, INSERT ON orders TO dte_api');
    await t.db.query('GRANT USAGE ON SEQUENCE orders_id_seq TO dte_api');
  });
  afterAll(async () => t?.drop());

  transactionalSuite('a pg.Client connected directly', () => ({
    t,
    count,
    async connect() {
      const c = new pg.Client({ connectionString: t.url });
      await c.connect();
      return c;
    },
  }));

  describe('validation and connection shapes', () => {
    let app: pg.Client;
    beforeAll(async () => {
      app = new pg.Client({ connectionString: t.url });
      await app.connect();
    });
    afterAll(async () => app?.end());
    beforeEach(async () => {
      await t.db.query('TRUNCATE jobs, job_counter_deltas, orders');
    });

    it('with a registry, type and payload are checked as the api checks them; without one any type goes', async () => {
      const registry = createRegistry();
      const unknown = await enqueue(app, { type: 'no.such.task' }, { registry }).catch((e: unknown) => e);
      const badPayload = await enqueue(
        app,
        { type: 'example.sleep', payload: { ms: 'x' } },
        { registry },
      ).catch((e: unknown) => e);
      const badTyped = await enqueue(app, sendEmail, { to: 'not-an-email', subject: 's' }).catch(
        (e: unknown) => e,
      );
      const badShape = await enqueue(app, { type: 'example.echo', priority: 1.5 }).catch((e: unknown) => e);
      const nul = await enqueue(app, { type: 'example.echo', payload: 'a\u0000b' }).catch((e: unknown) => e);
      const anyType = await enqueue(app, { type: 'no.such.task', payload: { free: 'form' } });

      expect(unknown).toBeInstanceOf(ValidationError);
      expect(unknown).toMatchObject({ code: 'unknown_task_type', status: undefined });
      expect(badPayload).toMatchObject({ code: 'invalid_payload', field: 'payload.ms' });
      expect(badTyped).toMatchObject({ code: 'invalid_payload', field: 'payload.to' });
      expect(badShape).toMatchObject({ code: 'validation_error', field: 'priority' });
      expect(nul).toBeInstanceOf(ValidationError);
      expect(anyType.created).toBe(true);
      expect(await count('SELECT count(*) FROM jobs')).toBe(1);
    });

    it('as a member of dte_api only (SET LOCAL ROLE), the application can enqueue in its transaction', async () => {
      await app.query('BEGIN');
      await app.query('SET LOCAL ROLE dte_api');
      await app.query(`INSERT INTO orders (ref) VALUES ('as-api')`);
      await enqueue(app, { type: 'example.echo', payload: 1 });
      await enqueue(app, { type: 'example.echo', payload: 2, idempotencyKey: 'role-k' });
      await enqueueMany(app, [
        { type: 'example.echo', payload: 3 },
        { type: 'example.echo', payload: 4, idempotencyKey: 'role-k2' },
      ]);
      await app.query('COMMIT');
      expect(await count('SELECT count(*) FROM jobs')).toBe(4);
      await expectCountersMatchTable(t.db);
    });

    it('outside a transaction a keyed batch is its own transaction: a conflict stores none of it', async () => {
      await enqueue(app, { type: 'example.echo', payload: 1, idempotencyKey: 'k' });
      const err = await enqueueMany(app, [
        { type: 'example.echo', payload: 'x', idempotencyKey: 'x' },
        { type: 'example.echo', payload: 2, idempotencyKey: 'k' },
      ]).catch((e: unknown) => e);
      const ok = await enqueueMany(app, [{ type: 'example.echo', payload: 'y', idempotencyKey: 'y' }]);

      expect(err).toBeInstanceOf(ConflictError);
      expect(ok[0]!.created).toBe(true);
      expect(await count(`SELECT count(*) FROM jobs`)).toBe(2);
      const { rows } = await app.query<{ s: string }>(`SELECT current_setting('transaction_isolation') AS s`);
      expect(rows[0]!.s).toBeDefined(); // the connection is still usable
    });

    it('a pg.Pool: a keyed batch runs on one connection the pool hands out', async () => {
      const pool = new pg.Pool({ connectionString: t.url, max: 3 });
      try {
        await enqueue(pool, { type: 'example.echo', payload: 1, idempotencyKey: 'k' });
        const err = await enqueueMany(pool, [
          { type: 'example.echo', payload: 'x', idempotencyKey: 'x' },
          { type: 'example.echo', payload: 2, idempotencyKey: 'k' },
        ]).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ConflictError);
        expect(await count(`SELECT count(*) FROM jobs`)).toBe(1);
        expect(pool.idleCount).toBe(pool.totalCount);
      } finally {
        await pool.end();
      }
    });
  });

  describe.runIf(pgbouncerAvailable())('through PgBouncer in transaction mode', () => {
    let bouncer: Bouncer;
    beforeAll(async () => {
      bouncer = await startBouncer(t.schema, 2);
    });
    afterAll(async () => bouncer?.stop());

    transactionalSuite('pg.Clients sharing two server connections', () => ({
      t,
      count,
      async connect() {
        const c = new pg.Client({ connectionString: bouncer.url });
        await c.connect();
        return c;
      },
    }));
  });
});
