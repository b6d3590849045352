import type { LambdaClient } from '@aws-sdk/client-lambda';
import type { Invoker } from '../engine/index.ts';

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
