/**
 * What every entry file builds at cold start, in one place: the configuration (validated
 * whole: a bad or missing variable throws a ConfigError naming it, before any invocation), the
 * logger, the database (lazy: no connection until the first query), and the container's
 * metrics. An entry file is then its handler function and its middlewares.
 */
import type { Writable } from 'node:stream';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { Db } from '../engine/index.ts';
import { type Config, loadConfig } from './config.ts';
import { connectFromConfig } from './db-connect.ts';
import { createLogger, type Logger } from './logger.ts';
import type { ContainerMetrics, FunctionName } from './metrics.ts';
import { createObservability, type FunctionObservability } from './observability.ts';

export type Environment = Record<string, string | undefined>;

/**
 * What each createHandler accepts besides its own options. Every one is optional: the defaults
 * are the deployed function's (process.env, a pool from the configured credentials, stdout, a
 * fresh container registry); tests and the local engine pass their own.
 */
export interface RuntimeOptions {
  env?: Environment;
  db?: Db;
  logStream?: Writable;
  metrics?: ContainerMetrics;
}

export type FunctionKind = Exclude<FunctionName, 'local'>;

export interface Runtime {
  readonly kind: FunctionKind;
  readonly config: Config;
  readonly logger: Logger;
  readonly db: Db;
  /** The container's metrics and Pushgateway, built on first use (migrate never uses them). */
  readonly obs: FunctionObservability;
}

/** A Lambda handler as the runtime calls it (and the local engine and the tests). */
export type LambdaHandler<TEvent, TResult> = (event: TEvent, context: Context) => Promise<TResult>;

export function createRuntime(kind: FunctionKind, options: RuntimeOptions = {}): Runtime {
  const config = loadConfig(options.env);
  const serviceName = `dte-${kind}`;
  const logger = createLogger({ serviceName, level: config.LOG_LEVEL, stream: options.logStream });
  // One connection per container: a container runs one invocation at a time.
  const db = options.db ?? connectFromConfig(config, { applicationName: serviceName, max: 1 });
  let obs: FunctionObservability | undefined;
  return {
    kind,
    config,
    logger,
    db,
    get obs() {
      obs ??= createObservability(kind, config, logger, options.metrics);
      return obs;
    },
  };
}

/**
 * The handler function behind middy: the Lambda context injected into the logger first, then
 * `middlewares` in order. The result is a plain two-argument async function.
 */
export function lambdaHandler<TEvent, TResult>(
  runtime: Runtime,
  handler: LambdaHandler<TEvent, TResult>,
  middlewares: ReadonlyArray<middy.MiddlewareObj<TEvent, TResult>> = [],
): LambdaHandler<TEvent, TResult> {
  const chain = middy<TEvent, TResult>().use(injectLambdaContext(runtime.logger));
  for (const middleware of middlewares) chain.use(middleware);
  const wrapped = chain.handler(handler);
  return (event, context) => wrapped(event, context);
}
