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

export interface ReaperHandlerOptions {
  env?: Record<string, string | undefined>;
  db?: Db;
  logStream?: Writable;
  /** Runs after recovery within the reserved time (the ledger metrics export). */
  afterRun?: (summary: ReaperSummary, db: Db, context: Context) => Promise<void>;
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
  return middy<unknown, ReaperSummary>()
    .use(injectLambdaContext(logger))
    .handler(async (_event, context) => {
      const summary = await runReaper(
        { db, logger, settings: { retentionDays: config.RETENTION_DAYS } },
        () => context.getRemainingTimeInMillis(),
      );
      await options.afterRun?.(summary, db, context);
      return summary;
    }) as unknown as ReaperHandler;
}

export const handler = createHandler();
