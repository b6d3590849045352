import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';

/** A Lambda-like context whose remaining time counts down from `timeoutMs`. */
export function fakeContext(timeoutMs = 30_000, functionName = 'dte-test'): Context {
  const deadline = Date.now() + timeoutMs;
  const requestId = randomUUID();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** An API Gateway HTTP API (payload v2) event as AWS sends it. */
export function apiEvent(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = { 'Content-Type': 'application/json' },
  routeKey = '$default',
): APIGatewayProxyEventV2 {
  const raw = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return {
    version: '2.0',
    routeKey,
    rawPath: path,
    rawQueryString: '',
    headers,
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
    },
    body: raw,
    isBase64Encoded: false,
  };
}

/** The event EventBridge Scheduler delivers with the default (empty JSON) input. */
export const schedulerEvent = {};

/** Swallows log lines (keeps suites quiet); `lines` keeps them when a test wants to read them. */
export function logSink(): Writable & { lines: string[] } {
  const lines: string[] = [];
  const w = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  }) as Writable & { lines: string[] };
  w.lines = lines;
  return w;
}
