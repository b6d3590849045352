import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { installedVersion, type PeerAdapter, waitUntil } from '../lib/types.ts';

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
      const t0 = performance.now();
      for (let i = 0; i < jobs; i += 5000) {
        const n = Math.min(5000, jobs - i);
        await boss.insert(
          QUEUE,
          Array.from({ length: n }, () => ({ data: {} })),
        );
      }
      const enqueueSeconds = (performance.now() - t0) / 1000;
      await beforeDrain();

      let handled = 0;
      let first = 0;
      let resolveAll: () => void = () => {};
      const allHandled = new Promise<void>((r) => {
        resolveAll = r;
      });
      await boss.work(
        QUEUE,
        {
          batchSize: BATCH,
          burstWhenBatchFull: true,
          localConcurrency: workers,
          pollingIntervalSeconds: 0.5,
        },
        async (batch) => {
          if (handled === 0) first = performance.now();
          handled += batch.length;
          if (handled === jobs) resolveAll();
        },
      );
      const probe = new pg.Client({ connectionString: url });
      await probe.connect();
      try {
        await allHandled;
        const end = await waitUntil(
          async () =>
            !(
              await probe.query(
                "SELECT EXISTS (SELECT 1 FROM pgboss.job WHERE name = $1 AND state < 'completed') AS e",
                [QUEUE],
              )
            ).rows[0].e,
        );
        onDrained?.();
        return {
          done: handled,
          seconds: (end - first) / 1000,
          enqueueSeconds,
          config: `one PgBoss, work(localConcurrency ${workers}, batchSize ${BATCH}, burstWhenBatchFull, polling 0.5 s), pool max ${workers + 2}`,
        };
      } finally {
        await probe.end();
      }
    } finally {
      await boss.stop({ graceful: true, timeout: 5000 });
    }
  },
};
