/**
 * `npm start`: the same Lambda handlers on one machine. HTTP requests become API Gateway v2
 * events for the api handler; the consumer and reaper are invoked on their intervals with a
 * Lambda-like context. Database: DATABASE_URL, else an embedded PGlite under .data/pglite.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { createHandler as createApi } from '../functions/api.ts';
import { createHandler as createConsumer } from '../functions/consumer.ts';
import { loadMigrations, migrate } from '../functions/engine/migrator.ts';
import type { Db } from '../functions/engine/queryable.ts';
import { matchRoute } from '../functions/http/routes.ts';
import { loadConfig } from '../functions/platform/config.ts';
import { createDb } from '../functions/platform/db.ts';
import { migrationsDir } from '../functions/platform/paths.ts';
import { createHandler as createReaper } from '../functions/reaper.ts';
import { createDashboard } from './dashboard/index.ts';
import { createLocalMetrics } from './local-metrics.ts';

/** Largest request body accepted locally (API Gateway's own limit is 10 MB). */
const MAX_BODY_BYTES = 10 * 1024 * 1024;
/** On Ctrl-C running tasks get this long to finish before they are aborted and released. */
const STOP_GRACE_MS = 5000;

const config = loadConfig();
const say = (line: string) => process.stdout.write(`${line}\n`);

async function openDatabase(): Promise<{ url: string; description: string; close: () => Promise<void> }> {
  if (config.databaseUrl) {
    const safe = new URL(config.databaseUrl);
    if (safe.password) safe.password = '***';
    return {
      url: config.databaseUrl,
      description: `PostgreSQL at ${safe.toString()}`,
      close: async () => {},
    };
  }
  const dir = resolve(process.env.PGLITE_DIR ?? '.data/pglite');
  mkdirSync(dir, { recursive: true });
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const pglite = await PGlite.create(dir);
  // PGlite is one connection: the server takes one client, and every handler shares one pool of 1.
  const server = new PGLiteSocketServer({ db: pglite, port: 0, host: '127.0.0.1' });
  await server.start();
  const address = (server as unknown as { server?: { address(): AddressInfo } }).server?.address();
  const port = address?.port ?? Number((server as unknown as { port?: number }).port);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    description: `embedded PGlite at ${dir} (data survives restarts)`,
    close: async () => {
      await server.stop();
      await pglite.close();
    },
  };
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

function lambdaContext(functionName: string, timeoutMs: number, stopAt: () => number | undefined): Context {
  const deadline = Date.now() + timeoutMs;
  const requestId = `local-${randomUUID()}`;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: requestId,
    logGroupName: `/local/${functionName}`,
    logStreamName: 'local',
    // Counts down like Lambda's; after Ctrl-C it ends STOP_GRACE_MS later at the latest.
    getRemainingTimeInMillis: () =>
      Math.max(0, Math.min(deadline, stopAt() ?? Number.POSITIVE_INFINITY) - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw Object.assign(new Error('body too large'), { statusCode: 413 });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<void> {
  const database = await openDatabase();
  const env = { ...process.env, DATABASE_URL: database.url };
  const embedded = !config.databaseUrl;
  const db: Db = createDb({
    connectionString: database.url,
    applicationName: 'dte-local',
    max: embedded ? 1 : 10,
    queryTimeoutMs: 60_000,
  });
  const applied = await migrate(db, loadMigrations(migrationsDir()));
  const stopController = new AbortController();
  let stopAt: number | undefined;
  const metrics = createLocalMetrics(db);

  const api = createApi({ env, db, metrics: metrics.container('api', 'local-api') });
  const consumers = Array.from({ length: config.LOCAL_CONSUMERS }, (_, i) =>
    createConsumer({
      env,
      db,
      stopSignal: stopController.signal,
      metrics: metrics.container('consumer', `local-consumer-${i}`),
    }),
  );
  const reaper = createReaper({ env, db, metrics: metrics.container('reaper', 'local-reaper') });
  const dashboard = createDashboard({ db, token: process.env.DASHBOARD_TOKEN || undefined });

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (await dashboard.handle(req, res)) return;
      if (req.method === 'GET' && url.pathname === '/metrics') {
        const text = await metrics.render();
        res.writeHead(200, { 'Content-Type': metrics.contentType });
        res.end(text);
        return;
      }
      const body = await readBody(req);
      const event = toEvent(req, body, url);
      const out = (await api(
        event,
        lambdaContext('dte-api', 30_000, () => undefined),
      )) as APIGatewayProxyStructuredResultV2;
      res.writeHead(out.statusCode ?? 200, (out.headers ?? {}) as Record<string, string>);
      res.end(out.body ?? '');
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode === 413 ? 413 : 500;
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            code: status === 413 ? 'payload_too_large' : 'internal_error',
            message: status === 413 ? 'request body too large' : 'internal error',
            details: null,
          },
        }),
      );
    }
  });
  await new Promise<void>((r) => server.listen(config.PORT, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;

  // Consumers: one invocation per slot at a time, started every LOCAL_CONSUMER_INTERVAL_MS.
  const busy = new Set<number>();
  const running = new Set<Promise<unknown>>();
  const invokeConsumers = () => {
    if (stopController.signal.aborted) return;
    consumers.forEach((consumer, slot) => {
      if (busy.has(slot)) return;
      busy.add(slot);
      const p = consumer(
        {},
        lambdaContext('dte-consumer', config.LOCAL_INVOCATION_TIMEOUT_MS, () => stopAt),
      )
        .catch((err) => process.stderr.write(`consumer invocation failed: ${String(err)}\n`))
        .finally(() => {
          busy.delete(slot);
          running.delete(p);
        });
      running.add(p);
    });
  };
  let reaping = false;
  const invokeReaper = async () => {
    if (reaping || stopController.signal.aborted) return;
    reaping = true;
    try {
      await reaper(
        {},
        lambdaContext('dte-reaper', 60_000, () => stopAt),
      );
    } catch (err) {
      process.stderr.write(`reaper invocation failed: ${String(err)}\n`);
    } finally {
      reaping = false;
    }
  };
  const consumerTimer = setInterval(invokeConsumers, config.LOCAL_CONSUMER_INTERVAL_MS);
  const reaperTimer = setInterval(invokeReaper, config.LOCAL_REAPER_INTERVAL_MS);
  invokeConsumers();
  void invokeReaper();

  say(`durable-task-engine local engine`);
  say(
    `  API:       http://127.0.0.1:${port}  (POST /jobs, POST /jobs/batch, GET /jobs/{id}, POST /jobs/{id}/cancel, GET /health)`,
  );
  say(`  metrics:   http://127.0.0.1:${port}/metrics`);
  say(`  dashboard: http://127.0.0.1:${port}${dashboard.entryPath}`);
  say(`  database:  ${database.description}`);
  say(`  migrations: ${applied.applied.length} applied, ${applied.alreadyApplied} already applied`);
  say(
    `  consumers: ${config.LOCAL_CONSUMERS} every ${config.LOCAL_CONSUMER_INTERVAL_MS} ms; reaper every ${config.LOCAL_REAPER_INTERVAL_MS} ms`,
  );
  say(`ready on port ${port}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: no new claims; running tasks get ${STOP_GRACE_MS} ms, then are released`);
    stopAt = Date.now() + STOP_GRACE_MS;
    stopController.abort();
    clearInterval(consumerTimer);
    clearInterval(reaperTimer);
    server.close();
    server.closeAllConnections?.();
    await Promise.allSettled([...running]);
    await db.end();
    await database.close();
    say('stopped cleanly');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`local engine failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
