import type { Queryable } from '../../functions/engine/queryable.ts';

/**
 * What a held-back vacuum horizon does to the job table, read from the server's own
 * statistics: dead tuples and sizes (pg_stat_user_tables, pg_relation_size) and the claim
 * statements' cost (pg_stat_statements with `track = all`, which records the statements run
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
  /** Every index of jobs_live (the live partition of `jobs`, migration 0022) by name. */
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
     FROM pg_stat_user_tables WHERE relname IN ('jobs_live', 'job_counter_deltas')`,
  );
  const jobs = t.rows.find((r) => r.relname === 'jobs_live');
  const deltas = t.rows.find((r) => r.relname === 'job_counter_deltas');
  const i = await db.query<{ name: string; bytes: string }>(
    `SELECT c.relname AS name, pg_relation_size(c.oid) AS bytes
     FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
     WHERE x.indrelid = 'jobs_live'::regclass ORDER BY c.relname`,
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

export type StatementKind =
  | 'claim'
  | 'claimRead'
  | 'claimUpdate'
  | 'claimControl'
  | 'call'
  | 'complete'
  | 'renew'
  | 'reap';

/**
 * The engine's hot statements, cumulative in this database:
 *   claim        what one `jobs_claim` call spends claiming: the sum of the three below, per
 *                top-level call (`calls` is the number of jobs_claim calls). Since migrations
 *                0008 and 0011 the claim is no longer one statement: the function reads level by
 *                level and updates what it took in a statement of its own.
 *   claimRead    jobs_claim's reads of `jobs`: the next priority level (`SELECT j.priority …`,
 *                `SELECT max(h.priority) …` for named queues), each level's rows
 *                (`v_ids := v_ids || ARRAY(… FOR UPDATE SKIP LOCKED)`; `v_got := ARRAY(…)` for
 *                limited queues and advisory locks), the queue listing (`WITH RECURSIVE qs`).
 *                The index walk of jobs_claim_idx and the heap visits are here.
 *   claimUpdate  the update of the claimed rows (`WITH claimed AS`), its counting trigger included
 *   claimControl the control-row checks and locks on `queues` (limits, pauses, tokens)
 *   call         the consumer's top-level `SELECT … FROM jobs_claim(…)`, the completion included
 *   complete     the batch completion inside jobs_complete (`WITH done AS`)
 *   renew        the heartbeat (`SET locked_at = now(), updated_at = now()`)
 *   reap         the reaper's requeue of expired leases (`WITH expired AS`), over jobs_running_idx
 *
 * The claim's parts are matched by the text of jobs_claim's body (migration 0011) as
 * pg_stat_statements records nested PL/pgSQL statements: INTO stripped, constants as $n.
 * `claimMeasured` tells whether what matched can be the claim.
 */
export async function statementCosts(db: Queryable): Promise<Record<StatementKind, StatementCost>> {
  const { rows } = await db.query<{ kind: StatementKind | null; calls: string; buffers: string; ms: string }>(
    `SELECT kind, sum(calls) AS calls, sum(shared_blks_hit + shared_blks_read) AS buffers,
            sum(total_exec_time) AS ms
     FROM (
       SELECT calls, shared_blks_hit, shared_blks_read, total_exec_time,
              CASE
                WHEN toplevel AND (query LIKE '%FROM jobs_claim(%' OR query LIKE '%FROM jobs_claim_batch(%') THEN 'call'
                WHEN toplevel THEN NULL
                WHEN query LIKE 'v_ids := v_ids || ARRAY(%' OR query LIKE 'v_got := ARRAY(%'
                     OR query LIKE 'SELECT j.priority%FROM jobs_live j%'
                     OR query LIKE 'SELECT max(h.priority)%' OR query LIKE 'WITH RECURSIVE qs(name)%'
                  THEN 'claimRead'
                WHEN query LIKE 'WITH claimed AS%' THEN 'claimUpdate'
                WHEN query LIKE 'EXISTS (SELECT % FROM queues q WHERE q.max_running IS NOT NULL%'
                     OR query LIKE 'v_queues IS NULL AND EXISTS (SELECT % FROM queues q WHERE q.paused)%'
                     OR query LIKE '%FROM queues q WHERE q.name = v_limited[i]%'
                     OR query LIKE '%array_agg(q.name ORDER BY q.name)%'
                     OR query LIKE 'SELECT count(*) FROM jobs_live j WHERE j.queue = v_limited[i]%'
                     OR query LIKE 'UPDATE queues q SET tokens = v_tokens%'
                  THEN 'claimControl'
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
  const parts = [of('claimRead'), of('claimUpdate'), of('claimControl')];
  const call = of('call');
  return {
    // Per jobs_claim call: its parts' buffers and time, counted over the calls.
    claim: {
      calls: call.calls,
      buffers: parts.reduce((n, c) => n + c.buffers, 0),
      ms: parts.reduce((n, c) => n + c.ms, 0),
    },
    claimRead: parts[0]!,
    claimUpdate: parts[1]!,
    claimControl: parts[2]!,
    call,
    complete: of('complete'),
    renew: of('renew'),
    reap: of('reap'),
  };
}

/**
 * Why the claim's figure cannot be trusted between two samples, or undefined when it can: no
 * jobs_claim call, no read or no update matched (jobs_claim's text changed again), fewer reads
 * than calls (every call reads the next priority level at least), or the matched parts far
 * below what the calls spent beside their completions (a part of the claim not matched).
 */
export function claimUnmeasured(
  a: Record<StatementKind, StatementCost>,
  b: Record<StatementKind, StatementCost>,
): string | undefined {
  const d = (k: StatementKind) => costBetween(a[k], b[k]);
  const call = d('call');
  const read = d('claimRead');
  const update = d('claimUpdate');
  const claim = d('claim');
  if (call.calls <= 0) return 'no jobs_claim call recorded';
  if (read.calls < call.calls || read.buffers <= 0)
    return `claim reads: ${read.calls} statements, ${read.buffers} buffers for ${call.calls} jobs_claim calls`;
  if (update.calls <= 0 || update.buffers <= 0)
    return `claim update: ${update.calls} statements, ${update.buffers} buffers for ${call.calls} jobs_claim calls`;
  const besideCompletion = call.buffers - d('complete').buffers;
  if (claim.buffers < 0.5 * besideCompletion)
    return `the claim's statements account for ${claim.buffers} of the ${besideCompletion} buffers jobs_claim spent beside completions`;
  return undefined;
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
