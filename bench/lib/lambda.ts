import { Writable } from 'node:stream';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { apiEvent, fakeContext } from '../../test/helpers/lambda.ts';

/** A Lambda-like context (the test suites' own): a fresh request id, remaining time counting down. */
export function lambdaContext(functionName: string, timeoutMs: number): Context {
  return fakeContext(timeoutMs, functionName);
}

/** An API Gateway HTTP API (payload v2) POST with a JSON body, as AWS delivers it. */
export function apiPost(path: string, body: unknown): APIGatewayProxyEventV2 {
  return apiEvent('POST', path, body);
}

export function apiGet(path: string): APIGatewayProxyEventV2 {
  return apiEvent('GET', path, undefined, {});
}

/** Where the handlers' logs go: formatted and written at their default level, then dropped. */
export function discard(): Writable & { bytes: number } {
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      w.bytes += chunk.length;
      cb();
    },
  }) as Writable & { bytes: number };
  w.bytes = 0;
  return w;
}
