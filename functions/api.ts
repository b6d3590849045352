/** API Lambda (HTTP API, payload v2): enqueue, batch enqueue, get, cancel, health. Wiring only. */

import type { Writable } from 'node:stream';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import httpErrorHandler from '@middy/http-error-handler';
import httpHeaderNormalizer from '@middy/http-header-normalizer';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from 'aws-lambda';
import type { Db } from './engine/queryable.ts';
import { jsonBody } from './http/body.ts';
import { errorShape } from './http/errors.ts';
import { route } from './http/routes.ts';
import { loadConfig } from './platform/config.ts';
import { connectFromConfig } from './platform/db-connect.ts';
import { createLogger } from './platform/logger.ts';
import type { ContainerMetrics } from './platform/metrics.ts';
import { createObservability } from './platform/observability.ts';
import { createRegistry, type TaskRegistry } from './tasks/index.ts';

export interface ApiHandlerOptions {
  env?: Record<string, string | undefined>;
  db?: Db;
  registry?: TaskRegistry;
  logStream?: Writable;
  metrics?: ContainerMetrics;
}

/**
 * The api pushes its container figures at most this often: a push per request would add up to
 * PUSH_TIMEOUT_MS to every response.
 */
const API_PUSH_INTERVAL_MS = 15_000;

export type ApiHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyResultV2>;

export function createHandler(options: ApiHandlerOptions = {}): ApiHandler {
  const config = loadConfig(options.env ?? process.env);
  const logger = createLogger({ serviceName: 'dte-api', level: config.LOG_LEVEL, stream: options.logStream });
  const db = options.db ?? connectFromConfig(config, { applicationName: 'dte-api', max: 1 });
  const registry = options.registry ?? createRegistry();
  const deps = {
    db,
    registry,
    maxPayloadBytes: config.MAX_PAYLOAD_BYTES,
    jobsVisibleTo: config.JOBS_VISIBLE_TO,
    consumerTimeoutSeconds: config.CONSUMER_TIMEOUT_SECONDS,
  };
  const obs = createObservability('api', config, logger, options.metrics);
  let lastPush = 0;
  const pushThrottled: middy.MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyResultV2> = {
    after: async (request) => {
      if (!obs.gateway.enabled || Date.now() - lastPush < API_PUSH_INTERVAL_MS) return;
      lastPush = Date.now();
      await obs.pushContainer(request.context.getRemainingTimeInMillis());
    },
  };
  const countDbError = (event: APIGatewayProxyEventV2) =>
    obs.metrics.countDbError(
      event.requestContext?.http?.method === 'POST' && !event.rawPath?.endsWith('/cancel')
        ? 'enqueue'
        : 'read',
    );

  return middy<APIGatewayProxyEventV2, APIGatewayProxyResultV2>()
    .use(injectLambdaContext(logger))
    .use(pushThrottled)
    .use(httpErrorHandler({ logger: false }))
    .use(errorShape(logger, countDbError))
    .use(httpHeaderNormalizer())
    .use(jsonBody())
    .handler((event) => route(event as never, deps)) as unknown as ApiHandler;
}

export const handler = createHandler();
