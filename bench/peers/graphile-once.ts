import { Logger, makeWorkerUtils, runOnce } from 'graphile-worker';
import {
  drainedAt,
  handledCounter,
  installedVersion,
  type PooledPeerAdapter,
  timeChunks,
} from '../lib/types.ts';

const version = await installedVersion('graphile-worker');

/**
 * graphile-worker the serverless way (its docs: "runOnce" for a worker that should exit when
 * the queue is empty, and `preparedStatements: false` — the CLI's --no-prepared-statements —
 * for a pooler that does not keep prepared statements, PgBouncer in transaction mode). Each
 * invocation is one runOnce with its own pool, released when it finds no more work.
 */
const CONFIG = { concurrentJobs: 10, maxPoolSize: 10, preparedStatements: false };
const silent = new Logger(() => () => {});

export const adapter: PooledPeerAdapter = {
  name: 'graphile-worker',
  version,
  async drainPooled(directUrl, pooledUrl, jobs, containers, beforeDrain, onDrained) {
    const utils = await makeWorkerUtils({ connectionString: directUrl, logger: silent });
    let enqueueSeconds = 0;
    try {
      await utils.migrate();
      enqueueSeconds = await timeChunks(jobs, (n) =>
        utils.addJobs(Array.from({ length: n }, () => ({ identifier: 'noop', payload: {} }))),
      );
    } finally {
      await utils.release();
    }
    await beforeDrain();

    const counter = handledCounter(jobs);
    const taskList = { noop: async () => counter.add() };
    let finished = false;
    let invocations = 0;
    const loops = Array.from({ length: containers }, async () => {
      while (!finished) {
        const before = counter.handled;
        await runOnce({
          preset: { worker: { connectionString: pooledUrl, ...CONFIG } },
          taskList,
          logger: silent,
          noHandleSignals: true,
        });
        invocations++;
        // An invocation that found nothing (the rest is locked by others): the next tick comes later.
        if (counter.handled === before) await new Promise((r) => setTimeout(r, 50));
      }
    });
    try {
      const end = await drainedAt(
        directUrl,
        counter.all,
        'SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS e',
        [],
        onDrained,
      );
      return {
        done: counter.handled,
        seconds: (end - counter.first) / 1000,
        enqueueSeconds,
        invocations,
        config: `${containers} containers, each invocation one runOnce ${JSON.stringify(CONFIG)}`,
      };
    } finally {
      finished = true;
      await Promise.all(loops);
    }
  },
};
