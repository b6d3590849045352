import { readCounters } from '../../functions/engine/index.ts';
import type { Queryable } from '../../functions/engine/queryable.ts';
import type { History, Lease } from './history.ts';

/**
 * The one invariant checker every fault scenario runs, Jepsen-style: the database's final
 * state against the history of what clients were told.
 *
 *   I1 every acknowledged enqueue exists
 *   I2 no completion for a job never enqueued (and no job nobody enqueued)
 *   I3 after the drain every job is completed or failed, none queued or running
 *   I4 each job completed at most once, and every acknowledged completion persisted
 *   I5 no completion by a stale lease token
 *   I6 attempts <= max_attempts
 *   I7 the exact counters equal the table, and the reaper's `recovered` equals the expired
 *      leases it took (every claim ended in exactly one transition)
 */
export type InvariantId = 'I1' | 'I2' | 'I3' | 'I4' | 'I5' | 'I6' | 'I7';

export interface CheckResult {
  violations: Record<InvariantId, string[]>;
  ok: boolean;
  /** The invariants that failed. */
  failed: InvariantId[];
  stats: {
    jobs: number;
    acknowledged: number;
    lost: number;
    duplicateCompletions: number;
    fenced: number;
    recovered: number;
    claims: number;
    unknownOutcomes: number;
    /** Share of jobs claimed more than once (reported, not asserted). */
    ranMoreThanOnce: number;
    byStatus: Record<string, number>;
  };
}

interface Row {
  id: string;
  status: string;
  attempts: number;
  max_attempts: number;
  lease_token: string;
  seq: string | null;
  result_token: string | null;
}

const key = ([id, token]: Lease) => `${id}@${token}`;
const sample = (xs: string[], n = 5) => (xs.length > n ? [...xs.slice(0, n), `… ${xs.length - n} more`] : xs);

