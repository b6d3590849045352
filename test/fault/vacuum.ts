import type { Queryable } from '../../functions/engine/queryable.ts';

/**
 * What a held-back vacuum horizon does to the job table, read from the server's own
 * statistics: dead tuples and sizes (pg_stat_user_tables, pg_relation_size) and the claim
 * statement's cost (pg_stat_statements with `track = all`, which records the statements run
 * inside jobs_claim as nested entries).
 */

/** Settings of a cluster that records nested statements, with autovacuum visiting often. */
export const STATEMENT_STATS_SETTINGS: Record<string, string> = {
  shared_preload_libraries: "'pg_stat_statements'",
  'pg_stat_statements.track': "'all'",
  'pg_stat_statements.max': '1000',
  // 60 s by default: in a 60 s window autovacuum might not visit the table at all, and the
  // run without the long transaction would then show dead tuples vacuum was never asked to take.
  autovacuum_naptime: "'10s'",
};

export interface TableFigures {
  liveTuples: number;
  deadTuples: number;
  autovacuums: number;
  heapBytes: number;
  /** Every index of `jobs` by name. */
  indexBytes: Record<string, number>;
  deltasDeadTuples: number;
  deltasBytes: number;
}

export async function tableFigures(db: Queryable): Promise<TableFigures> {
  const t = await db.query<{
    relname: string;
    n_live_tup: string;
    n_dead_tup: string;
    autovacuum_count: string;
    bytes: string;
  }>(
    `SELECT relname, n_live_tup, n_dead_tup, autovacuum_count, pg_relation_size(relid) AS bytes
     FROM pg_stat_user_tables WHERE relname IN ('jobs', 'job_counter_deltas')`,
  );
  const jobs = t.rows.find((r) => r.relname === 'jobs');
  const deltas = t.rows.find((r) => r.relname === 'job_counter_deltas');
  const i = await db.query<{ name: string; bytes: string }>(
    `SELECT c.relname AS name, pg_relation_size(c.oid) AS bytes
     FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
     WHERE x.indrelid = 'jobs'::regclass ORDER BY c.relname`,
  );
  return {
    liveTuples: Number(jobs?.n_live_tup ?? 0),
    deadTuples: Number(jobs?.n_dead_tup ?? 0),
    autovacuums: Number(jobs?.autovacuum_count ?? 0),
    heapBytes: Number(jobs?.bytes ?? 0),
    indexBytes: Object.fromEntries(i.rows.map((r) => [r.name, Number(r.bytes)])),
    deltasDeadTuples: Number(deltas?.n_dead_tup ?? 0),
    deltasBytes: Number(deltas?.bytes ?? 0),
  };
}

/** Cumulative cost of one statement class in this database since the last reset. */
export interface StatementCost {
  calls: number;
  /** shared_blks_hit + shared_blks_read */
  buffers: number;
  ms: number;
}

const ZERO: StatementCost = { calls: 0, buffers: 0, ms: 0 };

export type StatementKind = 'claim' | 'call' | 'complete' | 'renew' | 'reap';

/**
 * The engine's hot statements, cumulative in this database:
 *   claim     the statement inside jobs_claim that the default consumer runs (every queue, no
 *             advisory locks): `WITH taken AS … FOR UPDATE SKIP LOCKED` over jobs_claim_idx.
 *             Its buffers are the index walk, the heap visits and the update of the claimed rows.
 *   call      the consumer's top-level `SELECT … FROM jobs_claim(…)`, the completion included
 *   complete  the batch completion inside jobs_complete (`WITH done AS`)
 *   renew     the heartbeat (`SET locked_at = now(), updated_at = now()`)
 *   reap      the reaper's requeue of expired leases (`WITH expired AS`), over jobs_running_lease_idx
 */
export async function statementCosts(db: Queryable): Promise<Record<StatementKind, StatementCost>> {
  const { rows } = await db.query<{ kind: StatementKind | null; calls: string; buffers: string; ms: string }>(
    `SELECT kind, sum(calls) AS calls, sum(shared_blks_hit + shared_blks_read) AS buffers,
            sum(total_exec_time) AS ms
     FROM (
       SELECT calls, shared_blks_hit, shared_blks_read, total_exec_time,
              CASE
                WHEN toplevel AND query LIKE '%FROM jobs_claim(%' THEN 'call'
                WHEN query LIKE 'WITH taken AS%' AND query LIKE '%SKIP LOCKED%'
                     AND query NOT LIKE '%unnest(%' AND query NOT LIKE '%pg_try_advisory_xact_lock%' THEN 'claim'
                WHEN query LIKE 'WITH done AS%' THEN 'complete'
                WHEN query LIKE '%SET locked_at = now(), updated_at = now()%' THEN 'renew'
                WHEN query LIKE 'WITH expired AS%' THEN 'reap'
              END AS kind
       FROM pg_stat_statements
       WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
     ) s
     WHERE kind IS NOT NULL
     GROUP BY kind`,
  );
  const of = (kind: StatementKind): StatementCost => {
    const r = rows.find((x) => x.kind === kind);
    return r ? { calls: Number(r.calls), buffers: Number(r.buffers), ms: Number(r.ms) } : ZERO;
  };
  return {
    claim: of('claim'),
    call: of('call'),
    complete: of('complete'),
    renew: of('renew'),
    reap: of('reap'),
  };
}

export function costBetween(a: StatementCost, b: StatementCost): StatementCost {
  return { calls: b.calls - a.calls, buffers: b.buffers - a.buffers, ms: b.ms - a.ms };
}

export const perCall = (c: StatementCost) => ({
  buffers: c.calls === 0 ? 0 : c.buffers / c.calls,
  ms: c.calls === 0 ? 0 : c.ms / c.calls,
});

export const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** A markdown table, columns padded, as the suite's summary prints. */
export function markdownTable(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (c ?? '').padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
