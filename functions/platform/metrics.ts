import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import {
  DB_OPERATIONS,
  type DbOperation,
  type LedgerInput,
  type Queryable,
  type RunOutcome,
  readLedger,
  STUCK_LEASE_MULTIPLE,
} from '../engine/index.ts';

export { type LedgerInput, STUCK_LEASE_MULTIPLE };

/**
 * Two kinds of registry, because a Pushgateway replaces a group on every PUT and never adds:
 *
 * - The ledger: the exact totals and gauges read from PostgreSQL, built fresh for each export
 *   and pushed by the reaper under one fixed grouping key. Every push is the whole truth, so a
 *   lost or repeated push changes nothing.
 * - One registry per container (consumer, api, reaper): what only the process can measure
 *   (claim latency, run duration, DB errors, push failures), pushed under a grouping key naming
 *   the function and the container, and deleted by the reaper once stale.
 *
 * No metric is ever registered on prom-client's global registry.
 */

export const METRIC = {
  submitted: 'phase6_task_submitted_total',
  completed: 'phase6_task_completed_total',
  failed: 'phase6_task_failed_total',
  recovered: 'phase6_task_recovered_total',
  running: 'phase6_task_running',
  queueReady: 'phase6_queue_ready',
  queueScheduled: 'phase6_queue_scheduled',
  queueRunning: 'phase6_queue_running',
  queueOldestReadyAge: 'phase6_queue_oldest_ready_age_seconds',
  queuePaused: 'phase6_queue_paused',
  queueLimitMaxRunning: 'phase6_queue_limit_max_running',
  queueLimitRate: 'phase6_queue_limit_rate_per_second',
  scheduleLastEnqueued: 'phase6_schedule_last_enqueued_timestamp_seconds',
  scheduleNextOccurrence: 'phase6_schedule_next_occurrence_timestamp_seconds',
  runningOldestAge: 'phase6_task_running_oldest_age_seconds',
  runningStuck: 'phase6_task_running_stuck',
  oldestTransactionAge: 'phase6_oldest_transaction_age_seconds',
  oldestTransactionSeesAll: 'phase6_oldest_transaction_sees_all_roles',
  claimLatency: 'dte_claim_latency_seconds',
  runDuration: 'dte_task_run_duration_seconds',
  dbErrors: 'dte_db_errors_total',
  pushFailures: 'dte_push_failures_total',
  wakes: 'dte_wake_total',
} as const;

/** What a wake attempt after an enqueue came to (engine/wake.ts WakeOutcome). */
export const WAKE_OUTCOMES = ['invoked', 'invoke_failed', 'skipped', 'check_failed'] as const;

const FROM_PG = 'Source: PostgreSQL, read by the reaper and pushed as an absolute value.';

// ---------------------------------------------------------------------------------------------
// Ledger

/** The gauges exported only for the queues or schedules that have a value. */
const SPARSE_HELP = {
  [METRIC.queueLimitMaxRunning]: "The queue's max_running limit (only queues that have one).",
  [METRIC.queueLimitRate]: "The queue's rate limit in claims per second (only queues that have one).",
  [METRIC.scheduleLastEnqueued]:
    'Unix time of the latest occurrence of the schedule enqueued (enabled schedules that have enqueued one).',
  [METRIC.scheduleNextOccurrence]:
    "Unix time of the schedule's cursor: its earliest occurrence not yet enqueued (enabled schedules). Normally about a minute ahead; in the past means an occurrence is being missed.",
} as const;

/**
 * A fresh registry holding the ledger. prom-client counters can only go up, so each total is
 * one inc() by the absolute value on a registry that lives for this export only: the
 * exposition says `counter`, and the value is exactly the PostgreSQL total.
 */
