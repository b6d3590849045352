import { Logger, makeWorkerUtils, run } from 'graphile-worker';
import { drainedAt, handledCounter, installedVersion, type PeerAdapter, timeChunks } from '../lib/types.ts';

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
      enqueueSeconds = await timeChunks(jobs, (n) =>
        utils.addJobs(Array.from({ length: n }, () => ({ identifier: 'noop', payload: {} }))),
      );
    } finally {
      await utils.release();
    }
    await beforeDrain();

    const counter = handledCounter(jobs);
    const taskList = { noop: async () => counter.add() };
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
    try {
      // Done when the last batched completion has committed (graphile deletes completed jobs).
      const end = await drainedAt(
        url,
        counter.all,
        'SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS e',
        [],
        onDrained,
      );
      return {
        done: counter.handled,
        seconds: (end - counter.first) / 1000,
        enqueueSeconds,
        config: `${workers} runners in one process, each ${JSON.stringify(CONFIG)}`,
      };
    } finally {
      await Promise.all(runners.map((r) => r.stop()));
    }
  },
};
