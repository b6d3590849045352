import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { errorFromResponse } from '../../functions/client/errors.ts';
import {
  ApiError,
  AuthError,
  ConflictError,
  createClient,
  type FetchLike,
  NotFoundError,
  PayloadTooLargeError,
  UnavailableError,
  ValidationError,
} from '../../functions/client/index.ts';
import { backoffMs, RETRY_DEFAULTS, retryPolicy } from '../../functions/client/retry.ts';
import { NodeSha256, regionFromHost } from '../../functions/client/sigv4.ts';

const shaped = (code: string, details: unknown = null) =>
  JSON.stringify({ error: { code, message: `${code} happened`, details } });

/** A fetch double answering from a list, recording what was sent. */
function scripted(
  answers: Array<{ status: number; body?: string; headers?: Record<string, string> } | Error>,
) {
  const sent: Array<{ url: string; headers: Record<string, string>; body: string | undefined }> = [];
  const fetch: FetchLike = async (url, init) => {
    sent.push({ url, headers: init.headers, body: init.body });
    const next = answers.shift() ?? { status: 500 };
    if (next instanceof Error) throw next;
    return {
      status: next.status,
      ok: next.status >= 200 && next.status < 300,
      headers: { get: (n: string) => next.headers?.[n.toLowerCase()] ?? null },
      text: async () => next.body ?? '',
    };
  };
  return { fetch, sent };
}

const FAST = { baseDelayMs: 1, maxDelayMs: 2, deadlineMs: 5_000 };
const JOB = JSON.stringify({ id: '7', status: 'queued' });

describe('client: error mapping', () => {
  it('maps each status to its class and carries code, message and details as sent', () => {
    const cases: Array<[number, string, new (...a: never[]) => ApiError]> = [
      [400, 'validation_error', ValidationError],
      [415, 'unsupported_media_type', ValidationError],
      [422, 'invalid_payload', ValidationError],
      [413, 'batch_too_large', PayloadTooLargeError],
      [401, 'http_401', AuthError],
      [403, 'http_403', AuthError],
      [404, 'not_found', NotFoundError],
      [409, 'idempotency_conflict', ConflictError],
      [429, 'http_429', UnavailableError],
      [503, 'database_unavailable', UnavailableError],
      [503, 'outcome_unknown', UnavailableError],
      [500, 'internal_error', ApiError],
    ];
    for (const [status, code, cls] of cases) {
      const err = errorFromResponse(status, shaped(code, { path: 'jobs.3.priority' }), null);
      expect(err, `${status} ${code}`).toBeInstanceOf(cls);
      expect(err).toMatchObject({
        status,
        code,
        message: `${code} happened`,
        details: { path: 'jobs.3.priority' },
      });
    }
    expect(errorFromResponse(500, shaped('internal_error'), null)).not.toBeInstanceOf(UnavailableError);
  });

  it("names the field from the api's details, and reads API Gateway's own { message } answers", () => {
    const issues = { type: 't', issues: [{ path: 'payload.to', message: 'Invalid email' }] };
    expect((errorFromResponse(422, shaped('invalid_payload', issues), null) as ValidationError).field).toBe(
      'payload.to',
    );
    expect(
      (errorFromResponse(400, shaped('validation_error', { field: 'queue' }), null) as ValidationError).field,
    ).toBe('queue');
    const forbidden = errorFromResponse(403, '{"message":"Forbidden"}', null);
    expect(forbidden).toMatchObject({ status: 403, code: 'http_403', message: 'Forbidden' });
    const gateway = errorFromResponse(503, 'not json', '7') as UnavailableError;
    expect(gateway).toMatchObject({ code: 'http_503', outcomeUnknown: true, retryAfterSeconds: 7 });
  });

  it('only database_unavailable and 429 are known outcomes; a bare 502/503/504 may follow a commit', () => {
    const unknown = (status: number, code: string) =>
      (errorFromResponse(status, shaped(code), null) as UnavailableError).outcomeUnknown;
    expect(unknown(503, 'database_unavailable')).toBe(false);
    expect(unknown(429, 'http_429')).toBe(false);
    expect(unknown(503, 'outcome_unknown')).toBe(true);
    expect(unknown(502, 'http_502')).toBe(true);
    expect(unknown(504, 'http_504')).toBe(true);
  });
});

describe('client: backoff', () => {
  it('full jitter: each wait lies in [0, min(max, base·2^(n-1))], at least a Retry-After capped at max', () => {
    const policy = retryPolicy({ baseDelayMs: 100, maxDelayMs: 1_000 });
    for (const r of [0, 0.5, 0.999]) {
      expect(backoffMs(1, policy, undefined, () => r)).toBeCloseTo(100 * r);
      expect(backoffMs(3, policy, undefined, () => r)).toBeCloseTo(400 * r);
      expect(backoffMs(10, policy, undefined, () => r)).toBeCloseTo(1_000 * r);
    }
    expect(backoffMs(1, policy, 0.5, () => 0)).toBe(500);
    expect(backoffMs(1, policy, 60, () => 0)).toBe(1_000);
  });

  it('options are validated when the client is made', () => {
    expect(() => retryPolicy({ maxAttempts: 0 })).toThrow(/maxAttempts/);
    expect(() => retryPolicy({ deadlineMs: Number.NaN })).toThrow(/deadlineMs/);
    expect(retryPolicy({})).toEqual(RETRY_DEFAULTS);
    expect(() => createClient({ url: 'ftp://x', auth: 'none' })).toThrow(/http/);
    expect(() => createClient({ url: 'http://x', auth: 'basic' as never })).toThrow(/auth/);
    const env = { region: process.env.AWS_REGION, def: process.env.AWS_DEFAULT_REGION };
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    try {
      expect(() => createClient({ url: 'https://api.example.com/', auth: 'iam' })).toThrow(/region/);
      expect(() =>
        createClient({ url: 'https://abc.execute-api.eu-west-1.amazonaws.com/', auth: 'iam' }),
      ).not.toThrow();
    } finally {
      if (env.region !== undefined) process.env.AWS_REGION = env.region;
      if (env.def !== undefined) process.env.AWS_DEFAULT_REGION = env.def;
    }
    expect(regionFromHost('abc123.execute-api.ap-southeast-2.amazonaws.com')).toBe('ap-southeast-2');
    expect(regionFromHost('api.example.com')).toBeUndefined();
  });
});