export function ledgerRegistry({
  snapshot,
  runningAges = [],
  limits = [],
  schedules = [],
  oldestTransaction,
}: LedgerInput): Registry {
  const registry = new Registry();
  const total = (name: string, help: string, value: number) => {
    new Counter({ name, help: `${help} ${FROM_PG}`, registers: [registry] }).inc(value);
  };
  total(METRIC.submitted, 'Jobs ever enqueued (every row inserted into jobs).', snapshot.totals.submitted);
  total(
    METRIC.completed,
    'Transitions to completed, by consumers or by hand-written SQL.',
    snapshot.totals.completed,
  );
  total(
    METRIC.failed,
    'Transitions to failed: permanent errors, exhausted attempts, cancels (API, taskctl or runbook SQL).',
    snapshot.totals.failed,
  );
  total(
    METRIC.recovered,
    'Expired leases taken back by the reaper (requeued, or failed when attempts were exhausted).',
    snapshot.totals.recovered,
  );
  new Gauge({
    name: METRIC.running,
    help: `Jobs in status running now, all queues. ${FROM_PG}`,
    registers: [registry],
  }).set(snapshot.running);

  const perQueue = (name: string, help: string) =>
    new Gauge({ name, help: `${help} ${FROM_PG}`, labelNames: ['queue'] as const, registers: [registry] });
  const ready = perQueue(METRIC.queueReady, 'Queued jobs whose run_at has come (claimable unless paused).');
  const scheduled = perQueue(METRIC.queueScheduled, 'Queued jobs whose run_at is still in the future.');
  const running = perQueue(METRIC.queueRunning, 'Jobs in status running now.');
  const oldest = perQueue(
    METRIC.queueOldestReadyAge,
    'Seconds the oldest ready job has waited since its run_at; 0 when none waits.',
  );
  const paused = perQueue(METRIC.queuePaused, '1 when consumers are told not to claim from the queue.');
  const runningAge = perQueue(
    METRIC.runningOldestAge,
    'Seconds since the oldest running attempt was claimed; 0 when nothing runs.',
  );
  const stuck = perQueue(
    METRIC.runningStuck,
    `Running jobs whose lease went unrenewed for ${STUCK_LEASE_MULTIPLE} lease lengths (heartbeat gone, not yet recovered).`,
  );

  const ages = new Map(runningAges.map((a) => [a.queue, a]));
  const queues = new Set([...snapshot.queues.map((q) => q.queue), ...ages.keys()]);
  for (const queue of [...queues].sort()) {
    const q = snapshot.queues.find((g) => g.queue === queue);
    const a = ages.get(queue);
    ready.set({ queue }, q?.ready ?? 0);
    scheduled.set({ queue }, q?.scheduled ?? 0);
    running.set({ queue }, q?.running ?? a?.running ?? 0);
    oldest.set({ queue }, q?.oldestReadyAgeSeconds ?? 0);
    paused.set({ queue }, q?.paused ? 1 : 0);
    runningAge.set({ queue }, a?.oldestAgeSeconds ?? 0);
    stuck.set({ queue }, a?.stuck ?? 0);
  }

  // Gauges only for the rows that have a value (a queue without that limit, a schedule not yet run).
  const sparse = <T>(
    label: 'queue' | 'schedule',
    rows: readonly T[],
    key: (row: T) => string,
    gauges: ReadonlyArray<readonly [name: keyof typeof SPARSE_HELP, value: (row: T) => number | null]>,
  ) => {
    for (const [name, value] of gauges) {
      const help = `${SPARSE_HELP[name]} ${FROM_PG}`;
      const gauge = new Gauge({ name, help, labelNames: [label], registers: [registry] });
      for (const row of rows) {
        const v = value(row);
        if (v !== null) gauge.set({ [label]: key(row) }, v);
      }
    }
  };
  sparse('queue', limits, (l) => l.name, [
    [METRIC.queueLimitMaxRunning, (l) => l.maxRunning],
    [METRIC.queueLimitRate, (l) => l.ratePerSecond],
  ]);
  sparse('schedule', schedules, (s) => s.name, [
    [METRIC.scheduleLastEnqueued, (s) => s.lastRunAt],
    [METRIC.scheduleNextOccurrence, (s) => s.nextAt],
  ]);
  if (oldestTransaction) {
    new Gauge({
      name: METRIC.oldestTransactionAge,
      help: `Seconds the oldest open transaction in the database has held back the snapshot horizon (pg_stat_activity, client sessions with a snapshot or a transaction id, the reader excluded); 0 when none. While it stays open every claim walks the jobs claimed since it began. Counts only the reader's own role unless ${METRIC.oldestTransactionSeesAll} is 1. ${FROM_PG}`,
      registers: [registry],
    }).set(oldestTransaction.ageSeconds);
    new Gauge({
      name: METRIC.oldestTransactionSeesAll,
      help: `1 when the reader sees every role's sessions (pg_read_all_stats or pg_monitor); 0: ${METRIC.oldestTransactionAge} covers only its own role (docs/DEPLOY.md). ${FROM_PG}`,
      registers: [registry],
    }).set(oldestTransaction.seesAllRoles ? 1 : 0);
  }
  return registry;
}

