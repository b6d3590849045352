import pg from 'pg';
import {
  DatabaseUnavailableError,
  type Db,
  OutcomeUnknownError,
  type Queryable,
  type QueryResult,
} from '../engine/index.ts';

/** Keep bigint ids as strings (JSON has no 64-bit ints) and int8 counts as strings too. */

export interface DbOptions {
  connectionString?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  database?: string | undefined;
  user?: string | undefined;
  /** A fixed password, or a function asked for one at every new connection (secret, IAM token). */
  password?: string | (() => Promise<string>) | undefined;
  ssl?: pg.ConnectionConfig['ssl'];
  applicationName?: string;
  /** Client-side timeout: a query on a black-holed socket fails after this instead of hanging. */
  queryTimeoutMs?: number;
  connectTimeoutMs?: number;
  max?: number;
  /** Tests only: each suite runs in its own schema. Sent as a startup option, not a SET. */
  searchPath?: string;
  idleTimeoutMs?: number;
}

/** SQLSTATEs after which the same statement may succeed on a new connection or a retry. */
const RETRYABLE_SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '53300', // too_many_connections
  '55P03', // lock_not_available
  '57P01', // admin_shutdown (pg_terminate_backend, restart)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up)
  '57014', // query_canceled (statement timeout)
]);
const RETRYABLE_SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);
/** pg's own client-side failures carry no code; these are its fixed messages. */
const PG_CLIENT_FAILURES = [
  'Connection terminated',
  'Query read timeout',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Connection terminated due to connection timeout',
];
export const AUTH_FAILED_SQLSTATES = new Set(['28P01', '28000']);

export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True when the error says the database was unreachable or the connection was lost. */
export function isRetryableDbError(err: unknown): boolean {
  if (err instanceof DatabaseUnavailableError) return true;
  const code = sqlState(err);
  if (code !== undefined) {
    if (RETRYABLE_SQLSTATES.has(code) || RETRYABLE_SOCKET_CODES.has(code)) return true;
    if (code.startsWith('08')) return true; // connection_exception class
  }
  const message = err instanceof Error ? err.message : '';
  return PG_CLIENT_FAILURES.some((m) => message.includes(m));
}

/** A rejected login (bad password, expired IAM token, no rds_iam grant), raw or already wrapped. */
export function isAuthFailure(err: unknown): boolean {
  const code =
    err instanceof DatabaseUnavailableError ? (err as { sqlState?: string }).sqlState : sqlState(err);
  return code !== undefined && AUTH_FAILED_SQLSTATES.has(code);
}

/**
 * Errors the server itself reported for a statement (statement_timeout, deadlock, serialization,
 * lock_not_available): the statement failed, so nothing it wrote was committed.
 */
const STATEMENT_FAILED_SQLSTATES = new Set(['40001', '40P01', '55P03', '57014']);

/**
 * Where a failure happened decides what the caller may say. `connect`: nothing was sent, so
 * nothing was stored. `statement`: the statement was sent; when the connection then fails
 * without the server's answer (socket reset, 'Connection terminated', the client-side query
 * timeout) it may have committed: OutcomeUnknownError. `inTransaction`: a statement before
 * COMMIT; a connection lost there rolls back, so nothing was stored.
 */
export type FailurePhase = 'connect' | 'statement' | 'inTransaction';

/**
 * Wraps connection-level failures (and rejected logins: an IAM token refused is as transient as
 * an unreachable host) in DatabaseUnavailableError or OutcomeUnknownError; leaves SQL errors as
 * they are.
 */
export function classifyDbError(err: unknown, phase: FailurePhase): unknown {
  if (err instanceof DatabaseUnavailableError) return err;
  const auth = isAuthFailure(err);
  if (!auth && !isRetryableDbError(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = sqlState(err);
  const unknown =
    phase === 'statement' && !auth && !(code !== undefined && STATEMENT_FAILED_SQLSTATES.has(code));
  const wrapped = unknown
    ? new OutcomeUnknownError(`connection lost after the statement was sent: ${message}`, { cause: err })
    : new DatabaseUnavailableError(`database unavailable: ${message}`, { cause: err });
  (wrapped as { sqlState?: string }).sqlState = code;
  return wrapped;
}

const ignore = () => {};

/**
 * A client from the pool (a failure here is a `connect` failure: nothing was sent). A checked-out
 * client whose socket dies emits 'error' besides failing its query; pool.query listens for it,
 * and so must we, or the process dies of an unhandled 'error' event.
 */
async function checkout(pool: pg.Pool): Promise<pg.PoolClient> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw classifyDbError(err, 'connect');
  }
  client.on('error', ignore);
  return client;
}

/** Back to the pool; a truthy `discard` (a connection that failed) destroys it instead. */
function checkin(client: pg.PoolClient, discard?: boolean | Error): void {
  client.off('error', ignore);
  client.release(discard);
}

async function send<R>(
  client: pg.PoolClient,
  text: string,
  values?: readonly unknown[],
): Promise<QueryResult<R>> {
  const res = await client.query(text, values as unknown[] | undefined);
  return { rows: res.rows as R[], rowCount: res.rowCount };
}

export interface PgDb extends Db {
  readonly pool: pg.Pool;
}

export function createDb(options: DbOptions): PgDb {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    host: options.host,
    port: options.port,
    database: options.database,
    user: options.user,
    password: options.password,
    ssl: options.ssl,
    application_name: options.applicationName ?? 'durable-task-engine',
    query_timeout: options.queryTimeoutMs ?? 15_000,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    max: options.max ?? 1,
    idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
    options: options.searchPath ? `-c search_path=${options.searchPath}` : undefined,
    keepAlive: true,
  });
  // An idle client that loses its socket emits 'error' on the pool; without a listener the
  // process would crash. The next query gets a fresh connection.
  pool.on('error', () => {});

  // pool.query would hide whether a failure came before or after the statement was sent.
  const query = async <R>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>> => {
    const client = await checkout(pool);
    try {
      const result = await send<R>(client, text, values);
      checkin(client);
      return result;
    } catch (err) {
      checkin(client, isRetryableDbError(err) ? (err as Error) : undefined);
      throw classifyDbError(err, 'statement');
    }
  };

  return {
    pool,
    query,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await checkout(pool);
      let broken = false;
      const run = async <R>(text: string, values: readonly unknown[] | undefined, phase: FailurePhase) => {
        try {
          return await send<R>(client, text, values);
        } catch (err) {
          if (isRetryableDbError(err)) broken = true;
          throw classifyDbError(err, phase);
        }
      };
      const tx: Queryable = {
        query: <R>(text: string, values?: readonly unknown[]) => run<R>(text, values, 'inTransaction'),
      };
      try {
        await tx.query('BEGIN');
        const result = await fn(tx);
        // Only a connection lost during COMMIT leaves the outcome open.
        await run('COMMIT', undefined, 'statement');
        return result;
      } catch (err) {
        if (!broken)
          await client.query('ROLLBACK').catch(() => {
            broken = true;
          });
        throw err;
      } finally {
        checkin(client, broken ? true : undefined);
      }
    },
    end: () => pool.end(),
  };
}
