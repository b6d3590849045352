/**
 * `npm start`: the same Lambda handlers on one machine. HTTP requests become API Gateway v2
 * events for the api handler; the consumer and reaper are invoked on their intervals with a
 * Lambda-like context. Database: DATABASE_URL, else an embedded PGlite under .data/pglite.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { Context } from 'aws-lambda';
import { createHandler as createApi } from '../functions/api.ts';
import { type ConsumerHandler, createHandler as createConsumer } from '../functions/consumer.ts';
import type { Db, Invoker } from '../functions/engine/index.ts';
import { type Config, loadConfig } from '../functions/platform/config.ts';
import { createDb } from '../functions/platform/db.ts';
import { applyMigrations } from '../functions/platform/migrations.ts';
import { createHandler as createReaper } from '../functions/reaper.ts';
import { codeSchedules, createRegistry } from '../functions/tasks/index.ts';
import { createDashboard } from './dashboard/index.ts';
import { createLocalHttp } from './local-http.ts';
import { createLocalMetrics } from './local-metrics.ts';

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
  const dir = resolve(config.PGLITE_DIR);
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

/**
 * The consumer slots: one invocation per slot at a time, started every LOCAL_CONSUMER_INTERVAL_MS
 * and on a wake. A wake that finds every slot busy starts when one frees (Lambda queues an
 * async event likewise).
 */
function consumerSlots(
  consumers: ConsumerHandler[],
  config: Config,
  stop: AbortSignal,
  stopAt: () => number | undefined,
) {
  const busy = new Set<number>();
  const running = new Set<Promise<unknown>>();
  /** Wake invokes that found every slot busy: started as slots free. */
  let pendingWakes = 0;
  const start = (slot: number, event: Record<string, unknown>) => {
    busy.add(slot);
    const p = consumers[slot]!(
      event,
      lambdaContext('dte-consumer', config.LOCAL_INVOCATION_TIMEOUT_MS, stopAt),
    )
      .catch((err) => process.stderr.write(`consumer invocation failed: ${String(err)}\n`))
      .finally(() => {
        busy.delete(slot);
        running.delete(p);
        if (pendingWakes > 0 && !stop.aborted) {
          pendingWakes--;
          start(slot, { wake: 'enqueue' });
        }
      });
    running.add(p);
  };
  return {
    running,
    invokeAll(): void {
      if (stop.aborted) return;
      consumers.forEach((_, slot) => {
        if (!busy.has(slot)) start(slot, {});
      });
    },
    wake(): void {
      if (stop.aborted || consumers.length === 0) return;
      const slot = consumers.findIndex((_, i) => !busy.has(i));
      if (slot >= 0) start(slot, { wake: 'enqueue' });
      // One waiting wake per slot is enough: each starts an invocation that drains every queue.
      else pendingWakes = Math.min(pendingWakes + 1, consumers.length);
    },
  };
}

async function main(): Promise<void> {
  const database = await openDatabase();
  const env = { ...process.env, DATABASE_URL: database.url };
  const embedded = !config.databaseUrl;
  const db: Db = createDb({
    connectionString: database.url,
    applicationName: 'dte-local',
    max: embedded ? 1 : 10,
    // The configured bounds, as deployed: a frozen database answers /health with 503 in time.
    queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
  });
  const { result: applied } = await applyMigrations(db, {
    config,
    schedules: codeSchedules(),
    registry: createRegistry(),
  });
  const stopController = new AbortController();
  let stopAt: number | undefined;
  const metrics = createLocalMetrics(db);

  // Wake on enqueue, in process: an "invoke" starts a consumer invocation on a free slot at
  // once; with every slot busy it starts when one frees (Lambda queues an async event likewise).
  const invoker: Invoker = { invoke: async () => slots.wake() };
  const api = createApi({ env, db, metrics: metrics.container('api', 'local-api'), invoker });
  const consumers = Array.from({ length: config.LOCAL_CONSUMERS }, (_, i) =>
    createConsumer({
      env,
      db,
      invoker,
      stopSignal: stopController.signal,
      metrics: metrics.container('consumer', `local-consumer-${i}`),
    }),
  );
  const slots = consumerSlots(consumers, config, stopController.signal, () => stopAt);
  const reaper = createReaper({ env, db, metrics: metrics.container('reaper', 'local-reaper') });
  const dashboard = createDashboard({ db, token: config.DASHBOARD_TOKEN });

  const server = createServer(
    createLocalHttp({
      api,
      dashboard,
      metrics,
      context: () => lambdaContext('dte-api', 30_000, () => undefined),
      onError: (err) => process.stderr.write(`request failed: ${String(err)}\n`),
    }),
  );
  await new Promise<void>((r) => server.listen(config.PORT, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;

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
  const consumerTimer = setInterval(slots.invokeAll, config.LOCAL_CONSUMER_INTERVAL_MS);
  const reaperTimer = setInterval(invokeReaper, config.LOCAL_REAPER_INTERVAL_MS);
  slots.invokeAll();
  void invokeReaper();

  say(`durable-task-engine local engine`);
  say(
    `  API:       http://127.0.0.1:${port}  (POST /jobs, POST /jobs/batch, GET /jobs/{id}, POST /jobs/{id}/cancel, /schedules, /queues/{name}/limits, GET /health)`,
  );
  say(`  metrics:   http://127.0.0.1:${port}/metrics`);
  say(`  dashboard: http://127.0.0.1:${port}${dashboard.entryPath}`);
  say(`  database:  ${database.description}`);
  say(`  migrations: ${applied.applied.length} applied, ${applied.alreadyApplied} already applied`);
  say(
    `  consumers: ${config.LOCAL_CONSUMERS} every ${config.LOCAL_CONSUMER_INTERVAL_MS} ms${config.WAKE_ON_ENQUEUE ? ', and woken on enqueue' : ''}; reaper every ${config.LOCAL_REAPER_INTERVAL_MS} ms`,
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
    await Promise.allSettled([...slots.running]);
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