/** Reads the ledger from PostgreSQL (engine readLedger) and builds its registry. */
export async function collectLedger(db: Queryable): Promise<Registry> {
  return ledgerRegistry(await readLedger(db));
}

// ---------------------------------------------------------------------------------------------
// Per-container figures

export const PUSH_TARGETS = ['ledger', 'container', 'cleanup'] as const;
export type PushTarget = (typeof PUSH_TARGETS)[number];

export type FunctionName = 'api' | 'consumer' | 'reaper' | 'migrate' | 'local';

export interface ContainerMetricsOptions {
  fn: FunctionName | (string & {});
  /** Unique per container (e.g. the log stream name, or a random id taken at cold start). */
  containerId: string;
}

export interface ContainerMetrics {
  readonly registry: Registry;
  readonly fn: string;
  readonly containerId: string;
  readonly claimLatency: Histogram<'outcome'>;
  readonly runDuration: Histogram<'task_type' | 'outcome'>;
  readonly dbErrors: Counter<'operation'>;
  readonly pushFailures: Counter<'target'>;
  /** Wake attempts after an enqueue, by outcome (api; the local engine's too). */
  readonly wakes: Counter<'outcome'>;
  /** One claim statement: its duration, and whether it returned jobs. */
  observeClaim(seconds: number, claimed: number): void;
  observeRun(taskType: string, outcome: RunOutcome, seconds: number): void;
  countDbError(operation: DbOperation): void;
  countPushFailure(target: PushTarget): void;
  /** Runs `fn`; if it throws, counts a DB error for `operation` and rethrows. */
  track<T>(operation: DbOperation, fn: () => Promise<T>): Promise<T>;
  /** The same, in the shape of the engine consumer's ConsumerObserver (milliseconds in). */
  readonly observer: {
    claimed(latencyMs: number, count: number): void;
    ran(type: string, outcome: RunOutcome, durationMs: number): void;
    dbError(operation: DbOperation, err: unknown): void;
  };
}

// A claim is one indexed UPDATE … SKIP LOCKED: single milliseconds on an idle database, tens
// under contention; the top buckets catch pool waits and RDS Proxy queueing.
/** Every per-container series says where it was measured. */
const IN_CONTAINER = 'Measured in this container.';

const CLAIM_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
// Tasks range from an echo (sub-millisecond) to the Lambda ceiling of 900 s.
const RUN_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];

/**
 * A registry for one container. Its samples carry `function` and `instance` labels (the same
 * values as its Pushgateway grouping key), so several containers' registries can be rendered
 * side by side on the local engine's /metrics without colliding.
 */
