/**
 * Scenario "deployed-shape trickle" (issue 17): the consumer runs as deployed, on a 60 s schedule
 * with the deployed idle exit (2 s) and invocation timeout (300 s), at most 4 at a time (a
 * reserved concurrency), and is otherwise started only by the api's wake invokes. 20 jobs/s for
 * 30 s go in one by one through the api handler, then 20 jobs with delaySeconds 5. Measured in
 * database time: started_at − created_at (started_at − run_at for the delayed), and invokes per
 * job. No cold start: an "invoke" is an in-process call of an already created handler.
 */
import type { Writable } from 'node:stream';
import { createHandler as createApiHandler } from '../../functions/api.ts';
import { createHandler as createConsumerHandler } from '../../functions/consumer.ts';
import type { Invoker, WakeReason } from '../../functions/engine/wake.ts';
import { apiPost, discard, lambdaContext } from './lambda.ts';
import { engineDb } from './pg.ts';
import { percentile } from './stats.ts';

export interface DeployedTrickleResult {
  trickleJobs: number;
  delayedJobs: number;
  startP50Ms: number;
  startP99Ms: number;
  startMaxMs: number;
  firstJobMs: number;
  delayedLateP50Ms: number;
  delayedLateP99Ms: number;
  delayedLateMaxMs: number;
  wakeInvokes: number;
  successorInvokes: number;
  scheduledInvocations: number;
  invocations: number;
  invokesPerJob: number;
  seconds: number;
}

const SCHEDULE_MS = 60_000;
const INVOCATION_MS = 300_000;
const RESERVED = 4;
const RATE = 20;
const TRICKLE_SECONDS = 30;
const DELAYED = 20;
const DELAY_SECONDS = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Counts {
  enqueue: number;
  successor: number;
  scheduled: number;
  invocations: number;
}

/**
 * RESERVED consumer containers behind one async invoke, as Lambda runs them: an event starts an
 * invocation on a free container, or waits in the queue until one is free.
 */
function reservedConsumers(env: Record<string, string>, logs: Writable) {
  const running = new Set<Promise<unknown>>();
  const counts: Counts = { enqueue: 0, successor: 0, scheduled: 0, invocations: 0 };
  let queued = 0;
  const containers = Array.from({ length: RESERVED }, () => ({
    busy: false,
    handler: createConsumerHandler({ env, logStream: logs, invoker: { invoke: (r) => invoke(r) } }),
  }));
  /** Starts an invocation on a free container; at the cap the event waits for one (Lambda's async queue). */
  const startInvocation = (): boolean => {
    const c = containers.find((x) => !x.busy);
    if (!c) return false;
    c.busy = true;
    counts.invocations++;
    const p = c
      .handler({}, lambdaContext('bench-consumer', INVOCATION_MS))
      .catch((err) => process.stderr.write(`consumer invocation failed: ${String(err)}\n`))
      .finally(() => {
        c.busy = false;
        running.delete(p);
        if (queued > 0) {
          queued--;
          startInvocation();
        }
      });
    running.add(p);
    return true;
  };
  /** An event for the consumer: a wake (enqueue, successor) or the schedule's tick. */
  const event = (reason: WakeReason | 'scheduled') => {
    counts[reason]++;
    if (!startInvocation()) queued++;
  };
  const invoke = async (reason: WakeReason): Promise<void> => event(reason);
  const invoker: Invoker = { invoke };
  return { invoker, tick: () => event('scheduled'), running, counts };
}

/** POST /jobs through the api handler, `n` bodies at RATE per second; the ids in order. */
async function paced(
  api: ReturnType<typeof createApiHandler>,
  n: number,
  body: (i: number) => unknown,
): Promise<string[]> {
  const start = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const wait = start + (i * 1000) / RATE - performance.now();
    if (wait > 0) await sleep(wait);
    const out = (await api(apiPost('/jobs', body(i)), lambdaContext('bench-api', 29_000))) as {
      statusCode: number;
      body: string;
    };
    if (out.statusCode !== 201) throw new Error(`enqueue answered ${out.statusCode}: ${out.body}`);
    ids.push(JSON.parse(out.body).id as string);
  }
  return ids;
}

/** The start and lateness figures of the finished jobs, in database time. */
async function measure(
  probe: ReturnType<typeof engineDb>,
  trickleIds: string[],
  delayedIds: string[],
  counts: Counts,
  t0: number,
): Promise<DeployedTrickleResult> {
  const { rows } = await probe.query<{ id: string; start_ms: number; late_ms: number }>(
    `SELECT id::text, extract(epoch FROM started_at - created_at) * 1000 AS start_ms,
            extract(epoch FROM started_at - run_at) * 1000 AS late_ms
       FROM jobs WHERE status = 'completed' ORDER BY id`,
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  const start = trickleIds.map((id) => Number(byId.get(id)!.start_ms));
  const late = delayedIds.map((id) => Number(byId.get(id)!.late_ms));
  const jobs = trickleIds.length + delayedIds.length;
  return {
    trickleJobs: trickleIds.length,
    delayedJobs: delayedIds.length,
    startP50Ms: percentile(start, 50),
    startP99Ms: percentile(start, 99),
    startMaxMs: Math.max(...start),
    firstJobMs: start[0]!,
    delayedLateP50Ms: percentile(late, 50),
    delayedLateP99Ms: percentile(late, 99),
    delayedLateMaxMs: Math.max(...late),
    wakeInvokes: counts.enqueue,
    successorInvokes: counts.successor,
    scheduledInvocations: counts.scheduled,
    invocations: counts.invocations,
    invokesPerJob: counts.enqueue / jobs,
    seconds: (performance.now() - t0) / 1000,
  };
}

export async function deployedShapeTrickle(
  url: string,
  logs: Writable = discard(),
): Promise<DeployedTrickleResult> {
  const t0 = performance.now();
  const env = { DATABASE_URL: url, CONSUMER_IDLE_EXIT_MS: '2000', LOG_LEVEL: 'warn' };
  const consumers = reservedConsumers(env, logs);
  const api = createApiHandler({ env, invoker: consumers.invoker, logStream: logs });

  // The schedule: a tick now, then every 60 s. The trickle starts once the first tick's
  // invocation has found nothing and left (the first job meets no live consumer).
  consumers.tick();
  const schedule = setInterval(consumers.tick, SCHEDULE_MS);
  while (consumers.running.size > 0) await sleep(50);

  const trickleIds = await paced(api, RATE * TRICKLE_SECONDS, (i) => ({
    type: 'example.echo',
    payload: { i },
  }));
  const delayedIds = await paced(api, DELAYED, (i) => ({
    type: 'example.echo',
    payload: { d: i },
    delaySeconds: DELAY_SECONDS,
  }));

  const probe = engineDb(url, 1, 'bench-probe');
  try {
    const pending = "SELECT count(*)::int AS n FROM jobs WHERE status IN ('queued', 'running')";
    while ((await probe.query<{ n: number }>(pending)).rows[0]!.n > 0) await sleep(50);
    clearInterval(schedule);
    // The invocations still staying leave on their own (idle exit, or the stay after a trickle).
    while (consumers.running.size > 0) await Promise.allSettled([...consumers.running]);
    return await measure(probe, trickleIds, delayedIds, consumers.counts, t0);
  } finally {
    clearInterval(schedule);
    await probe.end();
  }
}
