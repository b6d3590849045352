import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { ApiHandler } from '../../functions/api.ts';
import { apiEvent, fakeContext } from '../helpers/lambda.ts';
import type { ReceivedRequest, Verdict } from './sigv4-verifier.ts';

/** What a fault hook may do with an answer the handler already produced (and committed). */
export type Fault =
  | { kind: 'reset' }
  | { kind: 'replace'; status: number; body: unknown; headers?: Record<string, string> }
  | { kind: 'delay'; ms: number };

export interface Seen {
  n: number;
  method: string;
  path: string;
  body: string;
  /** The handler's status; undefined when the request was refused before it (signature). */
  status: number | undefined;
}

export interface ApiServer {
  url: string;
  /** Every request in arrival order. */
  seen: Seen[];
  /** Called after the handler answered; return a fault to lose or change that answer. */
  fault: ((seen: Seen) => Fault | undefined) | undefined;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The api handler behind a real HTTP listener on 127.0.0.1, as API Gateway would put it: with
 * `verify`, a request whose SigV4 signature does not check out is refused 403 `{ message }`
 * before the handler runs, as IAM authorization does.
 */
export async function startApiServer(
  api: ApiHandler,
  opts: { verify?: (req: ReceivedRequest) => Promise<Verdict> } = {},
): Promise<ApiServer> {
  const server: ApiServer = { url: '', seen: [], fault: undefined, close: async () => {} };
  const http = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const body = await readBody(req);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
    const seen: Seen = {
      n: server.seen.length + 1,
      method: req.method ?? 'GET',
      path: url.pathname,
      body,
      status: undefined,
    };
    server.seen.push(seen);
    if (opts.verify) {
      const verdict = await opts.verify({
        method: seen.method,
        host: headers.host ?? '',
        path: url.pathname,
        query: url.searchParams,
        headers,
        body,
      });
      if (!verdict.ok) {
        res.writeHead(403, { 'Content-Type': 'application/json', 'x-test-reason': verdict.reason });
        res.end(JSON.stringify({ message: 'Forbidden' }));
        return;
      }
    }
    const event = apiEvent(seen.method, url.pathname, body === '' ? undefined : body, headers);
    const out = (await api(event, fakeContext())) as APIGatewayProxyStructuredResultV2;
    seen.status = out.statusCode;
    const fault = server.fault?.(seen);
    if (fault?.kind === 'reset') {
      // The answer is lost after the handler committed: the client sees the connection drop.
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'delay') await new Promise((r) => setTimeout(r, fault.ms));
    if (fault?.kind === 'replace') {
      res.writeHead(fault.status, { 'Content-Type': 'application/json', ...fault.headers });
      res.end(JSON.stringify(fault.body));
      return;
    }
    if (res.destroyed) return;
    res.writeHead(out.statusCode ?? 200, (out.headers ?? {}) as Record<string, string>);
    res.end(out.body ?? '');
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const { port } = http.address() as AddressInfo;
  server.url = `http://127.0.0.1:${port}`;
  server.close = () =>
    new Promise<void>((resolve) => {
      http.closeAllConnections();
      http.close(() => resolve());
    });
  return server;
}
