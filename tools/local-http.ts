/**
 * The local engine's HTTP front: dashboard, /metrics, and every other request turned into an
 * API Gateway v2 event for the api handler. Kept apart from tools/local-engine.ts (process,
 * database, timers) so tests can serve it on a test schema.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import type { ApiHandler } from '../functions/api.ts';
import { HttpError, mapError } from '../functions/http/errors.ts';
import { matchRoute } from '../functions/http/routes.ts';
import type { Dashboard } from './dashboard/index.ts';
import { checkHost, checkLocalChange } from './loopback.ts';

/** Largest request body accepted locally (API Gateway's own limit is 10 MB). */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;

export interface LocalHttpOptions {
  api: ApiHandler;
  dashboard: Dashboard;
  metrics: { contentType: string; render(): Promise<string> };
  /** Lambda-like context for one api invocation. */
  context(): Context;
  onError?: (err: unknown) => void;
}

function toEvent(req: IncomingMessage, body: string, url: URL): APIGatewayProxyEventV2 {
  const method = req.method ?? 'GET';
  const matched = matchRoute(method, url.pathname);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers))
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
  const now = Date.now();
  return {
    version: '2.0',
    routeKey: matched?.routeKey ?? '$default',
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    pathParameters: matched?.pathParameters,
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName: req.headers.host ?? 'localhost',
      domainPrefix: 'local',
      http: {
        method,
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? '',
        userAgent: req.headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: matched?.routeKey ?? '$default',
      stage: '$default',
      time: new Date(now).toISOString(),
      timeEpoch: now,
    },
    body: body === '' ? undefined : body,
    isBase64Encoded: false,
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES)
      throw new HttpError(413, 'payload_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Errors before or around the api handler (which shapes its own): same shape, never a stack. */
function sendError(res: ServerResponse, err: unknown): void {
  const mapped = mapError(err, { reading: true });
  res.writeHead(mapped.statusCode, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    ...mapped.headers,
    // An unread oversized body would otherwise be drained on this keep-alive connection.
    ...(mapped.statusCode === 413 ? { Connection: 'close' } : {}),
  });
  res.end(
    JSON.stringify({
      error: { code: mapped.code, message: mapped.message, details: mapped.details ?? null },
    }),
  );
}

export function createLocalHttp(options: LocalHttpOptions) {
  const { api, dashboard, metrics } = options;
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      if (await dashboard.handle(req, res)) return;
      const url = new URL(req.url ?? '/', 'http://localhost');
      const method = (req.method ?? 'GET').toUpperCase();
      if (method === 'GET' || method === 'HEAD') checkHost(req);
      else checkLocalChange(req);
      if (method === 'GET' && url.pathname === '/metrics') {
        const text = await metrics.render();
        res.writeHead(200, { 'Content-Type': metrics.contentType });
        res.end(text);
        return;
      }
      const body = await readBody(req);
      const event = toEvent(req, body, url);
      const out = (await api(event, options.context())) as APIGatewayProxyStructuredResultV2;
      res.writeHead(out.statusCode ?? 200, (out.headers ?? {}) as Record<string, string>);
      res.end(out.body ?? '');
    } catch (err) {
      const { statusCode } = mapError(err, { reading: true });
      if (statusCode >= 500 && statusCode !== 503) options.onError?.(err);
      if (res.headersSent) res.end();
      else sendError(res, err);
    }
  };
}
