import { describe, expect, it } from 'vitest';
import {
  checkEnqueueRequest,
  hasRunAtAndDelay,
  idText,
  int8Text,
  isName,
  jobRequestSchema,
  leaseTokenText,
  NAMES,
  normalizeRequest,
  parseWith,
  runAtText,
  storableText,
  unstorableReason,
  ValidationError,
  validateLimitChange,
} from '../../functions/engine/index.ts';
import { parseJobId } from '../../functions/http/validate.ts';
import { parseId, parseQueueName } from '../../tools/taskctl/parse.ts';

describe('the request schema', () => {
  it('applies one name rule: 128 characters for queues and schedules, 200 for types, [A-Za-z0-9_.:-]', () => {
    // Prepare
    const q128 = 'q'.repeat(128);
    const t200 = 't'.repeat(200);
    // Act
    const verdicts = {
      queue: [
        isName('queue', q128),
        isName('queue', `${q128}x`),
        isName('queue', 'a b'),
        isName('queue', ''),
      ],
      type: [isName('type', t200), isName('type', `${t200}x`), isName('type', 'email.send:v2_a-b')],
      schedule: [isName('schedule', 'nightly-report'), isName('schedule', 'x/y'), isName('schedule', 42)],
    };
    // Assess
    expect(verdicts).toEqual({
      queue: [true, false, false, false],
      type: [true, false, true],
      schedule: [true, false, false],
    });
    expect(NAMES.queue.rule).toBe('1-128 of [A-Za-z0-9_.:-]');
  });

  it('parses 64-bit ids: canonical text, int8 bounds, leading zeros refused only when strict', () => {
    // Act
    const ids = ['1', '007', '9223372036854775807', '9223372036854775808', '0', '-1', '1e3', ' 1', ''].map(
      (v) => int8Text(v),
    );
    const strict = ['007', '7', '0'].map((v) => int8Text(v, { strict: true }));
    const tokens = ['0', '00', '5'].map((v) => int8Text(v, { min: 0n }));
    // Assess
    expect(ids).toEqual(['1', '7', '9223372036854775807', null, null, null, null, null, null]);
    expect(strict).toEqual([null, '7', null]);
    expect(tokens).toEqual(['0', '0', '5']);
    expect(int8Text(7)).toBeNull();
  });

  it('every entry point takes ids and queue names by the same rule, each with its own error', () => {
    // Act, Assess: the API's path id (strict), taskctl's argument, the dashboard's zod field.
    expect(parseJobId('42')).toBe('42');
    expect(() => parseJobId('042')).toThrow(ValidationError);
    expect(() => parseJobId('9223372036854775808')).toThrow(/positive integer/);
    expect(parseId('042')).toBe('42');
    expect(() => parseId('abc')).toThrow('invalid job id "abc": expected a positive integer');
    expect(parseWith(idText('job id'), '0042')).toBe('42');
    expect(() => parseWith(idText('job id'), '0')).toThrow('job id must be a positive integer below 2^63');
    expect(parseWith(leaseTokenText, '0')).toBe('0');
    expect(parseQueueName('reports')).toBe('reports');
    expect(() => parseQueueName('a b')).toThrow('invalid queue name "a b": 1-128 of [A-Za-z0-9_.:-]');
  });

  it('takes runAt or delaySeconds, not both, and only runAt PostgreSQL can read', () => {
    // Act
    const both = () => checkEnqueueRequest({ type: 'x', runAt: '2030-01-01T00:00:00Z', delaySeconds: 5 }, 3);
    // Assess
    expect(hasRunAtAndDelay({ runAt: 'x', delaySeconds: 0 })).toBe(true);
    expect(hasRunAtAndDelay({ delaySeconds: 0 })).toBe(false);
    expect(both).toThrow('jobs[3].runAt: give runAt or delaySeconds, not both');
    expect(runAtText('2030-01-01T00:00:00+02:00')).toEqual({ iso: '2029-12-31T22:00:00.000Z' });
    expect(runAtText('tomorrow')).toEqual({ problem: 'must be an ISO 8601 timestamp' });
    expect(runAtText(new Date(Date.UTC(10_000, 0, 1)))).toEqual({
      problem: 'must fall between the years 1 and 9999 (UTC)',
    });
  });

  it("checks the engine's own requests field by field, and normalizeRequest only defaults and hashes", () => {
    // Act, Assess
    expect(() => checkEnqueueRequest({ type: 'a b' })).toThrow('type: must be 1-200 of [A-Za-z0-9_.:-]');
    expect(() => checkEnqueueRequest({ type: 'x', queue: '' })).toThrow('queue: must be 1-128');
    expect(() => checkEnqueueRequest({ type: 'x', priority: 1.5 })).toThrow('priority: must be an integer');
    expect(() => checkEnqueueRequest({ type: 'x', maxAttempts: 0 })).toThrow('maxAttempts');
    expect(() => checkEnqueueRequest({ type: 'x', delaySeconds: -1 })).toThrow('delaySeconds');
    expect(() => checkEnqueueRequest({ type: 'x', idempotencyKey: '' })).toThrow('idempotencyKey');
    expect(() => checkEnqueueRequest({ type: 'x', queue: 'q', priority: 3, maxAttempts: 2 })).not.toThrow();
    const row = normalizeRequest({ type: 'x', idempotencyKey: 'k' });
    expect(row).toMatchObject({ queue: 'default', priority: 0, delay: 0, max_attempts: 5, key: 'k' });
    expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(normalizeRequest({ type: 'x', payload: { b: 1, a: 2 }, idempotencyKey: 'k' }).hash).toBe(
      normalizeRequest({ type: 'x', payload: { a: 2, b: 1 }, idempotencyKey: 'k' }).hash,
    );
  });

  it("refuses text PostgreSQL cannot store and the API request's unknown fields", () => {
    // Act, Assess
    expect(storableText('ok ✓')).toBe(true);
    expect(unstorableReason('a\u0000b')).toBe('NUL characters are not allowed');
    expect(unstorableReason('\uD800')).toBe('lone UTF-16 surrogates are not allowed');
    expect(() => parseWith(jobRequestSchema, { type: 'x', queue: 'a b' }, 'jobs.1.')).toThrow(
      'jobs.1.queue: queue must be 1-128 of [A-Za-z0-9_.:-]',
    );
    expect(() => parseWith(jobRequestSchema, { type: 'x', extra: 1 })).toThrow(ValidationError);
  });

  it('checks a queue-limit change before anything is stored', () => {
    // Act, Assess
    expect(() => validateLimitChange('q', {})).toThrow('give maxRunning and/or rate');
    expect(() => validateLimitChange('q', { maxRunning: 0 })).toThrow('maxRunning must be an integer');
    expect(() => validateLimitChange('q', { maxRunning: 2, burst: 3 })).toThrow('burst needs a rate');
    expect(() => validateLimitChange('a b', { rate: 1 })).toThrow('queue name must be 1-128');
    expect(() => validateLimitChange('q', { rate: 2.5, burst: 5 })).not.toThrow();
  });
});
