import { describe, expect, it } from 'vitest';
import { DatabaseUnavailableError, OutcomeUnknownError } from '../../functions/engine/errors.ts';
import { mapError } from '../../functions/http/errors.ts';
import {
  classifyDbError,
  createDb,
  isAuthFailure,
  isRetryableDbError,
  sqlState,
} from '../../functions/platform/db.ts';

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

  describe('what a failure says about the outcome (classifyDbError)', () => {
    const lost = new Error('Connection terminated unexpectedly');
    it('before anything was sent (connect): DatabaseUnavailableError, answered 503 database_unavailable', () => {
      const err = classifyDbError(pgError('ECONNREFUSED'), 'connect');
      expect(err).toBeInstanceOf(DatabaseUnavailableError);
      expect(err).not.toBeInstanceOf(OutcomeUnknownError);
      expect(mapError(err)).toMatchObject({ statusCode: 503, code: 'database_unavailable' });
    });
    it('after the statement was sent, a lost connection or the client-side timeout: OutcomeUnknownError, 503 outcome_unknown', () => {
      for (const raw of [lost, new Error('Query read timeout'), pgError('ECONNRESET', 'read ECONNRESET')]) {
        const err = classifyDbError(raw, 'statement');
        expect(err).toBeInstanceOf(OutcomeUnknownError);
        // Still retryable for every caller that only asks "may I retry?".
        expect(err).toBeInstanceOf(DatabaseUnavailableError);
        expect(mapError(err)).toMatchObject({ statusCode: 503, code: 'outcome_unknown' });
        expect(mapError(err).headers).toEqual({ 'Retry-After': '5' });
        // A read that lost its answer changed nothing.
        expect(mapError(err, { reading: true }).code).toBe('database_unavailable');
      }
    });
    it('a failure the server reported for the statement (statement_timeout, deadlock) is definite: nothing was stored', () => {
      for (const code of ['57014', '40P01', '40001', '55P03']) {
        const err = classifyDbError(pgError(code), 'statement');
        expect(err).toBeInstanceOf(DatabaseUnavailableError);
        expect(err).not.toBeInstanceOf(OutcomeUnknownError);
      }
    });
    it('a statement inside a transaction that loses its connection before COMMIT rolled back: database_unavailable', () => {
      expect(classifyDbError(lost, 'inTransaction')).not.toBeInstanceOf(OutcomeUnknownError);
    });
    it('a rejected login (IAM token refused: 28000, 28P01) is DatabaseUnavailableError (503, not 500), still recognised as an auth failure', () => {
      for (const code of ['28000', '28P01']) {
        const err = classifyDbError(pgError(code, 'PAM authentication failed for user "dte_api"'), 'connect');
        expect(err).toBeInstanceOf(DatabaseUnavailableError);
        expect(isAuthFailure(err)).toBe(true);
        expect(mapError(err)).toMatchObject({ statusCode: 503, code: 'database_unavailable' });
      }
    });
    it('SQL errors pass through unchanged', () => {
      const unique = pgError('23505');
      expect(classifyDbError(unique, 'statement')).toBe(unique);
    });
  });
});
