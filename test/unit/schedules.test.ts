import { describe, expect, it } from 'vitest';
import {
  MAX_CATCH_UP,
  occurrenceKey,
  planOccurrences,
  validateSchedule,
} from '../../functions/engine/schedules.ts';
import { createRegistry } from '../../functions/tasks/index.ts';

const iso = (ds: Date[]) => ds.map((d) => d.toISOString());
const at = (s: string) => new Date(s);

/** The occurrences of `cron` in `tz` from `from` (inclusive) for `hours`, as the materialiser plans them. */
function occurrences(cron: string, tz: string, from: string, hours: number): string[] {
  const now = at(from);
  return iso(
    planOccurrences({ cron, timezone: tz, catchUp: 'skip', nextAt: now }, now, {
      aheadMs: hours * 3_600_000,
      graceMs: 0,
    }).occurrences,
  );
}

describe('cron occurrences across daylight-saving changes (croner)', () => {
  it('Europe/Berlin spring forward: 02:30 does not exist on 29 March 2026 and runs at 03:30 CEST, once', () => {
    expect(occurrences('30 2 * * *', 'Europe/Berlin', '2026-03-28T00:00:00Z', 72)).toEqual([
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:30:00.000Z', // 03:30 CEST: the gap's time moved forward
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
  });

  it('Europe/Berlin fall back: 02:30 happens twice on 25 October 2026 and runs once, at the first', () => {
    expect(occurrences('30 2 * * *', 'Europe/Berlin', '2026-10-24T00:00:00Z', 72)).toEqual([
      '2026-10-24T00:30:00.000Z', // 02:30 CEST
      '2026-10-25T00:30:00.000Z', // 02:30 CEST, not again at 01:30Z (02:30 CET)
      '2026-10-26T01:30:00.000Z', // 02:30 CET
    ]);
  });

  it('America/New_York spring forward: 02:30 on 8 March 2026 runs at 03:30 EDT', () => {
    expect(occurrences('30 2 * * *', 'America/New_York', '2026-03-07T00:00:00Z', 72)).toEqual([
      '2026-03-07T07:30:00.000Z', // 02:30 EST
      '2026-03-08T07:30:00.000Z', // 03:30 EDT
      '2026-03-09T06:30:00.000Z', // 02:30 EDT
    ]);
  });

  it('America/New_York fall back: 01:30 on 1 November 2026 runs once, at 01:30 EDT', () => {
    expect(occurrences('30 1 * * *', 'America/New_York', '2026-10-31T00:00:00Z', 72)).toEqual([
      '2026-10-31T05:30:00.000Z',
      '2026-11-01T05:30:00.000Z', // 01:30 EDT; 06:30Z (01:30 EST) is the same wall time: not again
      '2026-11-02T06:30:00.000Z',
    ]);
  });

  it('UTC by default, and a seconds field is accepted', () => {
    expect(occurrences('0 3 * * *', 'UTC', '2026-06-01T00:00:00Z', 24)).toEqual(['2026-06-01T03:00:00.000Z']);
    expect(occurrences('*/20 * * * * *', 'UTC', '2026-06-01T00:00:00Z', 1 / 60)).toEqual([
      '2026-06-01T00:00:00.000Z',
      '2026-06-01T00:00:20.000Z',
      '2026-06-01T00:00:40.000Z',
      '2026-06-01T00:01:00.000Z',
    ]);
  });
});

describe('catchUp after a simulated 3-hour outage (clock injected)', () => {
  // Materialised up to 09:00 (the cursor), then everything was down until 12:00:30.
  const base = { cron: '*/15 * * * *', timezone: 'UTC', nextAt: at('2026-06-01T09:00:00Z') };
  const now = at('2026-06-01T12:00:30Z');
  const opts = { aheadMs: 90_000, graceMs: 60_000 };

  it('skip: only what is due from now on', () => {
    const p = planOccurrences({ ...base, catchUp: 'skip' }, now, opts);
    expect(iso(p.occurrences)).toEqual(['2026-06-01T12:00:00.000Z']);
    expect(p.nextAt?.toISOString()).toBe('2026-06-01T12:15:00.000Z');
  });

  it('latest: the most recent missed occurrence, then what is due', () => {
    const p = planOccurrences({ ...base, catchUp: 'latest' }, now, opts);
    expect(iso(p.occurrences)).toEqual(['2026-06-01T11:45:00.000Z', '2026-06-01T12:00:00.000Z']);
  });

  it('all: every missed occurrence in order, then what is due', () => {
    const p = planOccurrences({ ...base, catchUp: 'all' }, now, opts);
    expect(p.occurrences).toHaveLength(13);
    expect(p.occurrences[0]!.toISOString()).toBe('2026-06-01T09:00:00.000Z');
    expect(p.occurrences[11]!.toISOString()).toBe('2026-06-01T11:45:00.000Z');
    expect(p.occurrences[12]!.toISOString()).toBe('2026-06-01T12:00:00.000Z');
  });

  it('all is bounded: a minutely schedule 3 hours behind enqueues the most recent MAX_CATCH_UP', () => {
    const p = planOccurrences({ ...base, cron: '* * * * *', catchUp: 'all' }, now, opts);
    const missed = p.occurrences.filter((d) => d < at('2026-06-01T11:59:30Z'));
    expect(missed).toHaveLength(MAX_CATCH_UP);
    expect(missed.at(-1)!.toISOString()).toBe('2026-06-01T11:59:00.000Z');
    expect(missed[0]!.toISOString()).toBe('2026-06-01T10:20:00.000Z');
    // then 12:00, 12:01, 12:02 (up to 90 s after 12:00:30)
    expect(iso(p.occurrences.slice(MAX_CATCH_UP))).toEqual([
      '2026-06-01T12:00:00.000Z',
      '2026-06-01T12:01:00.000Z',
      '2026-06-01T12:02:00.000Z',
    ]);
  });

  it('an occurrence a little late (inside the grace) is still enqueued, in every mode', () => {
    for (const catchUp of ['skip', 'latest', 'all'] as const) {
      const p = planOccurrences({ ...base, nextAt: at('2026-06-01T12:00:00Z'), catchUp }, now, opts);
      expect(iso(p.occurrences), catchUp).toEqual(['2026-06-01T12:00:00.000Z']);
    }
  });

  it('materialises ahead: the next minute is planned before its time', () => {
    const p = planOccurrences(
      { cron: '0 3 * * *', timezone: 'Europe/Berlin', nextAt: null, catchUp: 'latest' },
      at('2026-06-01T00:59:00Z'),
      opts,
    );
    expect(iso(p.occurrences)).toEqual(['2026-06-01T01:00:00.000Z']);
  });

  it('the idempotency key names the schedule and the occurrence', () => {
    expect(occurrenceKey('nightly', at('2026-06-01T01:00:00Z'))).toBe(
      'schedule:nightly:2026-06-01T01:00:00.000Z',
    );
  });
});

describe('schedule validation', () => {
  const registry = createRegistry();
  const ok = { name: 'n', cron: '0 3 * * *', type: 'example.echo' };
  it.each([
    [{ ...ok, cron: 'not a cron' }, /cron: .*5 fields/],
    [{ ...ok, cron: '61 3 * * *' }, /cron: "61 3 \* \* \*" is not a valid cron expression/],
    [{ ...ok, cron: '0 3 31 2 *' }, /cron/],
    [{ ...ok, timezone: 'Mars/Olympus' }, /timezone: unknown time zone "Mars\/Olympus"/],
    [{ ...ok, type: 'no.such.task' }, /no.such.task/],
    [{ ...ok, type: 'example.sleep', payload: { ms: -1 } }, /payload.ms/],
    [{ ...ok, name: 'bad name' }, /name: must be/],
    [{ ...ok, catchUp: 'sometimes' }, /catchUp/],
    [{ ...ok, maxAttempts: 0 }, /maxAttempts/],
  ])('refuses %j', (def, message) => {
    expect(() => validateSchedule(def as never, registry)).toThrow(message);
  });
  it('fills the defaults', () => {
    expect(validateSchedule(ok, registry)).toMatchObject({
      timezone: 'UTC',
      queue: 'default',
      catchUp: 'latest',
      payload: {},
      enabled: true,
    });
  });
});

describe('schedule and limit metrics', () => {
  it('exports max_running per limited queue and the last enqueued occurrence and cursor per schedule', async () => {
    const { ledgerRegistry } = await import('../../functions/platform/metrics.ts');
    const registry = ledgerRegistry({
      snapshot: {
        totals: { submitted: 0, completed: 0, failed: 0, recovered: 0 },
        running: 0,
        queues: [],
      } as never,
      limits: [{ name: 'emails', maxRunning: 5, ratePerSecond: 20, rateBurst: 20 }],
      schedules: [{ name: 'nightly', lastRunAt: 1_780_000_000, nextAt: 1_780_086_400 }],
    });
    const text = await registry.metrics();
    expect(text).toContain('phase6_queue_limit_max_running{queue="emails"} 5');
    expect(text).toContain('phase6_queue_limit_rate_per_second{queue="emails"} 20');
    expect(text).toContain('phase6_schedule_last_enqueued_timestamp_seconds{schedule="nightly"} 1780000000');
    expect(text).toContain(
      'phase6_schedule_next_occurrence_timestamp_seconds{schedule="nightly"} 1780086400',
    );
  });
});
