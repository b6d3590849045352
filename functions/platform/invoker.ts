import type { LambdaClient } from '@aws-sdk/client-lambda';
import { configuredWaker, type Invoker } from '../engine/index.ts';

/** A wake invoke that takes longer than this is given up (counted as failed): the enqueue waits for it. */
const INVOKE_TIMEOUT_MS = 1000;

/**
 * Invokes the consumer function asynchronously (InvocationType Event): Lambda queues the event
 * and answers 202 at once. The SDK client is loaded on first use only (cold-start heap).
 */
export function lambdaInvoker(functionName: string, client?: Pick<LambdaClient, 'send'>): Invoker {
  let lambda: Pick<LambdaClient, 'send'> | undefined = client;
  return {
    async invoke(reason) {
      const { InvokeCommand, LambdaClient } = await import('@aws-sdk/client-lambda');
      lambda ??= new LambdaClient({});
      const payload = new TextEncoder().encode(JSON.stringify({ wake: reason }));
      await lambda.send(
        new InvokeCommand({ FunctionName: functionName, InvocationType: 'Event', Payload: payload }),
        { abortSignal: AbortSignal.timeout(INVOKE_TIMEOUT_MS) },
      );
    },
  };
}

/**
 * The wake-on-enqueue waker of a function that may invoke the consumer (the api after an
 * enqueue, the reaper after materialising schedule occurrences): the injected invoker (tests),
 * else the consumer function named by CONSUMER_FUNCTION_NAME; undefined when wake is off or
 * there is none to invoke.
 */
export function consumerWaker(
  config: Parameters<typeof configuredWaker>[0] & { CONSUMER_FUNCTION_NAME?: string | undefined },
  o: Omit<Parameters<typeof configuredWaker>[1], 'invoker'> & { invoker?: Invoker | undefined },
): ReturnType<typeof configuredWaker> {
  const name = config.CONSUMER_FUNCTION_NAME;
  return configuredWaker(config, { ...o, invoker: o.invoker ?? (name ? lambdaInvoker(name) : undefined) });
}
