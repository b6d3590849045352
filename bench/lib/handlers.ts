import pg from 'pg';
import { createHandler as createApiHandler } from '../../functions/api.ts';
import { createHandler as createConsumerHandler } from '../../functions/consumer.ts';
import type { Db, RunOutcome } from '../../functions/engine/index.ts';
import { createHandler as createReaperHandler } from '../../functions/reaper.ts';
import { apiGet, apiPost, discard, lambdaContext } from './lambda.ts';
import { handledCounter, waitUntil } from './types.ts';

/** The consumer's createHandler: today's, or another release's (systems/release.ts). */
export type MakeConsumer = typeof createConsumerHandler;
/** The API's createHandler: today's, or another release's. */
export type MakeApi = typeof createApiHandler;

/** Invocation timeout of the simulated consumer (the local engine's default). */
const INVOCATION_MS = 60_000;

export interface ConsumerDrainResult {
  done: number;
  seconds: number;
  invocations: number;
  logBytes: number;
  claimMs: number[];
  summaries: { completed: number; failed: number; released: number; lost: number };
}

/** How consumerDrain runs its containers (defaults: today's handler, long-lived containers). */
export interface ConsumerDrainOptions {
  /** Another release's createHandler (default: today's). */
  make?: MakeConsumer;
  /** The simulated invocation timeout (default 60 s). */
  invocationMs?: number;
  /**
   * Short-lived containers: each invocation gets a new handler on a new pool from `freshDb`,
   * ended after it (connections opened and closed again and again, as through a pooler).
   */
  freshDb?: () => Db;
  /** The drain is done when this (one boolean column `e`) is false (default: no queued or running job). */
  pendingSql?: string;
}

const PENDING =
  "SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued') OR EXISTS (SELECT 1 FROM jobs WHERE status = 'running') AS e";

/**
 * The real thing: `containers` consumer handlers (each its own createHandler, so its own pool of
 * max 1, logger and registry), each invoked again and again with a fresh Lambda-like context
 * until every job is finished. Timed from the first invocation to the commit of the last completion.
 */
export async function consumerDrain(
  url: string,
  jobs: number,
  containers: number,
  env: Record<string, string> = {},
  /** Called the moment the drain is seen finished, before the last invocations idle out. */
  onDrained?: () => void,
  o: ConsumerDrainOptions = {},
): Promise<ConsumerDrainResult> {
  const make = o.make ?? createConsumerHandler;
  const invocationMs = o.invocationMs ?? INVOCATION_MS;
  const logs = discard();
  const counter = handledCounter(jobs);
  const claimMs: number[] = [];
  const observer = {
    claimed(latencyMs: number, count: number) {
      if (count > 0) claimMs.push(latencyMs);
    },
    // Only a job's end counts: a job released at an invocation's deadline runs again later.
    ran: (_type: string, outcome: RunOutcome) => {
      if (outcome === 'completed' || outcome === 'failed') counter.add();
    },
  };
  // Aborted once drained: jobs the drain does not wait for (a limited queue's) keep no invocation going.
  const stop = new AbortController();
  const handlerOptions = {
    env: { DATABASE_URL: url, ...env },
    logStream: logs,
    observer,
    ...(o.pendingSql && { stopSignal: stop.signal }),
  };
  const handlers = Array.from({ length: containers }, () => (o.freshDb ? undefined : make(handlerOptions)));
  /** One invocation: of the container's handler, or of a new handler on a new pool, ended after. */
  const invoke = async (i: number) => {
    const context = lambdaContext(`bench-consumer-${i}`, invocationMs);
    const long = handlers[i];
    if (long) return long({}, context);
    const db = o.freshDb!();
    try {
      return await make({ ...handlerOptions, db })({}, context);
    } finally {
      await db.end();
    }
  };
  const totals = { completed: 0, failed: 0, released: 0, lost: 0 };
  let invocations = 0;
  let finished = false;
  const probe = new pg.Client({ connectionString: url });
  await probe.connect();
  try {
    const t0 = performance.now();
    const loops = handlers.map(async (_, i) => {
      while (!finished) {
        const s = await invoke(i);
        invocations++;
        totals.completed += s.completed;
        totals.failed += s.failed;
        totals.released += s.released;
        totals.lost += s.lost;
      }
    });
    await Promise.race([counter.all, Promise.all(loops)]);
    const end = await waitUntil(async () => !(await probe.query(o.pendingSql ?? PENDING)).rows[0].e);
    onDrained?.();
    finished = true;
    if (o.pendingSql) stop.abort();
    await Promise.all(loops); // the last invocations exit after CONSUMER_IDLE_EXIT_MS of polling
    return {
      done: counter.handled,
      seconds: (end - t0) / 1000,
      invocations,
      logBytes: logs.bytes,
      claimMs,
      summaries: totals,
    };
  } finally {
    await probe.end();
  }
}

/** Enqueues through the API handler's batch route: POST /jobs/batch with 500 jobs per request. */
export async function apiBatchEnqueue(
  url: string,
  jobs: number,
  perRequest = 500,
  make: MakeApi = createApiHandler,
): Promise<{ seconds: number; requests: number }> {
  const api = make({ env: { DATABASE_URL: url }, logStream: discard() });
  // Warm (GET /health opens the pool's connection): a cold start is not the enqueue rate.
  await api(apiGet('/health'), lambdaContext('bench-api', 30_000));
  const body = { jobs: Array.from({ length: perRequest }, () => ({ type: 'example.echo', payload: {} })) };
  let requests = 0;
  const t0 = performance.now();
  for (let sent = 0; sent < jobs; sent += perRequest) {
    const part = sent + perRequest <= jobs ? body : { jobs: body.jobs.slice(0, jobs - sent) };
    const res = await api(apiPost('/jobs/batch', part), lambdaContext('bench-api', 30_000));
    requests++;
    const status = typeof res === 'object' ? res.statusCode : undefined;
    if (status !== 201 && status !== 200)
      throw new Error(`POST /jobs/batch answered ${status}: ${JSON.stringify(res).slice(0, 300)}`);
  }
  return { seconds: (performance.now() - t0) / 1000, requests };
}

/** Invokes the reaper handler until it has recovered `expected` leases (or a run recovers none). */
export async function reaperRecover(
  url: string,
  expected: number,
): Promise<{ seconds: number; recovered: number; invocations: number }> {
  const reaper = createReaperHandler({ env: { DATABASE_URL: url }, logStream: discard() });
  let recovered = 0;
  let invocations = 0;
  const t0 = performance.now();
  while (recovered < expected) {
    const s = await reaper({}, lambdaContext('bench-reaper', 60_000));
    invocations++;
    recovered += s.recovered;
    if (s.recovered === 0) break;
  }
  return { seconds: (performance.now() - t0) / 1000, recovered, invocations };
}
