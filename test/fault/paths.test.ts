import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeViolations } from './checker.ts';
import { type Cluster, startCluster } from './cluster.ts';
import { recordRow, Scenario, sleep } from './harness.ts';
import { type Bouncer, startPgBouncer } from './pgbouncer.ts';

describe('the advisory-lock path behind PgBouncer, and skewed client clocks', () => {
  let cluster: Cluster;
  let bouncer: Bouncer;
  beforeAll(async () => {
    cluster = await startCluster();
    bouncer = await startPgBouncer(cluster.port);
  });
  afterAll(async () => {
    await bouncer?.stop();
    cluster?.destroy();
  });

  it('advisory-lock claims through PgBouncer in transaction pooling, with a consumer killed mid-run: invariants hold, no advisory lock outlives its transaction', async () => {
    const s = await Scenario.start('pgbouncer-advisory', cluster, {
      target: { port: bouncer.port },
      env: { USE_ADVISORY_LOCKS: '1' },
    });
    try {
      s.respawnKilled = true;
      await s.enqueueWork(1500, { ms: 20 });
      const stopReaper = s.reapEvery(500);
      s.spawnWorkers(4);
      const victim = await s.nextClaim((w) => w === 'c1');
      s.workers.get(victim)!.child.kill('SIGKILL');
      s.faults.push(`SIGKILL ${victim} behind PgBouncer`);
      // A lock held by a backend that is not in a transaction leaked past commit.
      let leaked = 0;
      let samples = 0;
      const sampler = (async () => {
        for (;;) {
          const c = await s.counts();
          const { rows } = await s.db.query<{ n: string }>(
            `SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND a.state = 'idle'`,
          );
          leaked += Number(rows[0]?.n ?? 0);
          samples++;
          if (c.queued === 0 && c.running === 0) return;
          await sleep(200);
        }
      })();
      await s.drain(90_000);
      await sampler;
      await stopReaper();
      await s.stopWorkers();
      const { rows } = await s.db.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'",
      );
      const result = await s.check();
      recordRow(
        s.row(result, { faults: `${s.faults.join(', ')}; ${samples} lock samples, ${leaked} leaked` }),
      );

      expect(samples).toBeGreaterThan(3);
      expect(leaked).toBe(0);
      expect(Number(rows[0]?.n)).toBe(0);
      expect(result.ok, describeViolations(result)).toBe(true);
      expect(result.stats.byStatus.completed).toBe(1500);
    } finally {
      await s.close();
    }
  });

  it('consumer clocks skewed by +10 and -10 minutes: no premature reclaim, no early start (the engine reads time from the database)', async () => {
    // BATCH_SIZE = CONSUMER_CONCURRENCY: no claimed job waits for a slot, so every lease here
    // lives or dies by its heartbeat alone (see the held-completion scenario in recovery.test.ts
    // for what happens when a finished job waits).
    const s = await Scenario.start('clock-skew-10min', cluster, {
      env: { INVOCATION_MS: '20000', BATCH_SIZE: '5', CONSUMER_CONCURRENCY: '5' },
    });
    try {
      // Tasks outlast the 2 s lease: only heartbeats keep them, so a lease computed from a
      // client clock 10 minutes ahead would be reclaimed, one 10 minutes behind never renewed.
      await s.enqueueWork(150, { ms: 3000 });
      const delayed = await s.enqueue(
        Array.from({ length: 50 }, () => s.job({ ms: 10 }, { delaySeconds: 4 })),
      );
      const stopReaper = s.reapEvery(500);
      s.spawnWorker('ahead1', { CLOCK_SKEW_MS: String(10 * 60_000) });
      s.spawnWorker('behind1', { CLOCK_SKEW_MS: String(-10 * 60_000) });
      s.spawnWorker('ahead2', { CLOCK_SKEW_MS: String(10 * 60_000) });
      s.faults.push('clocks +10 min, -10 min, +10 min');
      await s.drain(120_000);
      await stopReaper();
      await s.stopWorkers();
      const result = await s.check();
      const { rows: early } = await s.db.query<{ id: string }>(
        'SELECT id FROM jobs WHERE id = ANY($1::bigint[]) AND started_at < run_at',
        [delayed],
      );
      const { rows: expired } = await s.db.query<{ id: string }>(
        "SELECT id FROM jobs WHERE last_error->>'name' = 'LeaseExpired'",
      );
      recordRow(s.row(result));

      expect(result.stats.recovered).toBe(0);
      expect(expired).toEqual([]);
      expect(early).toEqual([]);
      expect(result.ok, describeViolations(result)).toBe(true);
      expect(result.stats.byStatus.completed).toBe(200);
    } finally {
      await s.close();
    }
  });
});
