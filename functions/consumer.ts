/** Consumer Lambda, invoked by EventBridge Scheduler: drains jobs within the invocation. Wiring only. */

import type { LambdaClient } from '@aws-sdk/client-lambda';
import { z } from 'zod';
import {
  type ConsumerObserver,
  type ConsumerSummary,
  fanoutCount,
  fanoutPayload,
  type Invoker,
  runConsumer,
  settledCounts,
  wantsSuccessor,
} from './engine/index.ts';
import { lambdaInvoker } from './platform/invoker.ts';
import { createRuntime, type LambdaHandler, lambdaHandler, type RuntimeOptions } from './platform/runtime.ts';
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

export interface ConsumerHandlerOptions extends RuntimeOptions {
  registry?: TaskRegistry;
  /** Extra hooks beside the container metrics (tests, benchmarks). */
  observer?: ConsumerObserver;
  lambda?: Pick<LambdaClient, 'send'>;
  /** Stops claiming when aborted (the local engine's Ctrl-C). */
  stopSignal?: AbortSignal;
  /** Starts the successor of an invocation that ran out of time (default: Lambda Invoke of itself). */
  invoker?: Invoker;
}

export type ConsumerHandler = LambdaHandler<unknown, ConsumerSummary & { fannedOut: number }>;

export function createHandler(options: ConsumerHandlerOptions = {}): ConsumerHandler {
  const runtime = createRuntime('consumer', options);
  const { config, logger, db, obs } = runtime;
  const registry = options.registry ?? createRegistry();
  const settings = consumerSettings(config);
  const functionName = config.CONSUMER_FUNCTION_NAME;
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

  return lambdaHandler(runtime, async (event, context) => {
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
  });
}

export const handler = createHandler();
