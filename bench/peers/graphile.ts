import { Logger, makeWorkerUtils, run } from 'graphile-worker';
import pg from 'pg';
import { installedVersion, type PeerAdapter, waitUntil } from '../lib/types.ts';

const version = await installedVersion('graphile-worker');

/**
 * graphile-worker in the configuration its docs give for their performance figures
 * (worker.graphile.org/docs/performance): concurrentJobs 24, maxPoolSize 25, localQueue 500,
 * completeJobBatchDelay 0, failJobBatchDelay 0; one runner per "worker". Its per-job INFO log
 * lines go to a no-op logger (ours log into a discarded stream, which costs us more).
 */
const CONFIG = {
  concurrentJobs: 24,
  maxPoolSize: 25,
  localQueue: { size: 500 },
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
};
const silent = new Logger(() => () => {});

export const adapter: PeerAdapter = {
  name: 'graphile-worker',
  version,
  async drain(url, jobs, workers, beforeDrain, onDrained) {
    const utils = await makeWorkerUtils({ connectionString: url, logger: silent });
    let enqueueSeconds = 0;
    try {
      await utils.migrate();
      const t0 = performance.now();
      for (let i = 0; i < jobs; i += 5000) {
        const n = Math.min(5000, jobs - i);
        await utils.addJobs(Array.from({ length: n }, () => ({ identifier: 'noop', payload: {} })));
      }
      enqueueSeconds = (performance.now() - t0) / 1000;
    } finally {
      await utils.release();
    }
    await beforeDrain();

    let handled = 0;
    let first = 0;
    let resolveAll: () => void = () => {};
    const allHandled = new Promise<void>((r) => {
      resolveAll = r;
    });
    const taskList = {
      noop: async () => {
        if (handled === 0) first = performance.now();
        handled++;
        if (handled === jobs) resolveAll();
      },
    };
    const runners = await Promise.all(
      Array.from({ length: workers }, () =>
        run({
          preset: { worker: { connectionString: url, ...CONFIG } },
          taskList,
          logger: silent,
          noHandleSignals: true,
        }),
      ),
    );
    const probe = new pg.Client({ connectionString: url });
    await probe.connect();
    try {
      await allHandled;
      // Done when the last batched completion has committed (graphile deletes completed jobs).
      const end = await waitUntil(
        async () =>
          !(await probe.query('SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS e')).rows[0].e,
      );
      onDrained?.();
      return {
        done: handled,
        seconds: (end - first) / 1000,
        enqueueSeconds,
        config: `${workers} runners in one process, each ${JSON.stringify(CONFIG)}`,
      };
    } finally {
      await probe.end();
      await Promise.all(runners.map((r) => r.stop()));
    }
  },
};
