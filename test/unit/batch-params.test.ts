import { describe, expect, it } from 'vitest';
import { completionsParam } from '../../functions/engine/sql/completeJobs.ts';
import { fencedBatch } from '../../functions/engine/sql/fence.ts';

describe('the completions parameter, written as JSON text directly', () => {
  it('is the JSON array of {id, token, result}, ids and tokens as numbers, a missing result as null', () => {
    // Prepare
    const completions = [
      { id: '1', leaseToken: '2', result: { ok: true, text: 'a "quoted" line\n' } },
      { id: '9223372036854775807', leaseToken: '1' },
      { id: '3', leaseToken: '4', result: [1, null] },
    ];
    // Act
    const text = completionsParam(completions);
    // Assess: parsed back it is what JSON.stringify of the objects would give
    expect(JSON.parse(text.replace(/"id":(\d+),"token":(\d+)/g, '"id":"$1","token":"$2"'))).toEqual([
      { id: '1', token: '2', result: { ok: true, text: 'a "quoted" line\n' } },
      { id: '9223372036854775807', token: '1', result: null },
      { id: '3', token: '4', result: [1, null] },
    ]);
    expect(text).toContain('"id":9223372036854775807,');
    expect(completionsParam([])).toBe('[]');
  });

  it('refuses an id or token that is not a bigint in decimal, instead of writing it into the JSON', () => {
    expect(() => completionsParam([{ id: '1,"x":2', leaseToken: '1' }])).toThrow(TypeError);
    expect(() => completionsParam([{ id: '1', leaseToken: '' }])).toThrow(TypeError);
    expect(() => completionsParam([{ id: '-1', leaseToken: '1' }])).toThrow(TypeError);
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
