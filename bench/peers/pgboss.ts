import { PgBoss } from 'pg-boss';
import { drainedAt, handledCounter, installedVersion, type PeerAdapter, timeChunks } from '../lib/types.ts';

const version = await installedVersion('pg-boss');

/**
 * pg-boss in its fastest documented shape for many small jobs: batch fetch (batchSize 100), the
 * batch completed in one statement when the handler returns, and `burstWhenBatchFull` so a
 * worker fetches again at once while batches come back full (otherwise it sleeps its polling
 * interval, at least 0.5 s, between fetches). `localConcurrency` = the worker count.
 */
const QUEUE = 'bench';
const BATCH = 100;

export const adapter: PeerAdapter = {
  name: 'pg-boss',
  version,
  async drain(url, jobs, workers, beforeDrain, onDrained) {
    const boss = new PgBoss({ connectionString: url, max: workers + 2, schedule: false });
    boss.on('error', (err: unknown) => console.error('pg-boss error:', err));
    await boss.start();
    try {
      await boss.createQueue(QUEUE);
      const enqueueSeconds = await timeChunks(jobs, (n) =>
        boss.insert(
          QUEUE,
          Array.from({ length: n }, () => ({ data: {} })),
        ),
      );
      await beforeDrain();

      const counter = handledCounter(jobs);
      await boss.work(
        QUEUE,
        {
          batchSize: BATCH,
          burstWhenBatchFull: true,
          localConcurrency: workers,
          pollingIntervalSeconds: 0.5,
        },
        async (batch) => counter.add(batch.length),
      );
      const end = await drainedAt(
        url,
        counter.all,
        "SELECT EXISTS (SELECT 1 FROM pgboss.job WHERE name = $1 AND state < 'completed') AS e",
        [QUEUE],
        onDrained,
      );
      return {
        done: counter.handled,
        seconds: (end - counter.first) / 1000,
        enqueueSeconds,
        config: `one PgBoss, work(localConcurrency ${workers}, batchSize ${BATCH}, burstWhenBatchFull, polling 0.5 s), pool max ${workers + 2}`,
      };
    } finally {
      await boss.stop({ graceful: true, timeout: 5000 });
    }
  },
};
