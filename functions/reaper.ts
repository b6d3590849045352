/** Reaper Lambda, on a cron: recovers expired leases, prunes, exports the ledger metrics. Wiring only. */

import type { Writable } from 'node:stream';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { Db } from './engine/queryable.ts';
import { type ReaperSummary, runReaper } from './engine/reaper.ts';
import { loadConfig } from './platform/config.ts';
import { connectFromConfig } from './platform/db-connect.ts';
import { createLogger } from './platform/logger.ts';
import { type ContainerMetrics, collectLedger } from './platform/metrics.ts';
import { createObservability } from './platform/observability.ts';

export interface ReaperHandlerOptions {
  env?: Record<string, string | undefined>;
  db?: Db;
  logStream?: Writable;
  metrics?: ContainerMetrics;
}

export type ReaperHandler = (event: unknown, context: Context) => Promise<ReaperSummary>;

export function createHandler(options: ReaperHandlerOptions = {}): ReaperHandler {
  const config = loadConfig(options.env ?? process.env);
  const logger = createLogger({
    serviceName: 'dte-reaper',
    level: config.LOG_LEVEL,
    stream: options.logStream,
  });
  const db = options.db ?? connectFromConfig(config, { applicationName: 'dte-reaper', max: 1 });
  const obs = createObservability('reaper', config, logger, options.metrics);
  const { metrics, gateway } = obs;

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

  return middy<unknown, ReaperSummary>()
    .use(injectLambdaContext(logger))
    .handler(async (_event, context) => {
      let summary: ReaperSummary;
      try {
        summary = await runReaper({ db, logger, settings: { retentionDays: config.RETENTION_DAYS } }, () =>
          context.getRemainingTimeInMillis(),
        );
      } catch (err) {
        metrics.countDbError('reap');
        await exportMetrics(context);
        throw err;
      }
      await exportMetrics(context);
      return summary;
    }) as unknown as ReaperHandler;
}

export const handler = createHandler();
