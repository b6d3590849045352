/** API Lambda (HTTP API, payload v2): enqueue, batch enqueue, get, cancel, health. Wiring only. */

import type middy from '@middy/core';
import httpErrorHandler from '@middy/http-error-handler';
import httpHeaderNormalizer from '@middy/http-header-normalizer';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';
import type { Invoker } from './engine/index.ts';
import { jsonBody } from './http/body.ts';
import { errorShape } from './http/errors.ts';
import { route } from './http/routes.ts';
import { consumerWaker } from './platform/invoker.ts';
import { createRuntime, type LambdaHandler, lambdaHandler, type RuntimeOptions } from './platform/runtime.ts';
import { createRegistry, type TaskRegistry } from './tasks/index.ts';

export interface ApiHandlerOptions extends RuntimeOptions {
  registry?: TaskRegistry;
  /** Starts a consumer invocation (wake on enqueue). Default: Lambda Invoke of CONSUMER_FUNCTION_NAME. */
  invoker?: Invoker;
}

/**
 * The api pushes its container figures at most this often: a push per request would add up to
 * PUSH_TIMEOUT_MS to every response.
 */
const API_PUSH_INTERVAL_MS = 15_000;

export type ApiHandler = LambdaHandler<APIGatewayProxyEventV2, APIGatewayProxyResultV2>;
type ApiMiddleware = middy.MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyResultV2>;

export function createHandler(options: ApiHandlerOptions = {}): ApiHandler {
  const runtime = createRuntime('api', options);
  const { config, logger, db, obs } = runtime;
  // Wake on enqueue: on by default wherever there is a consumer to invoke.
  const wake = consumerWaker(config, {
    db,
    invoker: options.invoker,
    logger,
    onOutcome: (outcome) => obs.metrics.wakes.inc({ outcome }),
  });
  const deps = {
    db,
    registry: options.registry ?? createRegistry(),
    maxPayloadBytes: config.MAX_PAYLOAD_BYTES,
    jobsVisibleTo: config.JOBS_VISIBLE_TO,
    consumerTimeoutSeconds: config.CONSUMER_TIMEOUT_SECONDS,
    wake,
  };
  let lastPush = 0;
  const pushThrottled: ApiMiddleware = {
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

  return lambdaHandler(runtime, (event) => route(event, deps), [
    pushThrottled,
    httpErrorHandler({ logger: false }),
    errorShape(logger, countDbError),
    httpHeaderNormalizer(),
    jsonBody(),
  ]);
}

export const handler = createHandler();
