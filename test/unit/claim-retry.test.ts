import { describe, expect, it } from 'vitest';
import { DatabaseUnavailableError } from '../../functions/engine/errors.ts';
import type { Queryable, QueryResult } from '../../functions/engine/queryable.ts';
import { CLAIM_SQL, type ClaimAnswer, claimJobs } from '../../functions/engine/sql/claimJobs.ts';
import { completeAndClaim } from '../../functions/engine/sql/completeAndClaim.ts';
import { CLAIM_ATTEMPTS } from '../../functions/engine/sql/serializationRetry.ts';

// Since 0022 a hand-written UPDATE moving a queued row to a finished partition can fail a
// concurrent claim with SQLSTATE 40001; the whole statement is rolled back, so the claim paths
// send the identical statement again, a bounded number of times.

const claim = { workerId: 'w1', limit: 10, leaseSeconds: 30, queues: [] };

/** As pg raises it. */
const raw40001 = () =>
  Object.assign(
    new Error('tuple to be locked was already moved to another partition due to concurrent update'),
    {
      code: '40001',
    },
  );
/** As functions/platform/db.ts wraps it. */
const wrapped40001 = () =>
  Object.assign(new DatabaseUnavailableError('database unavailable: tuple to be locked was already moved'), {
    sqlState: '40001',
  });

const answer: ClaimAnswer = {
  o_ids: ['7'],
  o_queues: ['default'],
  o_types: ['t'],
  o_payloads: [{ a: 1 }],
  o_attempts: [1],
  o_max_attempts: [5],
  o_tokens: ['3'],
  o_lease_seconds: 30,
  o_completed: ['5'],
};

/** A Queryable that throws the given errors, one per call, then answers; records every call. */
function fakeDb(failures: Array<() => Error>) {
  const calls: Array<{ text: string; values: readonly unknown[] | undefined }> = [];
  const db: Queryable = {
    async query<R>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
      calls.push({ text, values: structuredClone(values) });
      const fail = failures.shift();
      if (fail) throw fail();
      return { rows: [answer as R], rowCount: 1 };
    },
  };
  return { db, calls };
}

describe('the claim retries SQLSTATE 40001', () => {
  for (const [what, make] of [
    ['raw (pg error .code)', raw40001],
    ['wrapped (DatabaseUnavailableError .sqlState)', wrapped40001],
  ] as const) {
    it(`completeAndClaim sends the identical statement again after a ${what} 40001, completions included`, async () => {
      // Prepare
      const { db, calls } = fakeDb([make]);
      // Act
      const out = await completeAndClaim(db, [{ id: '5', leaseToken: '2', result: { ok: true } }], claim);
      // Assess
      expect(calls).toHaveLength(2);
      expect(calls[0]!.text).toBe(CLAIM_SQL);
      expect(calls[1]).toEqual(calls[0]);
      expect(calls[1]!.values![5]).toEqual(['5']);
      expect(out.completed).toEqual(new Set(['5']));
      expect(out.claimed.map((j) => j.id)).toEqual(['7']);
    });

    it(`claimJobs sends the identical statement again after a ${what} 40001`, async () => {
      // Prepare
      const { db, calls } = fakeDb([make]);
      // Act
      const jobs = await claimJobs(db, claim);
      // Assess
      expect(calls).toHaveLength(2);
      expect(calls[1]).toEqual(calls[0]);
      expect(jobs.map((j) => j.id)).toEqual(['7']);
    });
  }

  it('does not retry another error (a deadlock, 40P01, or a plain SQL error)', async () => {
    for (const code of ['40P01', '23505']) {
      // Prepare
      const { db, calls } = fakeDb([() => Object.assign(new Error(code), { code })]);
      // Act
      const attempt = claimJobs(db, claim);
      // Assess
      await expect(attempt).rejects.toMatchObject({ code });
      expect(calls).toHaveLength(1);
    }
    const { db, calls } = fakeDb([() => new DatabaseUnavailableError('database unavailable: ECONNRESET')]);
    await expect(completeAndClaim(db, [{ id: '5', leaseToken: '2' }], claim)).rejects.toThrow('ECONNRESET');
    expect(calls).toHaveLength(1);
  });

  it(`surfaces the 40001 after ${CLAIM_ATTEMPTS} attempts`, async () => {
    // Prepare
    const failures = Array.from({ length: CLAIM_ATTEMPTS + 1 }, () => raw40001);
    const { db, calls } = fakeDb(failures);
    const wrapped = fakeDb(Array.from({ length: CLAIM_ATTEMPTS + 1 }, () => wrapped40001));
    // Act
    const attempt = completeAndClaim(db, [{ id: '5', leaseToken: '2' }], claim);
    const wrappedAttempt = claimJobs(wrapped.db, claim);
    // Assess
    await expect(attempt).rejects.toMatchObject({ code: '40001' });
    await expect(wrappedAttempt).rejects.toMatchObject({ sqlState: '40001' });
    expect(calls).toHaveLength(CLAIM_ATTEMPTS);
    expect(wrapped.calls).toHaveLength(CLAIM_ATTEMPTS);
  });
});
