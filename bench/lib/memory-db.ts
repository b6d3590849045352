import type { Db, QueryResult } from '../../functions/engine/queryable.ts';

/**
 * A stand-in database for one diagnostic only: the consumer handler's own JavaScript per job,
 * with no PostgreSQL sharing the CPU. It answers the consumer's two hot statements (jobs_claim_batch
 * and jobs_complete_batch) from memory: claims hand out `jobs` echo jobs as parallel arrays,
 * completions are counted. The payloads are one JSON text parsed, as pg parses the real json answer.
 * Never a throughput figure: the report labels it as the consumer's JavaScript alone.
 */
export function memoryDb(jobs: number): Db & { completed(): number } {
  let next = 1;
  let completed = 0;
  const complete = (ids: unknown): string[] | null => {
    const done = ids as string[];
    completed += done.length;
    return done.length > 0 ? done : null;
  };
  const db = {
    completed: () => completed,
    async query<R>(text: string, values: readonly unknown[] = []): Promise<QueryResult<R>> {
      if (text.includes('jobs_claim_batch(')) {
        // One row of parallel arrays, as pg decodes jobs_claim_batch's answer: bigint[] as
        // strings, the payloads' json array parsed from its text.
        const o_completed = complete(values[5]);
        const n = Math.max(0, Math.min(values[1] as number, jobs - next + 1));
        if (n === 0) return { rows: [{ o_ids: null, o_lease_seconds: 30, o_completed } as R], rowCount: 1 };
        const o_ids = new Array<string>(n);
        for (let i = 0; i < n; i++) o_ids[i] = String(next++);
        const row = {
          o_ids,
          o_queues: new Array<string>(n).fill('default'),
          o_types: new Array<string>(n).fill('example.echo'),
          o_payloads: JSON.parse(`[${new Array<string>(n).fill('{}').join(',')}]`),
          o_attempts: new Array<number>(n).fill(1),
          o_max_attempts: new Array<number>(n).fill(5),
          o_tokens: new Array<string>(n).fill('1'),
          o_lease_seconds: 30,
          o_completed,
        };
        return { rows: [row as R], rowCount: 1 };
      }
      if (text.includes('jobs_complete_batch('))
        return { rows: [{ ids: complete(values[0]) } as R], rowCount: 1 };
      throw new Error(`memoryDb: unexpected statement ${text.slice(0, 60)}`);
    },
    async transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
      return fn(db);
    },
    async end() {},
  };
  return db;
}
