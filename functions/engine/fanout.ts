import type { ConsumerSummary } from './contracts.ts';

/**
 * The consumer's follow-up policy after an invocation: fan-out when it left a backlog, and a
 * successor when it ran out of time while live. Decisions only; the handler does the invoking.
 */

/** Fan-out invocations carry their depth; only scheduled (and woken) invocations, depth 0, fan out. */
export interface FanoutPolicy {
  /** CONSUMER_FANOUT_MAX: at most this many async invocations per backlog. */
  fanoutMax: number;
  /** The consumer's own function name: without it nothing can be invoked. */
  functionName: string | undefined;
}

/**
 * How many invocations to fan out after `summary`: CONSUMER_FANOUT_MAX when it left a backlog
 * (its last claim came back full), else 0. Only depth-0 invocations fan out, and at most the
 * cap: a backlog cannot multiply invocations without bound.
 */
export function fanoutCount(
  summary: Pick<ConsumerSummary, 'backlog'>,
  depth: number,
  p: FanoutPolicy,
): number {
  if (!summary.backlog || depth > 0 || p.fanoutMax === 0 || !p.functionName) return 0;
  return p.fanoutMax;
}

/** The payload of a fan-out invocation: one level deeper. */
export function fanoutPayload(depth: number): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ fanoutDepth: depth + 1 }));
}

/**
 * Whether to invoke a successor. An invocation that ran out of time was live until its end: an
 * api that enqueued in its last moments saw it live and invoked nothing, so its successor takes
 * that work now, not at the next tick. One per scheduled or woken invocation (depth 0) with
 * presence on (liveMs), when the handler has an invoker; fanned-out invocations and one that fanned out leave it to those (no
 * chains beyond the cap).
 */
export function wantsSuccessor(
  summary: Pick<ConsumerSummary, 'exitReason'>,
  depth: number,
  fannedOut: number,
  liveMs: number | undefined,
): boolean {
  return summary.exitReason === 'deadline' && !!liveMs && depth <= 0 && fannedOut === 0;
}

/** Counts the settled invocations that failed: what the handler logs, and how many started. */
export function settledCounts(results: readonly PromiseSettledResult<unknown>[]): {
  started: number;
  failed: number;
  firstReason: string | undefined;
} {
  let failed = 0;
  let firstReason: string | undefined;
  for (const r of results) {
    if (r.status !== 'rejected') continue;
    if (failed === 0) firstReason = String(r.reason);
    failed++;
  }
  return { started: results.length - failed, failed, firstReason };
}
