import { describe, expect, it } from 'vitest';
import {
  type ClaimSizeInput,
  claimSize,
  DurationAverage,
  INITIAL_CLAIM,
} from '../../functions/engine/consumer/claim-size.ts';

const base: ClaimSizeInput = {
  freeSlots: 10,
  batchSize: 500,
  observedMs: undefined,
  timeLeftMs: 60_000,
  targetMs: 1000,
};

describe('claimSize (adaptive claims)', () => {
  it('before any task finished: the initial claim, or the free slots if more, within the cap', () => {
    // Prepare
    const inputs = [base, { ...base, freeSlots: 80 }, { ...base, batchSize: 20 }];
    // Act
    const sizes = inputs.map(claimSize);
    // Assess
    expect(sizes).toEqual([INITIAL_CLAIM, 80, 20]);
  });

  it('short tasks: a claim bringing about targetMs of work per free slot, capped at batchSize', () => {
    // Prepare: 10 free slots, 5 ms tasks: 200 each fill a second
    const short = { ...base, observedMs: 5, batchSize: 1000 };
    // Act
    const sizes = [
      claimSize(short),
      claimSize({ ...short, batchSize: 500 }),
      claimSize({ ...short, observedMs: 0 }),
      claimSize({ ...short, observedMs: 20 }),
    ];
    // Assess
    expect(sizes).toEqual([1000, 500, 1000, 500]);
  });

  it('long tasks: one job per free slot, not a batch held waiting under its lease', () => {
    // Prepare
    const long = { ...base, observedMs: 5000 };
    // Act
    const sizes = [
      claimSize(long),
      claimSize({ ...long, freeSlots: 3 }),
      claimSize({ ...long, observedMs: 400 }),
    ];
    // Assess: 400 ms tasks: two per slot in a second
    expect(sizes).toEqual([10, 3, 20]);
  });

  it('little time left: never more than the free slots can finish in it, and at least one', () => {
    // Prepare: 100 ms tasks would bring 10 per slot in a second, but only 250 ms are left
    const tasks = { ...base, observedMs: 100 };
    // Act
    const sizes = [
      claimSize({ ...tasks, timeLeftMs: 250 }),
      claimSize({ ...tasks, timeLeftMs: 50 }),
      claimSize({ ...tasks, timeLeftMs: 0, freeSlots: 1 }),
    ];
    // Assess
    expect(sizes).toEqual([20, 1, 1]);
  });

  it('full slots: nothing to claim', () => {
    // Act
    const sizes = [claimSize({ ...base, freeSlots: 0 }), claimSize({ ...base, freeSlots: 0, observedMs: 1 })];
    // Assess
    expect(sizes).toEqual([0, 0]);
  });

  it('the duration average starts at the first observation and follows later ones', () => {
    // Prepare
    const avg = new DurationAverage();
    const before = avg.value;
    // Act
    avg.observe(100);
    const first = avg.value;
    for (let i = 0; i < 50; i++) avg.observe(10);
    avg.observe(Number.NaN);
    avg.observe(-5);
    // Assess
    expect(before).toBeUndefined();
    expect(first).toBe(100);
    expect(avg.value).toBeCloseTo(10, 1);
  });
});
