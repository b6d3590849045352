import { describe, expect, it } from 'vitest';
import type { Held } from '../../functions/engine/consumer/held.ts';
import { LeaseKeeper } from '../../functions/engine/consumer/lease-keeper.ts';
import { LeaseLostError } from '../../functions/engine/errors.ts';
import type { Lease } from '../../functions/engine/types.ts';
import { fakeRecorder, job, noDb, statements } from './consumer-fakes.ts';

function keeper(over: Parameters<typeof statements>[0] = {}, waiting: Held[] = []) {
  const { recorder, logger, obs } = fakeRecorder();
  const k = new LeaseKeeper({
    db: noDb,
    statements: statements(over),
    recorder,
    logger,
    workerId: 'w1',
    leaseSeconds: 30,
    maxDeadlineReleases: 3,
    withdraw: (h) => {
      const i = waiting.indexOf(h);
      if (i < 0) return false;
      waiting.splice(i, 1);
      return true;
    },
  });
  return { k, recorder, logger, obs, waiting };
}

describe('lease keeper', () => {
  it('renews every held lease; a running task whose lease was lost is aborted, a waiting one is dropped as lost', async () => {
    // Prepare
    const renewedWith: Lease[][] = [];
    const waiting: Held[] = [];
    const { k, recorder } = keeper(
      {
        renewLeases: async (_db, leases) => {
          renewedWith.push([...leases]);
          return new Set([leases[0]!.id]);
        },
      },
      waiting,
    );
    const kept = k.hold(job(), 1);
    const running = k.hold(job(), 1);
    const queued = k.hold(job(), 1);
    running.startedAt = 2;
    waiting.push(queued);
    // Act
    await k.renew();
    // Assess
    expect(renewedWith[0]!.map((l) => l.id)).toEqual([kept.job.id, running.job.id, queued.job.id]);
    expect(kept.aborted).toBe(false);
    expect(running.abortReason).toBeInstanceOf(LeaseLostError);
    expect(k.get(running.job.id)).toBe(running);
    expect(queued.aborted).toBe(true);
    expect(waiting).toEqual([]);
    expect(k.get(queued.job.id)).toBeUndefined();
    expect(recorder.summary.lost).toBe(1);
  });

  it('leaves a settled job alone, and a failed renewal for the next heartbeat', async () => {
    // Prepare
    let calls = 0;
    const { k, obs, logger } = keeper({
      renewLeases: async () => {
        calls++;
        if (calls === 1) throw new Error('connection reset');
        return new Set();
      },
    });
    const h = k.hold(job(), 1);
    // Act
    await k.renew();
    h.settled = true;
    await k.renew();
    // Assess
    expect(calls).toBe(2);
    expect(h.aborted).toBe(false);
    expect(obs.dbErrors).toEqual(['renew']);
    expect(logger.lines.map((l) => l.message)).toEqual(['lease renewal failed; will retry']);
  });

  it('runs no renewal while holding nothing', async () => {
    const { k } = keeper();
    await expect(k.renew()).resolves.toBeUndefined();
  });

  it('releases: counted deadline stops only when counted; queued are released, failed out of releases, the rest lost', async () => {
    // Prepare
    const sent: Array<{ id: string; deadline: boolean }> = [];
    const { k, recorder, logger } = keeper({
      releaseJobs: async (_db, leases, reason, max) => {
        expect(reason).toBe('invocation deadline');
        expect(max).toBe(3);
        for (const l of leases) sent.push({ id: l.id, deadline: l.deadline === true });
        return new Map([
          [leases[0]!.id, 'queued'],
          [leases[1]!.id, 'failed'],
        ]);
      },
    });
    const a = k.hold(job(), 1);
    const b = k.hold(job(), 1);
    const c = k.hold(job(), 1);
    a.deadline = true;
    b.deadline = true;
    // Act
    await k.release([a, b, c], 'invocation deadline', true);
    // Assess
    expect(sent).toEqual([
      { id: a.job.id, deadline: true },
      { id: b.job.id, deadline: true },
      { id: c.job.id, deadline: false },
    ]);
    expect(recorder.summary).toMatchObject({ released: 1, failed: 1, lost: 1 });
    expect(k.held.size).toBe(0);
    expect(logger.lines.at(-1)).toMatchObject({ message: 'jobs released', extra: { released: 1 } });
  });

  it('counts no deadline stop for a stopped consumer', async () => {
    // Prepare
    const sent: boolean[] = [];
    const { k } = keeper({
      releaseJobs: async (_db, leases) => {
        for (const l of leases) sent.push(l.deadline === true);
        return new Map(leases.map((l) => [l.id, 'queued' as const]));
      },
    });
    const h = k.hold(job(), 1);
    h.deadline = true;
    // Act
    await k.release([h], 'consumer stopped', false);
    // Assess
    expect(sent).toEqual([false]);
  });
});
