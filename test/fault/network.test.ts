import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeViolations } from './checker.ts';
import { type Cluster, startCluster } from './cluster.ts';
import { recordRow, Scenario, sleep } from './harness.ts';

describe('lost connections, dead networks and a database that goes away', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster();
  });
  afterAll(() => cluster?.destroy());

  it('pg_terminate_backend on every engine connection every 2 s: nothing lost, nothing completed twice', async () => {
    const s = await Scenario.start('terminate-backends', cluster);
    try {
      // 6,000 jobs of 200 ms over 4 consumers x 10 slots keep work in flight for the whole 30 s.
      await s.enqueueWork(6000, { ms: 200 });
      const stopReaper = s.reapEvery(500);
      s.spawnWorkers(4);
      await s.ready();
      // Every 2 s for 30 s, as the issue asks: 15 rounds, each cutting every consumer and reaper
      // connection. Each round first waits (up to 1 s) for consumer backends caught inside a
      // statement and cuts those: a claim or a completion of 50 takes a few milliseconds, so
      // cutting at a random instant mostly finds idle connections, and in one run of four it
      // interrupted no statement at all (the db-error check below then failed).
      let terminated = 0;
      let midStatement = 0;
      for (let round = 0; round < 15; round++) {
        await sleep(2000);
        for (const until = Date.now() + 1000; Date.now() < until; await sleep(2)) {
          const active = await s.db.query<{ n: string }>(
            `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND application_name = 'dte-fault-consumer' AND state = 'active'`,
          );
          const n = Number(active.rows[0]?.n ?? 0);
          midStatement += n;
          terminated += n;
          if (n > 0) break;
        }
        const { rows } = await s.db.query<{ n: string }>(
          `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND application_name IN ('dte-fault-consumer', 'dte-fault-reaper')`,
        );
        terminated += Number(rows[0]?.n ?? 0);
      }
      s.faults.push(`${terminated} backends terminated in 15 rounds (30 s), ${midStatement} mid-statement`);
      await s.drain(90_000);
      await stopReaper();
      await s.stopWorkers();
      const result = await s.check();
      recordRow(s.row(result));

      expect(terminated).toBeGreaterThanOrEqual(15);
      expect(midStatement).toBeGreaterThan(0);
      expect(s.history.of('db-error').length).toBeGreaterThan(0);
      expect(result.ok, describeViolations(result)).toBe(true);
      expect(result.stats.byStatus.completed).toBe(6000);
    } finally {
      await s.close();
    }
  });

  it('slowed then black-holed connections: no consumer waits on the database past its timeouts, and their leases are recovered', async () => {
    const queryTimeoutMs = 2000;
    const connectTimeoutMs = 1500;
    const s = await Scenario.start('latency-and-blackhole', cluster, {
      env: { DB_QUERY_TIMEOUT_MS: String(queryTimeoutMs), DB_CONNECT_TIMEOUT_MS: String(connectTimeoutMs) },
    });
    try {
      // About 10 s of work for 4 consumers: the faults land while every consumer holds leases.
      await s.enqueueWork(2000, { ms: 100 });
      const stopReaper = s.reapEvery(500);
      s.spawnWorkers(4);
      await s.ready();
      await sleep(1000);
      s.proxy.setLatency(150);
      await sleep(4000);
      s.proxy.setLatency(0);
      const blackholedAt = Date.now();
      s.proxy.blackhole();
      await sleep(5000);
      s.proxy.heal();
      s.faults.push('150 ms latency 4 s', 'black hole 5 s');
      await s.drain(90_000);
      await stopReaper();
      await s.stopWorkers();
      const result = await s.check();

      // The longest any engine statement waited: the pool's wait for its one connection
      // (bounded by the connect timeout) plus the query timeout, plus scheduling slack.
      const opMs = s.history.events.flatMap((e) =>
        e.op === 'db-error' || e.op === 'slow' || e.op === 'claim' || e.op === 'complete' ? [e.ms] : [],
      );
      const maxOpMs = Math.max(...opMs);
      const invocations = s.history.of('invocation');
      const maxInvocationMs = Math.max(...invocations.map((e) => e.ms));
      const timeouts = s.history.of('db-error').filter((e) => e.t >= blackholedAt).length;
      // Invocations that ran into their deadline (middy's timeout): reported, see RELIABILITY.md.
      const overran = invocations.filter((e) => e.exitReason.startsWith('threw')).length;
      recordRow(
        s.row(result, {
          faults: `${s.faults.join(', ')}; slowest statement ${maxOpMs} ms; ${overran} invocations hit their deadline`,
        }),
      );

      expect(timeouts).toBeGreaterThan(0);
      expect(maxOpMs).toBeLessThanOrEqual(queryTimeoutMs + connectTimeoutMs + 1500);
      expect(maxInvocationMs).toBeLessThanOrEqual(
        Number(s.env.INVOCATION_MS) + queryTimeoutMs + connectTimeoutMs + 1500,
      );
      expect(result.stats.recovered).toBeGreaterThan(0);
      expect(result.ok, describeViolations(result)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('database down 10 s under 40 consumer loops: reconnects spread by jittered backoff, no crash, no connection pile-up', async () => {
    const loops = 20;
    const s = await Scenario.start('db-down-10s-40-loops', cluster, {
      env: { LOOPS: String(loops), DB_CONNECT_TIMEOUT_MS: '2000', DB_QUERY_TIMEOUT_MS: '3000' },
    });
    try {
      // 3000 jobs of 400 ms: about 6 s of work for 40 loops, so the stop lands mid-load.
      await s.enqueueWork(3000, { ms: 400 });
      const stopReaper = s.reapEvery(500);
      const workers = s.spawnWorkers(2);
      await s.ready();
      await sleep(3000);
      const t0 = Date.now();
      await cluster.stop('fast');
      const downAt = Date.now();
      await sleep(10_000);
      await cluster.start();
      const upAt = Date.now();
      s.faults.push(`database stopped ${((upAt - downAt) / 1000).toFixed(1)} s`);
      // Backends during the reconnection: never more than one per consumer loop.
      let peakBackends = 0;
      for (let i = 0; i < 25; i++) {
        const { rows } = await s.db.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'dte-fault-consumer'`,
        );
        peakBackends = Math.max(peakBackends, Number(rows[0]?.n ?? 0));
        await sleep(200);
      }
      const crashed = workers.filter((w) => w.child.exitCode !== null || w.child.signalCode !== null);
      await s.drain(90_000);
      await stopReaper();
      await s.stopWorkers();
      const result = await s.check();

      // Connection attempts per second, from the proxy: steady state before the stop, the
      // outage and the recovery after it.
      const perSecond = s.proxy.attemptsPerSecond();
      const secondOf = (t: number) => Math.floor((t - s.proxy.startedAt) / 1000);
      const window = (from: number, to: number) => {
        const xs: number[] = [];
        for (let sec = secondOf(from); sec < secondOf(to); sec++) xs.push(perSecond.get(sec) ?? 0);
        return xs;
      };
      const steady = window(t0 - 3000, t0);
      const outage = window(downAt, upAt + 5000);
      // The backoff doubles from 100 ms to its 2 s cap over the first four failures: in those
      // first seconds each loop retries as often as a refused connect returns allows (faster
      // on an idle machine than on a loaded one), so the peak is judged once the cap is reached.
      const capped = window(downAt + 3000, upAt + 5000);
      const steadyRate = steady.reduce((a, b) => a + b, 0) / Math.max(1, steady.length);
      const rampPeak = Math.max(...window(downAt, downAt + 3000));
      const peakRate = Math.max(...capped);
      const outageRate = outage.reduce((a, b) => a + b, 0) / Math.max(1, outage.length);
      recordRow(
        s.row(result, {
          faults: `${s.faults.join(', ')}; reconnects/s steady ${steadyRate.toFixed(1)}, outage mean ${outageRate.toFixed(1)}, peak ${peakRate} (first 3 s ${rampPeak}); peak backends ${peakBackends}`,
        }),
      );

      expect(crashed.map((w) => w.name)).toEqual([]);
      // Without backoff 40 loops retry as fast as a refused connect returns (hundreds per
      // second each); with full jitter capped at 2 s the whole fleet stays near one per loop per second.
      expect(peakRate).toBeLessThanOrEqual(5 * 2 * loops);
      // Over the whole outage, ramp included, a few attempts per loop per second at most.
      expect(outageRate).toBeLessThanOrEqual(2.5 * 2 * loops);
      expect(peakBackends).toBeLessThanOrEqual(2 * loops);
      expect(result.ok, describeViolations(result)).toBe(true);
      expect(result.stats.byStatus.completed).toBe(3000);
    } finally {
      await s.close();
    }
  });
});
