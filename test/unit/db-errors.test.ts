import { describe, expect, it } from 'vitest';
import { DatabaseUnavailableError } from '../../functions/engine/errors.ts';
import { createDb, isAuthFailure, isRetryableDbError, sqlState } from '../../functions/platform/db.ts';

/** An error shaped as pg raises it: a message and a SQLSTATE (or socket) code. */
const pgError = (code: string, message = `error ${code}`) => Object.assign(new Error(message), { code });

describe('database error classification', () => {
  const retryable: Array<[string, Error]> = [
    [
      '57P01 admin_shutdown (pg_terminate_backend, restart)',
      pgError('57P01', 'terminating connection due to administrator command'),
    ],
    ['08006 connection_failure', pgError('08006')],
    ['08003 connection_does_not_exist (any 08 class)', pgError('08003')],
    ['40001 serialization_failure', pgError('40001')],
    ['40P01 deadlock_detected', pgError('40P01')],
    ['socket ECONNRESET', pgError('ECONNRESET', 'read ECONNRESET')],
    ['socket ECONNREFUSED', pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432')],
    ["pg's 'Connection terminated unexpectedly'", new Error('Connection terminated unexpectedly')],
    ["pg's client-side 'Query read timeout'", new Error('Query read timeout')],
    ['an already wrapped DatabaseUnavailableError', new DatabaseUnavailableError('database unavailable')],
  ];
  for (const [what, err] of retryable) {
    it(`classifies ${what} as retryable`, () => {
      expect(isRetryableDbError(err)).toBe(true);
    });
  }

  const permanent: Array<[string, unknown]> = [
    ['23505 unique_violation', pgError('23505', 'duplicate key value violates unique constraint')],
    ['42P01 undefined_table', pgError('42P01', 'relation "jobs" does not exist')],
    ['23514 check_violation', pgError('23514')],
    ['22P02 invalid_text_representation', pgError('22P02')],
    ['28P01 invalid_password', pgError('28P01')],
    ['a plain Error', new Error('boom')],
    ['a thrown string', 'boom'],
    ['null', null],
  ];
  for (const [what, err] of permanent) {
    it(`classifies ${what} as not retryable`, () => {
      expect(isRetryableDbError(err)).toBe(false);
    });
  }

  it('reads the SQLSTATE only when it is a string', () => {
    expect(sqlState(pgError('23505'))).toBe('23505');
    expect(sqlState({ code: 42 })).toBeUndefined();
    expect(sqlState(undefined)).toBeUndefined();
  });

  it('recognises authentication failures by SQLSTATE', () => {
    expect(isAuthFailure(pgError('28P01'))).toBe(true);
    expect(isAuthFailure(pgError('28000'))).toBe(true);
    expect(isAuthFailure(pgError('57P01'))).toBe(false);
  });

  it('a pool whose server refuses the connection fails with DatabaseUnavailableError carrying the cause', async () => {
    // Port 1 on loopback: nothing listens, so the connect is refused at once.
    const db = createDb({ connectionString: 'postgres://nobody@127.0.0.1:1/none', connectTimeoutMs: 2000 });
    try {
      const err = await db.query('SELECT 1').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(DatabaseUnavailableError);
      expect((err as Error).message).toMatch(/database unavailable/);
      expect(isRetryableDbError((err as Error).cause)).toBe(true);
      await expect(db.transaction(async () => 1)).rejects.toBeInstanceOf(DatabaseUnavailableError);
    } finally {
      await db.end();
    }
  });
});
