import { describe, expect, it } from 'vitest';
import { fakeRecorder, job } from './consumer-fakes.ts';

const pending = (id: string, type = 'example.echo') => ({
  id,
  leaseToken: 't',
  resultJson: 'null',
  type,
  claimedAt: 1,
  startedAt: 10,
  finishedAt: 25,
});

describe('outcome recorder', () => {
  it('records a completion answer: completed ones counted, observed and logged in one line, the rest lost', () => {
    // Prepare
    const { recorder, obs, logger } = fakeRecorder();
    // Act
    recorder.completions([pending('1'), pending('2'), pending('3', 'example.sleep')], new Set(['1', '3']));
    // Assess
    expect(recorder.summary).toMatchObject({ completed: 2, lost: 1 });
    expect(obs.ran).toEqual([
      ['example.echo', 'completed'],
      ['example.echo', 'lost'],
      ['example.sleep', 'completed'],
    ]);
    const done = logger.lines.find((l) => l.message === 'jobs completed')!;
    expect(done.extra).toMatchObject({ worker: 'w1', count: 2 });
    expect((done.extra.jobs as Array<{ jobId: string }>).map((j) => j.jobId)).toEqual(['1', '3']);
    expect(
      logger.lines.filter((l) => l.message === 'lease lost before completion; result discarded'),
    ).toHaveLength(1);
  });

  it('logs no completion line when nothing completed', () => {
    const { recorder, logger } = fakeRecorder();
    recorder.completions([pending('1')], new Set());
    expect(logger.lines.map((l) => l.message)).toEqual(['lease lost before completion; result discarded']);
  });

  it('records failures: lost, failed for good, or retried (keeping the earliest retry time)', () => {
    // Prepare
    const { recorder, obs, logger } = fakeRecorder();
    const j = job();
    const early = new Date(Date.now() + 5000);
    const late = new Date(Date.now() + 9000);
    // Act
    recorder.failure(null, j, 5, {}, false);
    recorder.failure({ status: 'failed', runAt: early, attempts: 1 }, j, 5, {}, true);
    recorder.failure({ status: 'queued', runAt: late, attempts: 1 }, j, 5, {}, false);
    recorder.failure({ status: 'queued', runAt: early, attempts: 1 }, j, 5, {}, false);
    // Assess
    expect(recorder.summary).toMatchObject({ lost: 1, failed: 1, retried: 2 });
    expect(obs.ran.map(([, o]) => o)).toEqual(['lost', 'failed', 'retried', 'retried']);
    expect(recorder.retryAt).toBe(early.getTime());
    expect(logger.lines.find((l) => l.message === 'job failed')!.extra).toMatchObject({
      final: true,
      permanent: true,
    });
  });

  it('counts a lease lost before the task started without observing a run', () => {
    const { recorder, obs } = fakeRecorder();
    recorder.lostUnstarted();
    expect(recorder.summary.lost).toBe(1);
    expect(obs.ran).toEqual([]);
  });

  it('records claims (backlog when the claim came back full), releases, abandonment and the out-of-releases failure', () => {
    // Prepare
    const { recorder, obs, logger } = fakeRecorder();
    const j = job();
    // Act
    recorder.claimed(3, 10, 10);
    recorder.claimed(2, 4, 10);
    recorder.released(j, 0);
    recorder.abandoned(j, 600, 'deadline');
    recorder.outOfReleases(j, 0, 3);
    // Assess
    expect(recorder.summary).toMatchObject({
      claimed: 14,
      backlog: false,
      released: 1,
      abandoned: 1,
      failed: 1,
    });
    expect(obs.claims).toEqual([10, 4]);
    expect(obs.ran.map(([, o]) => o)).toEqual(['released', 'abandoned', 'failed']);
    expect(logger.lines.map((l) => l.level)).toEqual(['error', 'error']);
  });

  it('counts a statement that throws as a database error of its operation, and rethrows', async () => {
    const { recorder, obs } = fakeRecorder();
    await expect(recorder.guard('renew', () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    await expect(recorder.guard('claim', async () => 7)).resolves.toBe(7);
    expect(obs.dbErrors).toEqual(['renew']);
  });
});
