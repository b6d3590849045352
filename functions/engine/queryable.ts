/**
 * The engine's whole view of the database: run one parameterized statement, or several in
 * one transaction. Only functions/platform/db*.ts implements it (pg, or PGlite behind pg).
 */
export interface QueryResult<R> {
  rows: R[];
  rowCount: number | null;
}

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<QueryResult<R>>;
}

export interface Db extends Queryable {
  /** Runs `fn` inside BEGIN … COMMIT on one connection; ROLLBACK if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  end(): Promise<void>;
}
