/**
 * The operator dashboard: a few static files and a JSON API over the same engine statements
 * and audit records taskctl uses. Mounted by the local engine at `/` and served on its own by
 * `taskctl dashboard`. Every request needs the access token (printed as part of the URL).
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { Db } from '../../functions/engine/index.ts';
import { HttpError, mapError } from '../../functions/http/errors.ts';
import { checkHost, checkOrigin } from '../loopback.ts';
import { authorized, credentialsOf, MIN_TOKEN_LENGTH, newToken, sessionCookie } from './auth.ts';
import { API_PREFIX, createOverviewCache, resolve } from './routes.ts';
import { MAX_BODY_BYTES } from './validate.ts';

export interface DashboardLogger {
  error(message: string, ...extra: Array<Record<string, unknown>>): void;
}

export interface DashboardOptions {
  db: Db;
  /** DASHBOARD_TOKEN, or undefined for a fresh random one. */
  token?: string | undefined;
  logger?: DashboardLogger | undefined;
  /** Recorded on every change (audit, last_error). Default: dashboard:<OS user>. */
  actor?: string | undefined;
  /** Share one overview between refreshes (default true); tests turn it off to see each seed at once. */
  cacheOverview?: boolean | undefined;
}

export interface Dashboard {
  token: string;
  actor: string;
  /** Path and query to open (`/?token=…`): append to the server's origin. */
  entryPath: string;
  /** True when the request was the dashboard's (it answered it); false leaves `req` untouched. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

const STATIC_DIR = join(import.meta.dirname, 'static');
// The page's ES modules (app.js imports the rest), served by this whitelist only: no other path under /ui/.
const MODULES = [
  'app.js',
  'actions.js',
  'age.js',
  'api.js',
  'confirm.js',
  'format.js',
  'html.js',
  'live.js',
  'route.js',
  'views/buttons.js',
  'views/chart.js',
  'views/index.js',
  'views/job.js',
  'views/jobs.js',
  'views/limits.js',
  'views/overview.js',
  'views/schedules.js',
];
const ASSETS: Record<string, { file: string; type: string }> = {
  ...Object.fromEntries(
    MODULES.map((file) => [`/ui/${file}`, { file, type: 'text/javascript; charset=utf-8' }]),
  ),
  '/ui/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};

// No inline script or style anywhere, no framing, no third-party origin, no referrer (the first
// URL carries the token).
const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

function defaultActor(): string {
  try {
    return `dashboard:${userInfo().username || process.env.USER || 'unknown'}`;
  } catch {
    return `dashboard:${process.env.USER ?? 'unknown'}`;
  }
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: Record<string, string> = {},
) {
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, ...extra });
  res.end(body);
}

function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  details: unknown = null,
  headers: Record<string, string> = {},
) {
  send(
    res,
    status,
    'application/json; charset=utf-8',
    JSON.stringify({ error: { code, message, details } }),
    headers,
  );
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new HttpError(415, 'unsupported_media_type', 'Content-Type must be application/json');
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    throw new HttpError(413, 'payload_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      throw new HttpError(413, 'payload_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'invalid_json', 'the body is not valid JSON');
  }
}

/** Whether a path belongs to the dashboard (so the local engine routes everything else to the API). */
export function isDashboardPath(path: string): boolean {
  return path === '/' || path.startsWith('/ui/') || path === API_PREFIX || path.startsWith(`${API_PREFIX}/`);
}

export function createDashboard(options: DashboardOptions): Dashboard {
  const token = options.token ?? newToken();
  if (token.length < MIN_TOKEN_LENGTH || /[\s;,]/.test(token)) {
    throw new Error(
      `DASHBOARD_TOKEN must be at least ${MIN_TOKEN_LENGTH} characters without spaces, commas or semicolons`,
    );
  }
  const actor = (options.actor ?? defaultActor()).slice(0, 200);
  const { db, logger } = options;
  const overview = createOverviewCache(db, options.cacheOverview === false ? 0 : 2000);
  const assets = Object.fromEntries(
    Object.entries(ASSETS).map(([path, a]) => [
      path,
      { ...a, body: readFileSync(join(STATIC_DIR, a.file), 'utf8') },
    ]),
  );
  // The token goes into the page only when the request showed it (the printed URL): a page
  // served on the read-session cookie alone must not hand out the change token.
  const template = readFileSync(join(STATIC_DIR, 'index.html'), 'utf8').replace(
    '{{ACTOR}}',
    escapeHtml(actor),
  );
  const pageWithToken = template.replace('{{TOKEN}}', escapeHtml(token));
  const pageReadOnly = template.replace('{{TOKEN}}', '');

  async function api(req: IncomingMessage, res: ServerResponse, url: URL, method: string): Promise<void> {
    try {
      const { handler, param } = resolve(method, url.pathname);
      const body = method === 'POST' ? await readJson(req) : undefined;
      const reply = await handler({ db, overview, actor, method, url, body }, param);
      if (method === 'POST') overview.invalidate();
      send(res, reply.status, 'application/json; charset=utf-8', JSON.stringify(reply.body));
    } catch (err) {
      const mapped = mapError(err);
      if (mapped.statusCode >= 500 && mapped.statusCode !== 503) {
        logger?.error('dashboard request failed', { path: url.pathname, method, error: err as Error });
      }
      // An unread oversized body would otherwise be drained on this keep-alive connection.
      const close: Record<string, string> = mapped.statusCode === 413 ? { Connection: 'close' } : {};
      sendError(res, mapped.statusCode, mapped.code, mapped.message, mapped.details ?? null, {
        ...mapped.headers,
        ...close,
      });
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!isDashboardPath(url.pathname)) return false;
    const method = (req.method ?? 'GET').toUpperCase();
    const reading = method === 'GET' || method === 'HEAD';
    try {
      checkHost(req);
      if (!reading) checkOrigin(req);
    } catch (err) {
      const mapped = mapError(err);
      sendError(res, mapped.statusCode, mapped.code, mapped.message);
      return true;
    }
    const shown = authorized(token, credentialsOf(req, url, token), !reading);
    if (!shown) {
      sendError(
        res,
        401,
        'unauthorized',
        reading
          ? 'the dashboard needs its access token: open the URL printed at start (…/?token=…)'
          : 'a change needs the access token in the X-Dashboard-Token header',
        null,
      );
      return true;
    }
    if (url.pathname.startsWith(API_PREFIX)) {
      await api(req, res, url, method);
      return true;
    }
    if (!reading) {
      sendError(res, 405, 'method_not_allowed', `${method} is not allowed on ${url.pathname}`);
      return true;
    }
    if (url.pathname === '/') {
      send(res, 200, 'text/html; charset=utf-8', shown === 'token' ? pageWithToken : pageReadOnly, {
        'Set-Cookie': sessionCookie(token),
      });
      return true;
    }
    const asset = assets[url.pathname];
    if (!asset) sendError(res, 404, 'not_found', `no such file ${url.pathname}`);
    else send(res, 200, asset.type, asset.body);
    return true;
  }

  return { token, actor, entryPath: `/?token=${encodeURIComponent(token)}`, handle };
}

export interface DashboardServerOptions extends DashboardOptions {
  /** 127.0.0.1 unless told otherwise: the dashboard changes production jobs. */
  host?: string | undefined;
  /** 0: any free port. */
  port?: number | undefined;
}

export interface DashboardServer {
  url: string;
  port: number;
  dashboard: Dashboard;
  close(): Promise<void>;
}

/** The dashboard on its own HTTP server (taskctl dashboard, the browser tests). */
export async function startDashboardServer(options: DashboardServerOptions): Promise<DashboardServer> {
  const dashboard = createDashboard(options);
  const host = options.host ?? '127.0.0.1';
  const server = createServer((req, res) => {
    dashboard
      .handle(req, res)
      .then((handled) => {
        if (!handled)
          sendError(res, 404, 'not_found', `no route for ${req.method} ${req.url?.split('?')[0]}`);
      })
      .catch((err) => {
        options.logger?.error('dashboard request failed', { error: err as Error });
        if (!res.headersSent) sendError(res, 500, 'internal_error', 'internal error');
        else res.end();
      });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, host, () => ok());
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url: `${origin}${dashboard.entryPath}`,
    port,
    dashboard,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