describe('client: requests and retries (fetch double)', () => {
  it('a refused connection is a known outcome and retried; a reset is unknown; both keep the key', async () => {
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    const reset = Object.assign(new TypeError('fetch failed'), { cause: { code: 'UND_ERR_SOCKET' } });
    const { fetch, sent } = scripted([refused, reset, { status: 201, body: JOB }]);
    const client = createClient({ url: 'http://engine.test/prod', auth: 'none', fetch, retry: FAST });

    expect(await client.enqueue({ type: 'example.echo' })).toMatchObject({ id: '7' });
    expect(sent.map((s) => s.url)).toEqual(Array(3).fill('http://engine.test/prod/jobs'));
    expect(new Set(sent.map((s) => JSON.parse(s.body!).idempotencyKey)).size).toBe(1);

    const gaveUp = createClient({
      url: 'http://e.test',
      auth: 'none',
      fetch: scripted([refused]).fetch,
      retry: { maxAttempts: 1 },
    });
    const err = (await gaveUp.get('1').catch((e: unknown) => e)) as UnavailableError;
    expect(err).toMatchObject({ code: 'connection_failed', outcomeUnknown: false, attempts: 1 });
  });

  it('the deadline stops retries; the error counts the attempts made', async () => {
    const busy = { status: 429, body: '{"message":"Too Many Requests"}' };
    const { fetch, sent } = scripted(Array(50).fill(busy));
    const client = createClient({
      url: 'http://e.test',
      auth: 'none',
      fetch,
      retry: { baseDelayMs: 40, maxDelayMs: 40, deadlineMs: 200, maxAttempts: 50 },
    });
    // Random waits below 40 ms (mean 20) within a 200 ms deadline: at least 2 attempts, far fewer than 50.
    const err = (await client.get('1').catch((e: unknown) => e)) as UnavailableError;
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.attempts).toBe(sent.length);
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(sent.length).toBeLessThan(50);
  });

  it('an aborted signal ends the call at once with its reason, without more attempts', async () => {
    const { fetch, sent } = scripted(Array(10).fill({ status: 503, body: shaped('database_unavailable') }));
    const client = createClient({
      url: 'http://e.test',
      auth: 'none',
      fetch,
      retry: { baseDelayMs: 10_000, maxDelayMs: 10_000 },
    });
    const ctl = new AbortController();
    const call = client.get('1', { signal: ctl.signal });
    await new Promise((r) => setTimeout(r, 20));
    ctl.abort(new Error('caller gave up'));
    await expect(call).rejects.toThrow('caller gave up');
    expect(sent).toHaveLength(1);
  });

  it('jwt: a bearer token, asked for again on every attempt (so a refreshed token is used)', async () => {
    const { fetch, sent } = scripted([
      { status: 503, body: shaped('database_unavailable') },
      { status: 200, body: JOB },
    ]);
    let n = 0;
    const client = createClient({
      url: 'http://e.test',
      auth: { jwt: async () => `token-${++n}` },
      fetch,
      retry: FAST,
    });
    await client.get('7');
    expect(sent.map((s) => s.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);
    expect(sent.every((s) => s.headers['x-amz-date'] === undefined)).toBe(true);
  });

  it('local checks: a malformed job id is refused without a request', async () => {
    const { fetch, sent } = scripted([]);
    const client = createClient({ url: 'http://e.test', auth: 'none', fetch });
    await expect(client.get('1 OR 1=1')).rejects.toBeInstanceOf(ValidationError);
    await expect(client.cancel('../health')).rejects.toMatchObject({ code: 'invalid_id', field: 'id' });
    expect(sent).toHaveLength(0);
  });
});

describe('client: SigV4 hash', () => {
  it("NodeSha256 with @smithy/signature-v4 reproduces AWS's get-vanilla test vector", async () => {
    const signer = new SignatureV4({
      service: 'service',
      region: 'us-east-1',
      sha256: NodeSha256,
      applyChecksum: false,
      credentials: {
        accessKeyId: 'AKIDEXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
      },
    });
    const signed = await signer.sign(
      {
        method: 'GET',
        protocol: 'https:',
        hostname: 'example.amazonaws.com',
        path: '/',
        headers: { host: 'example.amazonaws.com' },
      },
      { signingDate: new Date('2015-08-30T12:36:00Z') },
    );
    expect(signed.headers.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    );
  });
});
