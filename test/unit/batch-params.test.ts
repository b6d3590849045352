import { describe, expect, it } from 'vitest';
import { completionArrays } from '../../functions/engine/sql/completeJobs.ts';
import { fencedBatch } from '../../functions/engine/sql/fence.ts';

describe('the completions parameters, parallel arrays', () => {
  it('are the ids, tokens and results in the order given, a missing result as JSON null', () => {
    // Prepare
    const completions = [
      { id: '1', leaseToken: '2', result: { ok: true, text: 'a "quoted" line\n' } },
      { id: '9223372036854775807', leaseToken: '1' },
      { id: '3', leaseToken: '4', resultJson: '[1,null]' },
    ];
    // Act
    const arrays = completionArrays(completions);
    // Assess: position i of each array is completion i; a serialised result is sent as it is
    expect(arrays.ids).toEqual(['1', '9223372036854775807', '3']);
    expect(arrays.tokens).toEqual(['2', '1', '4']);
    expect(arrays.results.map((r) => JSON.parse(r))).toEqual([
      { ok: true, text: 'a "quoted" line\n' },
      null,
      [1, null],
    ]);
    expect(arrays.results[2]).toBe('[1,null]');
    expect(completionArrays([])).toEqual({ ids: [], tokens: [], results: [] });
  });

  it('refuses an id or token that is not a bigint in decimal, before anything is sent', () => {
    expect(() => completionArrays([{ id: '1,"x":2', leaseToken: '1' }])).toThrow(TypeError);
    expect(() => completionArrays([{ id: '1', leaseToken: '' }])).toThrow(TypeError);
    expect(() => completionArrays([{ id: '-1', leaseToken: '1' }])).toThrow(TypeError);
  });
});

describe('the fence of batch statements', () => {
  it("matches id, status and token, in the text the fault suite's negative control strips (AND <alias>.lease_token = x.token)", () => {
    const sql = fencedBatch('d', 3);
    expect(sql).toContain('jsonb_array_elements($3::jsonb)');
    expect(sql).toContain("(d.status = 'running') IS TRUE");
    expect(sql).toMatch(/AND d\.lease_token = x\.token/);
  });
});
