import { describe, expect, it } from 'vitest';
import { Presence, STAY_RESERVE_MS } from '../../functions/engine/consumer/presence.ts';
import type { Statements } from '../../functions/engine/consumer/statements.ts';
import type { ConsumerSettings } from '../../functions/engine/contracts.ts';
import { noDb, recordingLogger, statements } from './consumer-fakes.ts';

const base: ConsumerSettings = {
  batchSize: 10,
  concurrency: 4,
  leaseSeconds: 30,
  idleExitMs: 1000,
  pollMs: 100,
  queues: ['default'],
  advisoryLocks: false,
  backoffBaseSeconds: 1,
  maxBackoffSeconds: 60,
};

function presence(settings: Partial<ConsumerSettings>, over: Partial<Statements> = {}) {
  const calls: string[] = [];
  const logger = recordingLogger();
  const p = new Presence({
    db: noDb,
    statements: statements({
      touchPresence: async () => void calls.push('touch'),
      leavePresence: async () => void calls.push('leave'),
      nextDueAt: async () => undefined,
      ...over,
    }),
    logger,
    workerId: 'w1',
    settings: { ...base, ...settings },
  });
  return { p, calls, logger };
}

const plenty = 60_000;

describe('presence and staying', () => {
  it('touches its presence row before a claim at most every quarter of liveMs, and never without liveMs', async () => {
    // Prepare
    const live = presence({ liveMs: 60_000 });
    const off = presence({});
    // Act
    await live.p.touch();
    await live.p.touch();
    await off.p.touch();
    // Assess
    expect(live.calls).toEqual(['touch']);
    expect(live.p.present).toBe(true);
    expect(off.calls).toEqual([]);
  });

  it('a presence write that fails is only a warning', async () => {
    const { p, logger } = presence(
      { liveMs: 1000 },
      { touchPresence: () => Promise.reject(new Error('down')) },
    );
    await p.touch();
    expect(p.present).toBe(false);
    expect(logger.lines.map((l) => l.message)).toEqual(['could not record consumer presence']);
  });

  it('waits until idleExitMs, then exits; with presence it leaves first and claims once more, then exits', async () => {
    // Prepare
    const quiet = presence({});
    const live = presence({ liveMs: 5000 });
    await live.p.touch();
    // Act / Assess
    expect(await quiet.p.idle(999, plenty, Number.POSITIVE_INFINITY)).toBe('wait');
    expect(await quiet.p.idle(1000, plenty, Number.POSITIVE_INFINITY)).toBe('exit');
    expect(await live.p.idle(1000, plenty, Number.POSITIVE_INFINITY)).toBe('claim');
    expect(live.calls).toEqual(['touch', 'leave']);
    await live.p.touch();
    expect(live.calls).toEqual(['touch', 'leave']);
    live.p.claimed(0);
    expect(await live.p.idle(1000, plenty, Number.POSITIVE_INFINITY)).toBe('exit');
  });

  it('stays for stayMs after work arrived following an empty claim (a trickle), but not near the deadline', async () => {
    // Prepare
    const { p } = presence({ stayMs: 5000 });
    p.claimed(0);
    p.claimed(2);
    // Act / Assess
    expect(await p.idle(4000, plenty, Number.POSITIVE_INFINITY)).toBe('wait');
    expect(await p.idle(5000, plenty, Number.POSITIVE_INFINITY)).toBe('exit');
    expect(await p.idle(1000, STAY_RESERVE_MS, Number.POSITIVE_INFINITY)).toBe('exit');
  });

  it('does not stay for stayMs when the first claim found work (no trickle seen)', async () => {
    const { p } = presence({ stayMs: 5000 });
    p.claimed(3);
    expect(await p.idle(1000, plenty, Number.POSITIVE_INFINITY)).toBe('exit');
  });

  it('stays for a job due within delayStayMs (the database, or a retry it recorded), until a poll after its run_at', async () => {
    // Prepare
    const dueIn = Date.now() + 2000;
    const { p } = presence({ delayStayMs: 10_000 }, { nextDueAt: async () => dueIn });
    const retry = presence({ delayStayMs: 10_000 });
    // Act / Assess
    expect(await p.idle(1000, plenty, Number.POSITIVE_INFINITY)).toBe('wait');
    expect(p.dueAt).toBe(dueIn);
    expect(p.stayedForDue).toBe(1);
    expect(await p.idle(1500, plenty, Number.POSITIVE_INFINITY)).toBe('wait');
    expect(p.stayedForDue).toBe(1);
    const retryAt = Date.now() + 3000;
    expect(await retry.p.idle(1000, plenty, retryAt)).toBe('wait');
    expect(retry.p.dueAt).toBe(retryAt);
    p.claimed(1);
    expect(p.dueAt).toBe(0);
  });

  it('ignores a due job beyond delayStayMs or the time left, and exits when the read fails', async () => {
    const far = presence({ delayStayMs: 1000 }, { nextDueAt: async () => undefined });
    expect(await far.p.idle(1000, plenty, Date.now() + 5000)).toBe('exit');
    const failing = presence({ delayStayMs: 10_000 }, { nextDueAt: () => Promise.reject(new Error('down')) });
    expect(await failing.p.idle(1000, plenty, Number.POSITIVE_INFINITY)).toBe('exit');
    expect(failing.logger.lines.map((l) => l.message)).toEqual(['could not read the next due job; exiting']);
    expect(await far.p.nextDue(STAY_RESERVE_MS, Date.now() + 10)).toBe(0);
  });
});
