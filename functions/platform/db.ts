import pg from 'pg';
import { DatabaseUnavailableError } from '../engine/errors.ts';
import type { Db, Queryable, QueryResult } from '../engine/queryable.ts';

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

export function isAuthFailure(err: unknown): boolean {
  const code = sqlState(err);
  return code !== undefined && AUTH_FAILED_SQLSTATES.has(code);
}

/** Wraps connection-level failures in DatabaseUnavailableError; leaves SQL errors as they are. */
function classify(err: unknown): unknown {
  if (isRetryableDbError(err) && !(err instanceof DatabaseUnavailableError)) {
    const message = err instanceof Error ? err.message : String(err);
    const wrapped = new DatabaseUnavailableError(`database unavailable: ${message}`, { cause: err });
    (wrapped as { sqlState?: string }).sqlState = sqlState(err);
    return wrapped;
  }
  return err;
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

  const query = async <R>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>> => {
    try {
      const res = await pool.query(text, values as unknown[] | undefined);
      return { rows: res.rows as R[], rowCount: res.rowCount };
    } catch (err) {
      throw classify(err);
    }
  };

  return {
    pool,
    query,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw classify(err);
      }
      let broken = false;
      const tx: Queryable = {
        async query<R>(text: string, values?: readonly unknown[]) {
          try {
            const res = await client.query(text, values as unknown[] | undefined);
            return { rows: res.rows as R[], rowCount: res.rowCount };
          } catch (err) {
            if (isRetryableDbError(err)) broken = true;
            throw classify(err);
          }
        },
      };
      try {
        await tx.query('BEGIN');
        const result = await fn(tx);
        await tx.query('COMMIT');
        return result;
      } catch (err) {
        if (!broken)
          await client.query('ROLLBACK').catch(() => {
            broken = true;
          });
        throw err;
      } finally {
        client.release(broken ? true : undefined);
      }
    },
    end: () => pool.end(),
  };
}
