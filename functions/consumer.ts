/** Consumer Lambda, invoked by EventBridge Scheduler: drains jobs within the invocation. Wiring only. */

import type { Writable } from 'node:stream';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { type ConsumerObserver, type ConsumerSummary, runConsumer } from './engine/consumer.ts';
import { fanoutCount, fanoutPayload, settledCounts, wantsSuccessor } from './engine/fanout.ts';
import type { Db } from './engine/queryable.ts';
import type { Invoker } from './engine/wake.ts';
import { loadConfig } from './platform/config.ts';
import { connectFromConfig } from './platform/db-connect.ts';
import { lambdaInvoker } from './platform/invoker.ts';
import { createLogger } from './platform/logger.ts';
import type { ContainerMetrics } from './platform/metrics.ts';
import { createObservability } from './platform/observability.ts';
import { consumerSettings } from './platform/settings.ts';
import { createRegistry, type TaskRegistry } from './tasks/index.ts';

/** A scheduled event (any EventBridge Scheduler input), or a fan-out invocation from another consumer. */
const eventSchema = z.union([
  z.null(),
  z.undefined(),
  z.looseObject({
    fanoutDepth: z.number().int().min(0).max(10).optional(),
    wake: z.string().max(32).optional(),
  }),
]);

export interface ConsumerHandlerOptions {
  env?: Record<string, string | undefined>;
  db?: Db;
  registry?: TaskRegistry;
  logStream?: Writable;
  /** Extra hooks beside the container metrics (tests, benchmarks). */
  observer?: ConsumerObserver;
  /** Share a container registry (the local engine renders them on /metrics). */
  metrics?: ContainerMetrics;
  lambda?: Pick<LambdaClient, 'send'>;
  /** Stops claiming when aborted (the local engine's Ctrl-C). */
  stopSignal?: AbortSignal;
  /** Starts the successor of an invocation that ran out of time (default: Lambda Invoke of itself). */
  invoker?: Invoker;
}

export type ConsumerHandler = (
  event: unknown,
  context: Context,
) => Promise<ConsumerSummary & { fannedOut: number }>;

export function createHandler(options: ConsumerHandlerOptions = {}): ConsumerHandler {
  const env = options.env ?? process.env;
  const config = loadConfig(env);
  const logger = createLogger({
    serviceName: 'dte-consumer',
    level: config.LOG_LEVEL,
    stream: options.logStream,
  });
  const db = options.db ?? connectFromConfig(config, { applicationName: 'dte-consumer', max: 1 });
  const registry = options.registry ?? createRegistry();
  const settings = consumerSettings(config);
  const functionName = env.CONSUMER_FUNCTION_NAME;
  const obs = createObservability('consumer', config, logger, options.metrics);
  const extra = options.observer;
  const observer: ConsumerObserver = extra
    ? {
        claimed: (ms, n) => {
          obs.metrics.observer.claimed(ms, n);
          extra.claimed?.(ms, n);
        },
        ran: (type, outcome, ms) => {
          obs.metrics.observer.ran(type, outcome, ms);
          extra.ran?.(type, outcome, ms);
        },
        dbError: (op, err) => {
          obs.metrics.observer.dbError(op, err);
          extra.dbError?.(op, err);
        },
      }
    : obs.metrics.observer;

  const fanOut = async (summary: ConsumerSummary, depth: number): Promise<number> => {
    const count = fanoutCount(summary, depth, { fanoutMax: config.CONSUMER_FANOUT_MAX, functionName });
    if (count === 0) return 0;
    // Loaded on first fan-out only: the SDK client is most of a cold container's heap otherwise.
    const { InvokeCommand, LambdaClient } = await import('@aws-sdk/client-lambda');
    const lambda = options.lambda ?? new LambdaClient({});
    const payload = fanoutPayload(depth);
    const results = await Promise.allSettled(
      Array.from({ length: count }, () =>
        lambda.send(
          new InvokeCommand({ FunctionName: functionName, InvocationType: 'Event', Payload: payload }),
        ),
      ),
    );
    const { started, failed, firstReason } = settledCounts(results);
    if (failed > 0) logger.warn('fan-out invocations failed', { failed, reason: firstReason });
    return started;
  };

  const invoker = options.invoker ?? (functionName ? lambdaInvoker(functionName, options.lambda) : undefined);
  const successor = async (summary: ConsumerSummary, depth: number, fannedOut: number) => {
    if (!invoker || !wantsSuccessor(summary, depth, fannedOut, settings.liveMs)) return;
    try {
      await invoker.invoke('successor');
    } catch (err) {
      logger.warn('could not invoke a successor; the schedule will', { reason: String(err) });
    }
  };

  return middy<unknown, ConsumerSummary & { fannedOut: number }>()
    .use(injectLambdaContext(logger))
    .handler(async (event, context) => {
      const parsed = eventSchema.safeParse(event);
      const depth = parsed.success && parsed.data ? (parsed.data.fanoutDepth ?? 0) : 0;
      if (!parsed.success) logger.warn('unexpected consumer event shape; running as a scheduled invocation');
      const summary = await runConsumer(
        { db, tasks: registry, logger, settings, observer },
        {
          workerId: context.awsRequestId,
          remainingMs: () => context.getRemainingTimeInMillis(),
          stopSignal: options.stopSignal,
        },
      );
      const fannedOut = await fanOut(summary, depth);
      await successor(summary, depth, fannedOut);
      await obs.pushContainer(context.getRemainingTimeInMillis());
      // An invocation that found nothing is routine (every schedule tick on an idle queue): debug.
      if (summary.claimed === 0 && summary.exitReason === 'idle')
        logger.debug('consumer invocation done', { ...summary, fannedOut });
      else logger.info('consumer invocation done', { ...summary, fannedOut });
      return { ...summary, fannedOut };
    }) as unknown as ConsumerHandler;
}

export const handler = createHandler();
