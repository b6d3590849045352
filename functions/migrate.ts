/** Migrate Lambda, run by the CDK trigger at deploy: applies pending migrations. Wiring only. */

import type { Writable } from 'node:stream';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { loadMigrations, type MigrateResult, migrate } from './engine/migrator.ts';
import type { Db } from './engine/queryable.ts';
import { loadConfig } from './platform/config.ts';
import { connectFromConfig } from './platform/db-connect.ts';
import { createLogger } from './platform/logger.ts';
import { migrationsDir } from './platform/paths.ts';

export interface MigrateHandlerOptions {
  env?: Record<string, string | undefined>;
  db?: Db;
  dir?: string;
  logStream?: Writable;
}

export function createHandler(
  options: MigrateHandlerOptions = {},
): (event: unknown, context: Context) => Promise<MigrateResult> {
  const config = loadConfig(options.env ?? process.env);
  const logger = createLogger({
    serviceName: 'dte-migrate',
    level: config.LOG_LEVEL,
    stream: options.logStream,
  });
  const db = options.db ?? connectFromConfig(config, { applicationName: 'dte-migrate', max: 1 });
  return middy<unknown, MigrateResult>()
    .use(injectLambdaContext(logger))
    .handler(async () => {
      // A failure throws: the deploy-time trigger fails and the deployment rolls back.
      const files = loadMigrations(options.dir ?? migrationsDir());
      const result = await migrate(db, files, (line) => logger.info(line));
      logger.info('migrations done', { ...result });
      return result;
    }) as unknown as (event: unknown, context: Context) => Promise<MigrateResult>;
}

export const handler = createHandler();
