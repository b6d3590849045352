import { describe, expect, it } from 'vitest';
import { CompletionBatcher } from '../../functions/engine/consumer/completion-batcher.ts';
import type { Held } from '../../functions/engine/consumer/held.ts';
import { LeaseKeeper } from '../../functions/engine/consumer/lease-keeper.ts';
import type { PendingCompletion } from '../../functions/engine/consumer/recorder.ts';
import type { Completion } from '../../functions/engine/sql/completeJobs.ts';
import type { ClaimedJob } from '../../functions/engine/types.ts';
import { fakeRecorder, job, noDb, statements, valueError } from './consumer-fakes.ts';

const claim = { workerId: 'w1', limit: 10, leaseSeconds: 30, queues: [] };

function batcher(over: Parameters<typeof statements>[0] = {}) {
  const { recorder, logger, obs } = fakeRecorder();
  const st = statements(over);
  const keeper = new LeaseKeeper({
    db: noDb,
    statements: st,
    recorder,
    logger,
    workerId: 'w1',
    leaseSeconds: 30,
    maxDeadlineReleases: 3,
    withdraw: () => false,
  });
  const refused: Array<[Held, string]> = [];
  const b = new CompletionBatcher({
    db: noDb,
    statements: st,
    keeper,
    recorder,
    logger,
    maxSize: 3,
    maxAgeMs: 1000,
    refused: async (h, failure) => {
      refused.push([h, failure.message]);
      keeper.drop(h.job.id);
    },
  });
  const finish = (j: ClaimedJob, finishedAt = Date.now(), resultJson = 'null'): PendingCompletion => {
    keeper.hold(j, 1);
    const c = {
      id: j.id,
      leaseToken: j.leaseToken,
      resultJson,
      type: j.type,
      claimedAt: 1,
      startedAt: 2,
      finishedAt,
    };
    b.add(c);
    return c;
  };
  return { b, keeper, recorder, obs, refused, finish };
}

describe('completion batcher', () => {
  it('is due when full or when the oldest waited longer than its age, not before', () => {
    // Prepare
    const { b, finish } = batcher();
    const now = Date.now();
    // Act / Assess
    expect(b.due(now)).toBe(false);
    finish(job(), now);
    expect(b.due(now + 1000)).toBe(false);
    expect(b.due(now + 1001)).toBe(true);
    finish(job(), now + 1000);
    finish(job(), now + 1000);
    expect(b.due(now)).toBe(true);
  });

  it('flushes every pending completion in one statement, drops their leases and records the answer', async () => {
    // Prepare
    const sent: Completion[][] = [];
    const { b, keeper, recorder, finish } = batcher({
      completeJobs: async (_db, batch) => {
        sent.push([...batch]);
        return new Set([batch[0]!.id]);
      },
    });
    const one = finish(job());
    finish(job());
    // Act
    await b.flush();
    await b.flush();
    // Assess: one statement; the one not completed lost its lease
    expect(sent).toHaveLength(1);
    expect(sent[0]!.map((c) => c.id)[0]).toBe(one.id);
    expect(b.size).toBe(0);
    expect(keeper.held.size).toBe(0);
    expect(recorder.summary).toMatchObject({ completed: 1, lost: 1 });
  });

  it('lets pending completions ride with the claim, and claims alone when none are pending', async () => {
    // Prepare
    const calls: string[] = [];
    const claimedJob = job();
    const { b, recorder, finish } = batcher({
      completeAndClaim: async (_db, batch) => {
        calls.push(`completeAndClaim:${batch.length}`);
        return { completed: new Set(batch.map((c) => c.id)), claimed: [claimedJob] };
      },
      claimJobs: async () => {
        calls.push('claimJobs');
        return [];
      },
    });
    finish(job());
    finish(job());
    // Act
    const first = await b.claim(claim);
    const second = await b.claim(claim);
    // Assess
    expect(calls).toEqual(['completeAndClaim:2', 'claimJobs']);
    expect(first).toEqual([claimedJob]);
    expect(second).toEqual([]);
    expect(recorder.summary.completed).toBe(2);
  });

  it('completes one by one when the database refuses a value: the job at fault fails alone, then the claim runs', async () => {
    // Prepare
    const calls: string[] = [];
    let bad = '';
    const { b, recorder, refused, obs, finish } = batcher({
      completeAndClaim: async () => {
        calls.push('completeAndClaim');
        throw valueError();
      },
      completeJobs: async (_db, batch) => {
        calls.push(`completeJobs:${batch[0]!.id}`);
        if (batch[0]!.id === bad) throw valueError();
        return new Set([batch[0]!.id]);
      },
      claimJobs: async () => {
        calls.push('claimJobs');
        return [];
      },
    });
    const a = finish(job());
    bad = finish(job()).id;
    // Act
    await b.claim(claim);
    // Assess
    expect(calls).toEqual(['completeAndClaim', `completeJobs:${a.id}`, `completeJobs:${bad}`, 'claimJobs']);
    expect(recorder.summary.completed).toBe(1);
    expect(refused.map(([h, m]) => [h.job.id, m.startsWith('result not storable:')])).toEqual([[bad, true]]);
    expect(obs.dbErrors).toEqual(['claim', 'complete']);
  });

  it('rethrows an error that is not about a value, keeping nothing pending', async () => {
    const { b, finish } = batcher({ completeJobs: () => Promise.reject(new Error('connection reset')) });
    finish(job());
    await expect(b.flush()).rejects.toThrow('connection reset');
    expect(b.size).toBe(0);
  });
});
