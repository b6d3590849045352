import { PgBoss } from 'pg-boss';
import {
  drainedAt,
  handledCounter,
  installedVersion,
  type PooledPeerAdapter,
  timeChunks,
} from '../lib/types.ts';

const version = await installedVersion('pg-boss');

/**
 * pg-boss the serverless way: a PgBoss per invocation through the pooler with its background
 * work off (no supervise, schedule or migrate: those belong to one long-lived instance, here the
 * set-up one on the direct URL) and a pool of one connection; the invocation fetches a batch
 * and completes it in one statement, again until the queue is empty or its FETCH_MS are up,
 * then stops. No work(): its polling loop is a long-lived worker's.
 */
const QUEUE = 'bench';
const BATCH = 100;
/** As the consumer's invocations in the scenario (systems/pooled.ts: 2 s, of which 1 s claiming). */
const FETCH_MS = 1000;

export const adapter: PooledPeerAdapter = {
  name: 'pg-boss',
  version,
  async drainPooled(directUrl, pooledUrl, jobs, containers, beforeDrain, onDrained) {
    const setup = new PgBoss({ connectionString: directUrl, max: 2, schedule: false, supervise: false });
    setup.on('error', (err: unknown) => console.error('pg-boss error:', err));
    await setup.start();
    let enqueueSeconds = 0;
    try {
      await setup.createQueue(QUEUE);
      enqueueSeconds = await timeChunks(jobs, (n) =>
        setup.insert(
          QUEUE,
          Array.from({ length: n }, () => ({ data: {} })),
        ),
      );
    } finally {
      await setup.stop({ graceful: true, timeout: 5000 });
    }
    await beforeDrain();

    const counter = handledCounter(jobs);
    let finished = false;
    let invocations = 0;
    const invocation = async () => {
      const boss = new PgBoss({
        connectionString: pooledUrl,
        max: 1,
        schedule: false,
        supervise: false,
        migrate: false,
      });
      boss.on('error', (err: unknown) => console.error('pg-boss error:', err));
      await boss.start();
      const until = performance.now() + FETCH_MS;
      let handled = 0;
      try {
        while (!finished && performance.now() < until) {
          const batch = await boss.fetch(QUEUE, { batchSize: BATCH });
          if (batch.length === 0) break;
          counter.add(batch.length);
          handled += batch.length;
          await boss.complete(
            QUEUE,
            batch.map((j) => j.id),
          );
        }
      } finally {
        await boss.stop({ graceful: false, timeout: 1000 });
      }
      return handled;
    };
    const loops = Array.from({ length: containers }, async () => {
      while (!finished) {
        const handled = await invocation();
        invocations++;
        if (handled === 0) await new Promise((r) => setTimeout(r, 50));
      }
    });
    try {
      const end = await drainedAt(
        directUrl,
        counter.all,
        "SELECT EXISTS (SELECT 1 FROM pgboss.job WHERE name = $1 AND state < 'completed') AS e",
        [QUEUE],
        onDrained,
      );
      return {
        done: counter.handled,
        seconds: (end - counter.first) / 1000,
        enqueueSeconds,
        invocations,
        config: `${containers} containers, each invocation a new PgBoss (max 1, supervise/schedule/migrate off) fetching batchSize ${BATCH} and completing each batch, for up to ${FETCH_MS} ms`,
      };
    } finally {
      finished = true;
      await Promise.all(loops);
    }
  },
};
