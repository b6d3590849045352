/** Reaper Lambda, on a cron: materialises schedules (and wakes a consumer for them), recovers expired leases, prunes, exports the ledger metrics. Wiring only. */

import type { Context } from 'aws-lambda';
import { type Invoker, type ReaperSummary, runReaper } from './engine/index.ts';
import { consumerWaker } from './platform/invoker.ts';
import { collectLedger } from './platform/metrics.ts';
import { createRuntime, type LambdaHandler, lambdaHandler, type RuntimeOptions } from './platform/runtime.ts';

export interface ReaperHandlerOptions extends RuntimeOptions {
  /** Starts a consumer for a schedule's occurrence. Default: Lambda Invoke of CONSUMER_FUNCTION_NAME. */
  invoker?: Invoker;
}

export type ReaperHandler = LambdaHandler<unknown, ReaperSummary>;

export function createHandler(options: ReaperHandlerOptions = {}): ReaperHandler {
  const runtime = createRuntime('reaper', options);
  const { config, logger, db, obs } = runtime;
  const { metrics, gateway } = obs;
  // The api's waker, for the occurrences due before the next run (they are enqueued jobs, so the
  // invoke's reason is 'enqueue'): a consumer is invoked when their queue has none live, and
  // stays until they are due (CONSUMER_DELAY_STAY_MS).
  const wake = consumerWaker(config, {
    db,
    invoker: options.invoker,
    logger,
    onOutcome: (outcome) => metrics.wakes.inc({ outcome }),
  });

  /**
   * The ledger export: the exact totals and gauges from PostgreSQL, PUT under the one fixed
   * grouping key, then stale per-container groups deleted. Each step is bounded by
   * PUSH_TIMEOUT_MS and by the time left; none can fail the run.
   */
  const exportMetrics = async (context: Context) => {
    if (!gateway.enabled) return;
    const budget = () => Math.min(config.PUSH_TIMEOUT_MS, context.getRemainingTimeInMillis() - 100);
    try {
      const ledger = await metrics.track('read', () => collectLedger(db));
      await gateway.pushLedger(ledger, { timeoutMs: budget() });
    } catch (err) {
      logger.warn('ledger export failed', { error: err as Error });
    }
    const cleanup = await gateway.deleteStaleGroups(config.PUSHGATEWAY_STALE_SECONDS, {
      timeoutMs: budget(),
    });
    if (cleanup.deleted > 0)
      logger.info('deleted stale Pushgateway groups', { deleted: cleanup.deleted, kept: cleanup.kept });
    await obs.pushContainer(context.getRemainingTimeInMillis());
  };

  return lambdaHandler(runtime, async (_event, context) => {
    let summary: ReaperSummary;
    try {
      summary = await runReaper(
        { db, logger, wake, settings: { retentionDays: config.RETENTION_DAYS } },
        () => context.getRemainingTimeInMillis(),
      );
    } catch (err) {
      metrics.countDbError('reap');
      await exportMetrics(context);
      throw err;
    }
    await exportMetrics(context);
    return summary;
  });
}

export const handler = createHandler();
