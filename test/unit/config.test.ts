import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../functions/platform/config.ts';

describe('loadConfig', () => {
  it('applies the documented defaults to an empty environment', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      LEASE_SECONDS: 30,
      BATCH_SIZE: 500,
      CLAIM_ADAPTIVE: true,
      CLAIM_TARGET_MS: 1000,
      CONSUMER_CONCURRENCY: 10,
      CONSUMER_IDLE_EXIT_MS: 2000,
      BACKOFF_BASE_SECONDS: 2,
      MAX_BACKOFF_SECONDS: 600,
      USE_ADVISORY_LOCKS: false,
      QUEUES: [],
      RETENTION_DAYS: 7,
      MAX_PAYLOAD_BYTES: 262_144,
      LOG_LEVEL: 'info',
      PORT: 3000,
      LOCAL_CONSUMERS: 2,
      LOCAL_CONSUMER_INTERVAL_MS: 1000,
      LOCAL_REAPER_INTERVAL_MS: 10_000,
      LOCAL_INVOCATION_TIMEOUT_MS: 60_000,
    });
    expect(c.databaseUrl).toBeUndefined();
    expect(c.PUSHGATEWAY_URL).toBeUndefined();
  });

  it("CONSUMER_TIMEOUT_SECONDS is optional (unknown: nothing checked) and bounded by Lambda's 900 s", () => {
    expect(loadConfig({}).CONSUMER_TIMEOUT_SECONDS).toBeUndefined();
    expect(loadConfig({ CONSUMER_TIMEOUT_SECONDS: '60' }).CONSUMER_TIMEOUT_SECONDS).toBe(60);
    expect(() => loadConfig({ CONSUMER_TIMEOUT_SECONDS: '901' })).toThrow(/CONSUMER_TIMEOUT_SECONDS/);
    expect(() => loadConfig({ CONSUMER_TIMEOUT_SECONDS: '0' })).toThrow(ConfigError);
  });

  it('parses numbers and flags from their string form', () => {
    const c = loadConfig({
      LEASE_SECONDS: '45',
      BATCH_SIZE: '200',
      USE_ADVISORY_LOCKS: '1',
      LOG_LEVEL: 'DEBUG',
    });
    expect(c).toMatchObject({
      LEASE_SECONDS: 45,
      BATCH_SIZE: 200,
      USE_ADVISORY_LOCKS: true,
      LOG_LEVEL: 'debug',
    });
    expect(loadConfig({ USE_ADVISORY_LOCKS: 'true' }).USE_ADVISORY_LOCKS).toBe(true);
    expect(loadConfig({ USE_ADVISORY_LOCKS: '0' }).USE_ADVISORY_LOCKS).toBe(false);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ LEASE_SECONDS: '', QUEUES: '', DATABASE_URL: '' })).toMatchObject({
      LEASE_SECONDS: 30,
      QUEUES: [],
      databaseUrl: undefined,
    });
  });

  const bad: Array<[string, string]> = [
    ['LEASE_SECONDS', 'thirty'],
    ['LEASE_SECONDS', '1.5'],
    ['BATCH_SIZE', '0'],
    ['BATCH_SIZE', '100000'],
    ['USE_ADVISORY_LOCKS', 'yes'],
    ['PUSHGATEWAY_URL', 'not a url'],
    ['LOG_LEVEL', 'verbose'],
    ['PORT', '70000'],
    ['DB_SECRET_ARN', 'my-secret'],
    ['QUEUES', 'emails,bad queue'],
    // The request schema's name rule: a queue named '.' or '..' cannot be enqueued into.
    ['QUEUES', 'emails,..'],
  ];
  for (const [name, value] of bad) {
    it(`refuses ${name}=${JSON.stringify(value)} with a ConfigError naming ${name}`, () => {
      expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
      expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`\\b${name}\\b`));
    });
  }

  it('refuses a maximum backoff below the base, naming MAX_BACKOFF_SECONDS', () => {
    expect(() => loadConfig({ BACKOFF_BASE_SECONDS: '10', MAX_BACKOFF_SECONDS: '5' })).toThrow(
      /MAX_BACKOFF_SECONDS/,
    );
  });

  it('names every bad variable at once', () => {
    let message = '';
    try {
      loadConfig({ LEASE_SECONDS: 'x', BATCH_SIZE: 'y' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/LEASE_SECONDS/);
    expect(message).toMatch(/BATCH_SIZE/);
  });

  it('accepts DATABASE_DSN as an alias of DATABASE_URL, and DATABASE_URL wins when both are set', () => {
    expect(loadConfig({ DATABASE_DSN: 'postgres://dsn/db' }).databaseUrl).toBe('postgres://dsn/db');
    expect(loadConfig({ DATABASE_URL: 'postgres://url/db' }).databaseUrl).toBe('postgres://url/db');
    expect(
      loadConfig({ DATABASE_URL: 'postgres://url/db', DATABASE_DSN: 'postgres://dsn/db' }).databaseUrl,
    ).toBe('postgres://url/db');
  });

  it('parses QUEUES as a comma list, trimming spaces; "all" or unset means every queue', () => {
    expect(loadConfig({ QUEUES: 'emails, reports ,billing.eu' }).QUEUES).toEqual([
      'emails',
      'reports',
      'billing.eu',
    ]);
    expect(loadConfig({ QUEUES: 'emails' }).QUEUES).toEqual(['emails']);
    expect(loadConfig({ QUEUES: 'all' }).QUEUES).toEqual([]);
    expect(loadConfig({}).QUEUES).toEqual([]);
  });
});