export function createContainerMetrics({ fn, containerId }: ContainerMetricsOptions): ContainerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ function: fn, instance: containerId });
  const claimLatency = new Histogram({
    name: METRIC.claimLatency,
    help: 'Duration of one claim statement, in seconds; outcome=claimed when it returned jobs, empty otherwise. Measured in this container.',
    labelNames: ['outcome'] as const,
    buckets: CLAIM_BUCKETS,
    registers: [registry],
  });
  const runDuration = new Histogram({
    name: METRIC.runDuration,
    help: "Wall time of one task attempt, in seconds, by task type and the attempt's outcome. Measured in this container.",
    labelNames: ['task_type', 'outcome'] as const,
    buckets: RUN_BUCKETS,
    registers: [registry],
  });
  const counter = <L extends string>(name: string, help: string, label: L) =>
    new Counter({
      name,
      help: `${help} ${IN_CONTAINER}`,
      labelNames: [label] as const,
      registers: [registry],
    });
  const dbErrors = counter(
    METRIC.dbErrors,
    'Database statements that threw, by engine operation.',
    'operation',
  );
  const pushFailures = counter(
    METRIC.pushFailures,
    'Pushgateway requests that failed or timed out, by what was pushed.',
    'target',
  );
  const wakes = counter(
    METRIC.wakes,
    'Wake attempts after an enqueue, by outcome: invoked (a consumer invocation was started), invoke_failed (the invoke threw; the schedule is the fallback), check_failed (the liveness check threw), skipped (a consumer was live or the debounce held).',
    'outcome',
  );
  // One observation per job: the labelled child of each (type, outcome) is kept, so that an
  // observation makes no labels object and closure of its own.
  type RunChild = ReturnType<typeof runDuration.labels>;
  const runChildren = new Map<RunOutcome, Map<string, RunChild>>();
  const runDurationFor = (type: string, outcome: RunOutcome): RunChild => {
    let byType = runChildren.get(outcome);
    if (!byType) {
      byType = new Map();
      runChildren.set(outcome, byType);
    }
    let child = byType.get(type);
    if (!child) {
      child = runDuration.labels({ task_type: type, outcome });
      byType.set(type, child);
    }
    return child;
  };
  // Start every error series at 0: increase() cannot see a counter's first sample, so a series
  // born at 1 would hide the first error from the DB-errors alert.
  for (const operation of DB_OPERATIONS) dbErrors.inc({ operation }, 0);
  for (const target of PUSH_TARGETS) pushFailures.inc({ target }, 0);
  if (fn === 'api') for (const outcome of WAKE_OUTCOMES) wakes.inc({ outcome }, 0);

  return {
    registry,
    fn,
    containerId,
    claimLatency,
    runDuration,
    dbErrors,
    pushFailures,
    wakes,
    observeClaim(seconds, claimed) {
      claimLatency.observe({ outcome: claimed > 0 ? 'claimed' : 'empty' }, seconds);
    },
    observeRun(taskType, outcome, seconds) {
      runDuration.observe({ task_type: taskType, outcome }, seconds);
    },
    countDbError(operation) {
      dbErrors.inc({ operation });
    },
    countPushFailure(target) {
      pushFailures.inc({ target });
    },
    async track(operation, fn) {
      try {
        return await fn();
      } catch (err) {
        dbErrors.inc({ operation });
        throw err;
      }
    },
    observer: {
      claimed: (latencyMs, count) =>
        claimLatency.observe({ outcome: count > 0 ? 'claimed' : 'empty' }, latencyMs / 1000),
      ran: (type, outcome, durationMs) => runDurationFor(type, outcome).observe(durationMs / 1000),
      dbError: (operation) => dbErrors.inc({ operation }),
    },
  };
}

/** Node process figures (CPU, memory, event loop lag) for the local engine's /metrics. */
export function createProcessRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

// ---------------------------------------------------------------------------------------------
// Exposition

export const EXPOSITION_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

interface Family {
  help: string;
  type: string;
  samples: string[];
}

/**
 * Renders several registries as one Prometheus text exposition. Families with the same name
 * (e.g. the histograms of two local consumers) are merged under one HELP and TYPE, as the
 * format requires; the same name with two different types is a programming error and throws.
 */
export async function renderExposition(...registries: Registry[]): Promise<string> {
  const families = new Map<string, Family>();
  for (const registry of registries) {
    let current: Family | undefined;
    for (const line of (await registry.metrics()).split('\n')) {
      if (line === '') continue;
      const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (meta) {
        const [, kind, name, rest] = meta as unknown as [string, 'HELP' | 'TYPE', string, string];
        let family = families.get(name);
        if (!family) {
          family = { help: '', type: '', samples: [] };
          families.set(name, family);
        }
        if (kind === 'HELP' && family.help === '') family.help = rest;
        if (kind === 'TYPE') {
          if (family.type !== '' && family.type !== rest) {
            throw new Error(`metric ${name} is exposed as both ${family.type} and ${rest}`);
          }
          family.type = rest;
        }
        current = family;
        continue;
      }
      if (line.startsWith('#')) continue;
      current?.samples.push(line);
    }
  }
  const out: string[] = [];
  for (const [name, f] of families) {
    out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`, ...f.samples);
  }
  return `${out.join('\n')}\n`;
}
