import { describe, expect, it } from 'vitest';
import { fanoutCount, fanoutPayload, settledCounts, wantsSuccessor } from '../../functions/engine/fanout.ts';

const policy = { fanoutMax: 4, functionName: 'dte-consumer' };

describe('fan-out policy', () => {
  it('fans out CONSUMER_FANOUT_MAX invocations after a scheduled invocation that left a backlog', () => {
    // Prepare
    const summary = { backlog: true };
    // Act
    const count = fanoutCount(summary, 0, policy);
    // Assess
    expect(count).toBe(4);
  });

  it('fans out nothing without a backlog, from a fanned-out invocation, with the cap at 0 or no function name', () => {
    expect(fanoutCount({ backlog: false }, 0, policy)).toBe(0);
    expect(fanoutCount({ backlog: true }, 1, policy)).toBe(0);
    expect(fanoutCount({ backlog: true }, 0, { ...policy, fanoutMax: 0 })).toBe(0);
    expect(fanoutCount({ backlog: true }, 0, { ...policy, functionName: undefined })).toBe(0);
    expect(fanoutCount({ backlog: true }, 0, { ...policy, functionName: '' })).toBe(0);
  });

  it('hands each fan-out invocation its depth plus one', () => {
    // Act
    const payload = fanoutPayload(0);
    // Assess
    expect(JSON.parse(new TextDecoder().decode(payload))).toEqual({ fanoutDepth: 1 });
  });

  it('counts the started and failed invocations and keeps the first failure', () => {
    // Prepare
    const results: PromiseSettledResult<unknown>[] = [
      { status: 'fulfilled', value: 1 },
      { status: 'rejected', reason: new Error('throttled') },
      { status: 'rejected', reason: new Error('second') },
    ];
    // Act
    const counts = settledCounts(results);
    // Assess
    expect(counts).toEqual({ started: 1, failed: 2, firstReason: 'Error: throttled' });
    expect(settledCounts([{ status: 'fulfilled', value: 1 }])).toEqual({
      started: 1,
      failed: 0,
      firstReason: undefined,
    });
  });
});

describe('successor policy', () => {
  it('wants one successor after a live depth-0 invocation that ran out of time and fanned out nothing', () => {
    expect(wantsSuccessor({ exitReason: 'deadline' }, 0, 0, 2000)).toBe(true);
  });

  it('wants none after an idle, stopped or failed exit, without presence, when fanned out, or from a fan-out', () => {
    expect(wantsSuccessor({ exitReason: 'idle' }, 0, 0, 2000)).toBe(false);
    expect(wantsSuccessor({ exitReason: 'stopped' }, 0, 0, 2000)).toBe(false);
    expect(wantsSuccessor({ exitReason: 'error' }, 0, 0, 2000)).toBe(false);
    expect(wantsSuccessor({ exitReason: 'deadline' }, 0, 0, 0)).toBe(false);
    expect(wantsSuccessor({ exitReason: 'deadline' }, 0, 0, undefined)).toBe(false);
    expect(wantsSuccessor({ exitReason: 'deadline' }, 0, 2, 2000)).toBe(false);
    expect(wantsSuccessor({ exitReason: 'deadline' }, 1, 0, 2000)).toBe(false);
  });
});