export async function checkInvariants(db: Queryable, history: History): Promise<CheckResult> {
  const v: Record<InvariantId, string[]> = { I1: [], I2: [], I3: [], I4: [], I5: [], I6: [], I7: [] };
  const { rows } = await db.query<Row>(
    `SELECT id::text, status, attempts, max_attempts, lease_token::text,
            payload->>'seq' AS seq, result->>'token' AS result_token
     FROM jobs ORDER BY id`,
  );
  const byId = new Map(rows.map((r) => [r.id, r]));

  // I1
  const acked = new Set<string>();
  const attemptedSeqs = new Set<string>();
  for (const e of history.of('enqueue')) {
    for (const id of e.ids) acked.add(id);
    for (const s of e.seqs) attemptedSeqs.add(String(s));
  }
  for (const e of history.of('enqueue-unknown')) for (const s of e.seqs) attemptedSeqs.add(String(s));
  const missing = [...acked].filter((id) => !byId.has(id));
  if (missing.length > 0) v.I1.push(`${missing.length} acknowledged jobs missing: ${sample(missing)}`);

  // I2
  const okCompletions = history.of('complete').flatMap((e) => e.ok);
  const unknownCompletions = history.of('complete-unknown').flatMap((e) => e.leases);
  const ghosts = [...okCompletions, ...unknownCompletions].filter(([id]) => !byId.has(id)).map(key);
  if (ghosts.length > 0) v.I2.push(`completions for jobs that do not exist: ${sample(ghosts)}`);
  const phantoms = rows.filter((r) => r.seq === null || !attemptedSeqs.has(r.seq)).map((r) => r.id);
  if (phantoms.length > 0) v.I2.push(`jobs nobody enqueued: ${sample(phantoms)}`);

  // I3
  const byStatus = { queued: 0, running: 0, completed: 0, failed: 0 } as Record<string, number> & {
    queued: number;
    running: number;
    completed: number;
    failed: number;
  };
  for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  const unfinished = rows.filter((r) => r.status !== 'completed' && r.status !== 'failed');
  if (unfinished.length > 0)
    v.I3.push(
      `${unfinished.length} jobs not terminal: ${sample(unfinished.map((r) => `${r.id}:${r.status}`))}`,
    );

  // I4
  const okPerJob = new Map<string, number>();
  for (const [id] of okCompletions) okPerJob.set(id, (okPerJob.get(id) ?? 0) + 1);
  let duplicateCompletions = 0;
  for (const [id, n] of okPerJob) {
    if (n > 1) {
      duplicateCompletions += n - 1;
      v.I4.push(`job ${id} acknowledged as completed ${n} times`);
    }
    const row = byId.get(id);
    if (row && row.status !== 'completed')
      v.I4.push(`job ${id} acknowledged as completed but is ${row.status}`);
  }

  // I5: a completion acknowledged under a token that is not the job's last one, or a stored
  // result written by another lease than the one the job ended with.
  const stale = okCompletions.filter(([id, token]) => {
    const row = byId.get(id);
    return row !== undefined && row.lease_token !== token;
  });
  if (stale.length > 0) v.I5.push(`${stale.length} completions by a stale lease: ${sample(stale.map(key))}`);
  const staleResults = rows.filter(
    (r) => r.status === 'completed' && r.result_token !== null && r.result_token !== r.lease_token,
  );
  if (staleResults.length > 0)
    v.I5.push(
      `${staleResults.length} results written under a stale lease: ${sample(
        staleResults.map((r) => `${r.id}: result@${r.result_token} lease@${r.lease_token}`),
      )}`,
    );

  // I6
  const over = rows.filter((r) => r.attempts > r.max_attempts);
  if (over.length > 0) v.I6.push(`attempts > max_attempts: ${sample(over.map((r) => r.id))}`);

  // I7
  const snap = await readCounters(db);
  if (snap.totals.submitted !== rows.length)
    v.I7.push(`submitted counter ${snap.totals.submitted} != ${rows.length} rows`);
  if (snap.totals.completed !== byStatus.completed)
    v.I7.push(`completed counter ${snap.totals.completed} != ${byStatus.completed} rows`);
  if (snap.totals.failed !== byStatus.failed)
    v.I7.push(`failed counter ${snap.totals.failed} != ${byStatus.failed} rows`);
  if (snap.running !== byStatus.running)
    v.I7.push(`running gauge ${snap.running} != ${byStatus.running} rows`);
  const reaps = history.of('reap');
  const reapUnknown = history.of('reap-unknown').length;
  const recovered = reaps.reduce((n, r) => n + r.recovered, 0);
  const reaperFailed = reaps.reduce((n, r) => n + r.failed, 0);
  if (reapUnknown === 0 ? snap.totals.recovered !== recovered : snap.totals.recovered < recovered)
    v.I7.push(`recovered counter ${snap.totals.recovered} != ${recovered} reported by the reapers`);
  // Every claim (+1 on lease_token) ends in one transition: complete, final fail, retry,
  // release, or recovery by the reaper (requeue, or fail when attempts are exhausted).
  const tokens = rows.reduce((n, r) => n + Number(r.lease_token), 0);
  const fails = history.of('fail');
  const retried = fails.filter((f) => f.outcome === 'queued').length;
  const releases = history.of('release');
  const released = releases.reduce((n, r) => n + r.ok.length, 0);
  const unknownEnds =
    fails.filter((f) => f.outcome === 'unknown').length +
    releases.reduce((n, r) => n + r.unknown.length, 0) +
    reapUnknown * 1000;
  const ended =
    byStatus.completed + (byStatus.failed - reaperFailed) + retried + released + snap.totals.recovered;
  if (tokens - ended < 0 || tokens - ended > unknownEnds)
    v.I7.push(
      `claims (${tokens}) do not match the transitions that ended them (${ended}; ${unknownEnds} unknown): ` +
        `completed ${byStatus.completed}, failed by workers ${byStatus.failed - reaperFailed}, ` +
        `retried ${retried}, released ${released}, recovered ${snap.totals.recovered}`,
    );

  const fenced =
    history.of('complete').reduce((n, e) => n + e.fenced.length, 0) +
    fails.filter((f) => f.outcome === 'fenced').length +
    releases.reduce((n, r) => n + r.fenced.length, 0);
  const failed = (Object.keys(v) as InvariantId[]).filter((k) => v[k].length > 0);
  return {
    violations: v,
    ok: failed.length === 0,
    failed,
    stats: {
      jobs: rows.length,
      acknowledged: acked.size,
      lost: missing.length,
      duplicateCompletions,
      fenced,
      recovered: snap.totals.recovered,
      claims: tokens,
      unknownOutcomes: unknownCompletions.length + unknownEnds,
      ranMoreThanOnce:
        rows.length === 0 ? 0 : rows.filter((r) => Number(r.lease_token) > 1).length / rows.length,
      byStatus,
    },
  };
}

/** One line per violated invariant, for assertion messages. */
export function describeViolations(r: CheckResult): string {
  return r.failed.map((id) => `${id}: ${r.violations[id].join('; ')}`).join('\n');
}
