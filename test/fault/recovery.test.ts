import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeViolations } from './checker.ts';
import { type Cluster, startCluster } from './cluster.ts';
import { recordRow, Scenario, sleep } from './harness.ts';
import type { Lease } from './history.ts';
import { expiredButHeld, heldBy, stillHeld, waitUntilExpired } from './leases.ts';

describe('restarts, racing reapers and poison jobs', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster();
  });
  afterAll(() => cluster?.destroy());

  it('immediate restart of the database mid-load: no acknowledged enqueue lost, clients see 503 + Retry-After, throughput back within seconds', async () => {
    const s = await Scenario.start('db-immediate-restart', cluster);
    try {
      const stopReaper = s.reapEvery(500);
      s.spawnWorkers(3);
      await s.ready();
      const api = s.apiEnqueueLoop(10, 50);
      await sleep(3000);
      const restartAt = Date.now();
      await cluster.restartImmediate();
      const upAt = Date.now();
      s.faults.push(`restart -m immediate (${((upAt - restartAt) / 1000).toFixed(1)} s)`);
      await sleep(6000);
      await api.stop();
      await s.drain(90_000);
      await stopReaper();
      await s.stopWorkers();
      const result = await s.check();

      const firstEnqueue = api.okTimes.find((t) => t > upAt);
      const firstComplete = s.history.of('complete').find((e) => e.t > upAt && e.ok.length > 0)?.t;
      const statuses = Object.fromEntries(api.statuses);
      recordRow(
        s.row(result, {
          faults: `${s.faults.join(', ')}; api ${JSON.stringify(statuses)}; enqueue back in ${
            firstEnqueue ? firstEnqueue - upAt : '?'
          } ms, completions back in ${firstComplete ? firstComplete - upAt : '?'} ms`,
        }),
      );

      expect([...api.statuses.keys()].filter((code) => code !== 201 && code !== 503)).toEqual([]);
      expect(api.statuses.get(503) ?? 0).toBeGreaterThan(0);
      expect(api.retryAfterMissing).toBe(0);
      expect(firstEnqueue, 'an enqueue acknowledged after the restart').toBeDefined();
      expect(firstComplete, 'a completion after the restart').toBeDefined();
      expect((firstEnqueue ?? 0) - upAt).toBeLessThanOrEqual(10_000);
      expect((firstComplete ?? 0) - upAt).toBeLessThanOrEqual(10_000);
      expect(result.stats.lost).toBe(0);
      expect(result.ok, describeViolations(result)).toBe(true);
    } finally {
      await s.close();
    }
  });

  /**
   * The three reapers race each other for the same expired leases, and two resumed consumers'
   * overdue heartbeats and late completions. Both parts wait for conditions, not for time: the
   * consumers are frozen once the database shows them holding leases, and the race starts once
   * every one of those leases is expired by the reaper's own predicate and the tasks are due.
   *
   * Which side wins a consumer-versus-reaper race is the race itself: jobs_renew renews a lease
   * that is expired but not yet reaped (fenced by its token alone, as it always has), and on
   * SIGCONT the overdue heartbeat fires at once. Since migration 0011 the reaper first reads the
   * schedules (the materialiser) and only then requeues, one round trip later; the resumed
   * consumers then renewed all 30 leases before any reaper's requeue in 1 run of 4 (20 of 30 in
   * another), the test's old `recovered > 0` failing. So the third consumer stays frozen through the first round:
   * its leases can only be taken by the reapers, once each.
   */
  it('three reapers at once race late completions: each expired lease is recovered once, each race has one winner', async () => {
    const s = await Scenario.start('three-reapers-race', cluster, {
      env: { BATCH_SIZE: '10', CONSUMER_CONCURRENCY: '10', INVOCATION_MS: '15000' },
    });
    try {
      const workers = s.spawnWorkers(3);
      await s.ready();
      // The three reapers connect before the race, so none starts late.
      await Promise.all([s.reap(0), s.reap(1), s.reap(2)]);
      await s.enqueueWork(60, { ms: 2500 });
      // Freeze the consumers once each holds leases that the database shows as current.
      const names = workers.map((w) => w.name);
      const holding = async () => {
        for (const n of names) {
          const leases = heldBy(s.history, n);
          if (leases.length === 0 || (await stillHeld(s.db, leases)) < leases.length) return false;
        }
        return true;
      };
      for (const deadline = Date.now() + 30_000; !(await holding()); await sleep(50))
        if (Date.now() > deadline) throw new Error(`consumers hold no leases: ${s.lastStderr()}`);
      for (const w of workers) w.child.kill('SIGSTOP');
      // What they hold now (a claim answered while stopping is in the database, not yet in the
      // history: the database is the truth here; nobody else claims).
      const { rows: frozenRows } = await s.db.query<{ id: string; token: string }>(
        "SELECT id::text, lease_token::text AS token FROM jobs WHERE status = 'running'",
      );
      const frozen = frozenRows.map((r): Lease => [r.id, r.token]);
      const kept = heldBy(s.history, names[2]!);
      for (const n of names) {
        const leases = heldBy(s.history, n);
        expect(leases.length, `${n} holds leases when frozen`).toBeGreaterThan(0);
        expect(await stillHeld(s.db, leases), `${n}'s leases current when frozen`).toBe(leases.length);
      }
      // Release the reapers only when every frozen lease is expired in the database and the
      // 2.5 s tasks are due: the consumers wake to overdue heartbeats and finished tasks.
      await waitUntilExpired(s.db, frozen, 30_000);
      const lastClaim = Math.max(...s.history.of('claim').map((e) => e.t));
      while (Date.now() < lastClaim + 2500 + 250) await sleep(50);
      expect(await expiredButHeld(s.db, frozen), 'every frozen lease expired, none taken yet').toBe(
        frozen.length,
      );
      const race = Promise.all([s.reap(0), s.reap(1), s.reap(2)]);
      for (const w of workers.slice(0, 2)) w.child.kill('SIGCONT');
      await race;
      const firstRound = s.history.of('reap').slice(-3);
      // The consumer still frozen cannot have renewed or completed anything: its leases are the
      // reapers' alone, and the three together took each of them once.
      expect(await stillHeld(s.db, kept), `${names[2]}'s leases taken by the first round`).toBe(0);
      expect(firstRound.reduce((n, r) => n + r.recovered, 0)).toBeGreaterThanOrEqual(kept.length);
      workers[2]!.child.kill('SIGCONT');
      for (let round = 0; round < 3; round++) {
        await Promise.all([s.reap(0), s.reap(1), s.reap(2)]);
        await sleep(100);
      }
      s.faults.push(
        `3 consumers frozen until ${frozen.length} leases expired, 3 reapers x4 rounds (1 consumer woken after the first)`,
      );
      await s.drain(90_000);
      await s.stopWorkers();
      const result = await s.check();
      const reaperWins = s.history.of('reap').reduce((n, r) => n + r.recovered, 0);
      recordRow(s.row(result, { faults: `${s.faults.join(', ')}; reapers took ${reaperWins}` }));

      // Each expired lease recovered once: the reapers' sum is the counter and covers at least
      // the kept consumer's leases (I7 checks that every claim ended in exactly one transition).
      expect(result.stats.recovered).toBe(reaperWins);
      expect(reaperWins).toBeGreaterThanOrEqual(kept.length);
      expect(result.stats.duplicateCompletions).toBe(0);
      expect(result.ok, describeViolations(result)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('a poison job that kills its consumer every time ends failed after max_attempts; the other jobs complete', async () => {
    const s = await Scenario.start('poison-job', cluster);
    try {
      s.respawnKilled = true;
      const [poisonId] = await s.enqueue([
        { type: 'fault.poison', payload: { seq: s.nextSeq() }, maxAttempts: 3 },
      ]);
      await s.enqueueWork(300, { ms: 20 });
      const stopReaper = s.reapEvery(500);
      s.spawnWorkers(3);
      await s.drain(120_000);
      await stopReaper();
      await s.stopWorkers();
      const result = await s.check();
      const { rows } = await s.db.query<{
        status: string;
        attempts: number;
        last_error: { name: string; message: string };
      }>('SELECT status, attempts, last_error FROM jobs WHERE id = $1', [poisonId]);
      s.faults.push(`poison job (max_attempts 3) killed ${rows[0]?.attempts ?? '?'} consumers`);
      recordRow(s.row(result));

      expect(rows[0]).toMatchObject({ status: 'failed', attempts: 3 });
      expect(rows[0]!.last_error).toMatchObject({ name: 'LeaseExpired' });
      expect(rows[0]!.last_error.message).toContain('attempts exhausted');
      expect(result.stats.byStatus).toMatchObject({ completed: 300, failed: 1 });
      expect(result.ok, describeViolations(result)).toBe(true);
    } finally {
      await s.close();
    }
  });

  /**
   * FOUND BY THIS SUITE, now fixed (the heartbeat renews finished-but-unflushed jobs, and
   * completions are flushed on their own after a while): with BATCH_SIZE > CONSUMER_CONCURRENCY
   * (the defaults are 50 and 10) a finished job waits in the consumer's pending completions
   * until a slot frees for the next claim, and the heartbeat skips settled jobs. A job whose
   * completion waits longer than a lease is requeued by the reaper and its result discarded as
   * fenced: the work runs again. Here 10 jobs of 3 s, batch 10, concurrency 5, lease 2 s: the
   * first five finish at 3 s and waited until 6 s.
   */
  it('a finished job waiting for its completion to be flushed keeps its lease (no job re-run without a fault)', async () => {
    const s = await Scenario.start('held-completion-lease', cluster, { env: { INVOCATION_MS: '20000' } });
    try {
      await s.enqueueWork(10, { ms: 3000 });
      const stopReaper = s.reapEvery(500);
      s.spawnWorker('c1');
      await s.drain(60_000);
      await stopReaper();
      await s.stopWorkers();
      const result = await s.check();
      s.faults.push('none (batch 10 > concurrency 5, 3 s tasks, 2 s lease)');
      recordRow(
        s.row(result, {
          invariants: `${result.ok ? 'I1-I7 hold' : result.failed.join(' ')}; leases lost without a fault: ${result.stats.recovered}`,
        }),
      );

      expect(result.ok, describeViolations(result)).toBe(true);
      expect(result.stats.recovered).toBe(0);
      expect(result.stats.fenced).toBe(0);
    } finally {
      await s.close();
    }
  });
});
