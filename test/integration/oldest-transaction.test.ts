import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOldestTransaction } from '../../functions/engine/sql/oldestTransaction.ts';
import { collectLedger, METRIC, renderExposition } from '../../functions/platform/metrics.ts';
import { createTestSchema, DATABASE_URL, postgresAvailable } from '../helpers/pg.ts';

/** Generous: the gauge must be above 0 and far below this, whatever the machine's speed. */
const BOUND_SECONDS = 600;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.runIf(await postgresAvailable())('the oldest open transaction gauge, on real PostgreSQL', () => {
  // A database of this file's own: other suites' sessions on the shared one would make any
  // "nothing is open" assertion depend on them.
  const name = `dte_oldest_${randomBytes(4).toString('hex')}`;
  const url = new URL(DATABASE_URL);
  url.pathname = `/${name}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  const reader = new pg.Client({ connectionString: url.toString() });
  const holder = new pg.Client({ connectionString: url.toString() });

  beforeAll(async () => {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await reader.connect();
    await holder.connect();
  });
  afterAll(async () => {
    await holder.end().catch(() => {});
    await reader.end().catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  });

  it('is 0 with nothing open, rises above 0 while a REPEATABLE READ snapshot is held in another session, and falls back to 0 at its COMMIT', async () => {
    // Prepare
    const before = await readOldestTransaction(reader);
    // Act: a snapshot taken and held, idle, in a second connection.
    await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await holder.query('SELECT count(*) FROM pg_class');
    await sleep(200);
    let held = await readOldestTransaction(reader);
    for (let i = 0; i < 100 && held.ageSeconds === 0; i++) {
      await sleep(100);
      held = await readOldestTransaction(reader);
    }
    await holder.query('COMMIT');
    const after = await readOldestTransaction(reader);
    // Assess
    expect(before).toEqual({ ageSeconds: 0, seesAllRoles: true });
    expect(held.ageSeconds).toBeGreaterThan(0);
    expect(held.ageSeconds).toBeLessThan(BOUND_SECONDS);
    expect(after.ageSeconds).toBe(0);
  });

  it('does not count the reader itself, even when it reads inside a transaction of its own', async () => {
    // Act
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await reader.query('SELECT count(*) FROM pg_class');
    await sleep(200);
    const own = await readOldestTransaction(reader);
    await reader.query('COMMIT');
    // Assess
    expect(own.ageSeconds).toBe(0);
  });

  it('counts a writer in READ COMMITTED, which holds no snapshot between statements but a transaction id', async () => {
    // Prepare
    await holder.query('CREATE TABLE IF NOT EXISTS w (x int)');
    // Act
    await holder.query('BEGIN');
    await holder.query('INSERT INTO w VALUES (1)');
    await sleep(200);
    let held = await readOldestTransaction(reader);
    for (let i = 0; i < 100 && held.ageSeconds === 0; i++) {
      await sleep(100);
      held = await readOldestTransaction(reader);
    }
    await holder.query('ROLLBACK');
    // Assess
    expect(held.ageSeconds).toBeGreaterThan(0);
    expect(held.ageSeconds).toBeLessThan(BOUND_SECONDS);
  });

  it('is exported with the ledger: the age and whether the reader sees every role', async () => {
    // Prepare
    const t = await createTestSchema('oldest');
    try {
      // Act
      const text = await renderExposition(await collectLedger(t.db));
      // Assess
      const age = new RegExp(`^${METRIC.oldestTransactionAge} (\\S+)$`, 'm').exec(text);
      expect(age, text).not.toBeNull();
      expect(Number(age![1])).toBeGreaterThanOrEqual(0);
      expect(text).toMatch(new RegExp(`^# TYPE ${METRIC.oldestTransactionAge} gauge$`, 'm'));
      expect(text).toMatch(new RegExp(`^${METRIC.oldestTransactionSeesAll} 1$`, 'm'));
    } finally {
      await t.drop();
    }
  });
});
