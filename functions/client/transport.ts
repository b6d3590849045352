import { ApiError, errorFromResponse, UnavailableError } from './errors.ts';
import { type RetryOptions, withRetries } from './retry.ts';
import type { Signer } from './sigv4.ts';

/** The part of the WHATWG fetch the client uses: global fetch fits, and so does undici's or a test double. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
) => Promise<{
  status: number;
  ok: boolean;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

export type Auth = 'iam' | 'none' | { jwt: string | (() => string | Promise<string>) };

/** What the transport needs, already validated by createClient. */
export interface TransportOptions {
  /** The API's base URL, ending in `/`. */
  base: URL;
  auth: Auth;
  /** Set for auth 'iam'. */
  signer?: Signer;
  fetch: FetchLike;
  policy: Required<RetryOptions>;
  attemptTimeoutMs: number;
}

/** Sends requests to the API: signed or with a bearer token, each attempt bounded, retried by the policy. */
export interface Transport {
  /** One attempt: sign, send, read the whole answer; a non-2xx answer throws its error class. */
  attempt(method: string, path: string, text: string | undefined, signal?: AbortSignal): Promise<unknown>;
  /** One call: the body sent as JSON, retried by the policy. */
  call(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<unknown>;
  /**
   * A change retried after a lost answer may find its own effect already there: once an attempt's
   * outcome was unknown, `ownEffect` may turn the refusal that follows into the call's answer
   * (undefined: it is not this call's effect, so it is thrown as it came).
   */
  retryOwnEffect(
    send: () => Promise<unknown>,
    ownEffect: (err: unknown) => unknown,
    signal: AbortSignal | undefined,
  ): Promise<unknown>;
}

/** Refused before any byte was sent: the request cannot have been stored. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

export function createTransport(options: TransportOptions): Transport {
  const { base, auth, signer, fetch: fetchImpl, policy, attemptTimeoutMs } = options;

  async function headersFor(
    method: string,
    url: URL,
    body: string | undefined,
  ): Promise<Record<string, string>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    // On every change, with a body or not: the local engine (`npm start`) refuses a POST or
    // DELETE without a JSON Content-Type (tools/loopback.ts, its cross-site guard).
    if (body !== undefined || (method !== 'GET' && method !== 'HEAD'))
      headers['content-type'] = 'application/json';
    if (signer) return signer({ method, url, headers, body });
    if (typeof auth === 'object') {
      const token = typeof auth.jwt === 'function' ? await auth.jwt() : auth.jwt;
      headers.authorization = `Bearer ${token}`;
    }
    return headers;
  }

  function networkError(err: unknown, signal: AbortSignal | undefined, timeout: AbortSignal): unknown {
    if (signal?.aborted) return signal.reason;
    if (timeout.aborted) {
      return new UnavailableError(undefined, 'timeout', `no answer within ${attemptTimeoutMs} ms`, {
        cause: err,
        outcomeUnknown: true,
      });
    }
    const code = (err as { cause?: { code?: string } })?.cause?.code ?? (err as { code?: string })?.code;
    const sent = !(code && NOT_SENT.has(code));
    return new UnavailableError(
      undefined,
      sent ? 'connection_lost' : 'connection_failed',
      `${(err as Error)?.message ?? String(err)}${code ? ` (${code})` : ''}`,
      { cause: err, outcomeUnknown: sent },
    );
  }

  async function attempt(method: string, path: string, text: string | undefined, signal?: AbortSignal) {
    const url = new URL(path, base);
    const timeout = AbortSignal.timeout(attemptTimeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let status: number;
    let answer: string;
    let retryAfter: string | null;
    try {
      const headers = await headersFor(method, url, text);
      const res = await fetchImpl(url.toString(), {
        method,
        headers,
        ...(text === undefined ? {} : { body: text }),
        signal: combined,
      });
      status = res.status;
      retryAfter = res.headers.get('retry-after');
      answer = await res.text();
    } catch (err) {
      if (err instanceof ApiError) throw err;
      throw networkError(err, signal, timeout);
    }
    if (status < 200 || status > 299) throw errorFromResponse(status, answer, retryAfter);
    try {
      return answer === '' ? undefined : (JSON.parse(answer) as unknown);
    } catch (err) {
      throw new ApiError(status, 'invalid_response', `HTTP ${status} with a body that is not JSON`, {
        cause: err,
      });
    }
  }

  function call(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return withRetries(() => attempt(method, path, text, signal), policy, signal);
  }

  function retryOwnEffect(
    send: () => Promise<unknown>,
    ownEffect: (err: unknown) => unknown,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    let mayHaveApplied = false;
    return withRetries(
      async () => {
        try {
          return await send();
        } catch (err) {
          if (err instanceof UnavailableError && err.outcomeUnknown) mayHaveApplied = true;
          const answer = mayHaveApplied ? ownEffect(err) : undefined;
          if (answer === undefined) throw err;
          return answer;
        }
      },
      policy,
      signal,
    );
  }

  return { attempt, call, retryOwnEffect };
}
