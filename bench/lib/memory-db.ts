import type { Db, QueryResult } from '../../functions/engine/queryable.ts';

/**
 * A stand-in database for one diagnostic only: the consumer handler's own JavaScript per job,
 * with no PostgreSQL sharing the CPU. It answers the consumer's two hot statements (jobs_claim
 * and jobs_complete) from memory: claims hand out `jobs` echo jobs, completions are counted.
 * The claimed jobs are built as JSON text and parsed, as pg parses the real jsonb answer.
 * Never a throughput figure: the report labels it as the consumer's JavaScript alone.
 */
export function memoryDb(jobs: number): Db & { completed(): number } {
  let next = 1;
  let completed = 0;
  const claimText = (id: number) =>
    `{"id":"${id}","queue":"default","type":"example.echo","payload":{},"attempt":1,"maxAttempts":5,"leaseToken":"1","leaseSeconds":30}`;
  const complete = (param: unknown): string | null => {
    const done = JSON.parse(param as string) as Array<{ id: number }>;
    completed += done.length;
    return done.length > 0 ? done.map((c) => c.id).join(',') : null;
  };
  const db = {
    completed: () => completed,
    async query<R>(text: string, values: readonly unknown[] = []): Promise<QueryResult<R>> {
      if (text.includes('jobs_claim(')) {
        const o_completed = complete(values[5]);
        const parts: string[] = [];
        for (let i = 0; i < (values[1] as number) && next <= jobs; i++) parts.push(claimText(next++));
        const o_claimed = JSON.parse(`[${parts.join(',')}]`);
        return { rows: [{ o_claimed, o_completed } as R], rowCount: 1 };
      }
      if (text.includes('jobs_complete(')) return { rows: [{ ids: complete(values[0]) } as R], rowCount: 1 };
      throw new Error(`memoryDb: unexpected statement ${text.slice(0, 60)}`);
    },
    async transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
      return fn(db);
    },
    async end() {},
  };
  return db;
}
