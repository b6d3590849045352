import type { Registry } from 'prom-client';
import type { PushTarget } from './metrics.ts';

/**
 * A Pushgateway client that can never fail a job: every request has a timeout (one
 * AbortSignal for the whole operation), and every outcome is returned, never thrown. A failure
 * is logged and counted in the caller's dte_push_failures_total; with no URL nothing is sent.
 *
 * Grouping keys (all under one job, PUSHGATEWAY_JOB):
 *   /metrics/job/<job>                                   the ledger, pushed by the reaper only
 *   /metrics/job/<job>/function/<fn>/instance/<id>       one group per container
 */

export const DEFAULT_JOB = 'durable-task-engine';
export const DEFAULT_PUSH_TIMEOUT_MS = 1000;

export interface ContainerGroup {
  fn: string;
  instance: string;
}

export interface PushgatewayOptions {
  /** Base URL (PUSHGATEWAY_URL); unset or empty: every call is a no-op that reports `skipped`. */
  url: string | undefined;
  /** PUSHGATEWAY_JOB. */
  job?: string;
  /** PUSH_TIMEOUT_MS: the most one call may take, all requests included. */
  timeoutMs?: number;
  /** Counts failures, e.g. the container's metrics (`countPushFailure`). */
  failures?: { countPushFailure(target: PushTarget): void };
  logger?: { warn(message: string, extra: Record<string, unknown>): void };
  /** Replaceable for tests; defaults to the global fetch. */
  fetch?: typeof fetch;
}

export interface CallOptions {
  /** Overrides the timeout for this call (e.g. less when the invocation's deadline is near). */
  timeoutMs?: number;
}

export type PushResult =
  | { ok: true; skipped: boolean }
  | { ok: false; skipped: false; error: string; status?: number };

export interface CleanupResult {
  ok: boolean;
  skipped: boolean;
  /** Container groups deleted. */
  deleted: number;
  /** Container groups found fresh and kept. */
  kept: number;
  error?: string;
}

export interface Pushgateway {
  readonly enabled: boolean;
  readonly job: string;
  /** PUT the ledger under the job's fixed grouping key: the whole group is replaced. */
  pushLedger(registry: Registry, options?: CallOptions): Promise<PushResult>;
  /** PUT one container's figures under its own grouping key. */
  pushContainer(group: ContainerGroup, registry: Registry, options?: CallOptions): Promise<PushResult>;
  /**
   * Deletes this job's container groups whose push_time_seconds is older than `staleSeconds`,
   * judged by the Pushgateway's own clock (its Date header), so a skewed caller clock cannot
   * delete fresh groups. The ledger group is never touched. A container that pushes between the
   * read and the delete loses that one push; its next push recreates the group.
   */
  deleteStaleGroups(staleSeconds: number, options?: CallOptions): Promise<CleanupResult>;
}

/**
 * One grouping-key path segment pair. Values that are empty or contain '/' use the
 * Pushgateway's `@base64` form (URL-safe alphabet); others are percent-encoded.
 */
export function labelSegment(name: string, value: string): string {
  if (value === '' || value.includes('/')) {
    const encoded = Buffer.from(value, 'utf8').toString('base64url');
    return `${name}@base64/${encoded === '' ? '=' : encoded}`;
  }
  return `${name}/${encodeURIComponent(value)}`;
}

/** `/metrics/job/<job>[/<label>/<value>…]` for a grouping key. */
export function groupingPath(job: string, labels: Readonly<Record<string, string>> = {}): string {
  const parts = [labelSegment('job', job)];
  for (const [name, value] of Object.entries(labels)) parts.push(labelSegment(name, value));
  return `/metrics/${parts.join('/')}`;
}

interface ApiGroup {
  labels: Record<string, string>;
  push_time_seconds?: { metrics?: Array<{ value: string }> };
}

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function describe(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `timed out after ${timeoutMs} ms`;
  }
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    const detail = cause?.code ?? cause?.message;
    return detail ? `${err.message}: ${detail}` : err.message;
  }
  return String(err);
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    body: string,
  ) {
    super(`HTTP ${status}${body ? `: ${body.trim().slice(0, 300)}` : ''}`);
    this.name = 'HttpError';
  }
}

export function createPushgateway(options: PushgatewayOptions): Pushgateway {
  return new PushgatewayClient(options);
}

/** The client behind createPushgateway: a URL, a job, a timeout, and where failures go. */
class PushgatewayClient implements Pushgateway {
  readonly enabled: boolean;
  readonly job: string;
  readonly #base: string | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #options: PushgatewayOptions;

  constructor(options: PushgatewayOptions) {
    this.#base = options.url?.trim() ? options.url.trim().replace(/\/+$/, '') : undefined;
    this.job = options.job ?? DEFAULT_JOB;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS;
    this.#fetch = options.fetch ?? fetch;
    this.#options = options;
    this.enabled = this.#base !== undefined;
    if (this.#base !== undefined) new URL(this.#base); // a malformed URL fails at cold start, not at the first push
    if (!(this.#timeoutMs > 0)) throw new RangeError(`push timeout must be > 0 ms, got ${this.#timeoutMs}`);
  }

  pushLedger(registry: Registry, call?: CallOptions): Promise<PushResult> {
    return this.#put('ledger', groupingPath(this.job), registry, call);
  }

  pushContainer(group: ContainerGroup, registry: Registry, call?: CallOptions): Promise<PushResult> {
    const path = groupingPath(this.job, { function: group.fn, instance: group.instance });
    return this.#put('container', path, registry, call);
  }

  async deleteStaleGroups(staleSeconds: number, call: CallOptions = {}): Promise<CleanupResult> {
    if (this.#base === undefined) return { ok: true, skipped: true, deleted: 0, kept: 0 };
    const timeoutMs = call.timeoutMs ?? this.#timeoutMs;
    const tally = { deleted: 0, kept: 0 };
    try {
      if (!(timeoutMs > 0)) throw new Error('no time left before the deadline');
      const signal = AbortSignal.timeout(timeoutMs);
      const res = await this.#request('/api/v1/metrics', { method: 'GET' }, signal);
      const { data } = (await res.json()) as { data?: ApiGroup[] };
      const dated = Date.parse(res.headers.get('date') ?? '');
      const nowSeconds = (Number.isNaN(dated) ? Date.now() : dated) / 1000;
      for (const group of data ?? []) await this.#expire(group, nowSeconds, staleSeconds, signal, tally);
      return { ok: true, skipped: false, ...tally };
    } catch (err) {
      const { error } = this.#failed('cleanup', err, timeoutMs, { deleted: tally.deleted });
      return { ok: false, skipped: false, ...tally, error };
    }
  }

  /** Deletes one container group of this job if it is stale; the ledger group has no function/instance. */
  async #expire(
    group: ApiGroup,
    nowSeconds: number,
    staleSeconds: number,
    signal: AbortSignal,
    tally: { deleted: number; kept: number },
  ): Promise<void> {
    const { labels } = group;
    if (labels.job !== this.job || !labels.function || !labels.instance) return;
    const pushedAt = Number(group.push_time_seconds?.metrics?.[0]?.value ?? 0);
    if (nowSeconds - pushedAt <= staleSeconds) {
      tally.kept++;
      return;
    }
    const { job: _job, ...key } = labels;
    const del = await this.#request(groupingPath(this.job, key), { method: 'DELETE' }, signal);
    await del.body?.cancel();
    tally.deleted++;
  }

  async #put(
    target: PushTarget,
    path: string,
    registry: Registry,
    call: CallOptions = {},
  ): Promise<PushResult> {
    if (this.#base === undefined) return { ok: true, skipped: true };
    const timeoutMs = call.timeoutMs ?? this.#timeoutMs;
    if (!(timeoutMs > 0)) {
      const { error } = this.#failed(target, new Error('no time left before the deadline'), timeoutMs, {
        path,
      });
      return { ok: false, skipped: false, error };
    }
    try {
      const signal = AbortSignal.timeout(timeoutMs);
      const body = await registry.metrics();
      const res = await this.#request(
        path,
        { method: 'PUT', headers: { 'content-type': CONTENT_TYPE }, body },
        signal,
      );
      await res.body?.cancel();
      return { ok: true, skipped: false };
    } catch (err) {
      const { error, status } = this.#failed(target, err, timeoutMs, { path });
      return status === undefined
        ? { ok: false, skipped: false, error }
        : { ok: false, skipped: false, error, status };
    }
  }

  async #request(path: string, init: RequestInit, signal: AbortSignal): Promise<Response> {
    const res = await this.#fetch(`${this.#base}${path}`, { ...init, signal });
    if (!res.ok) throw new HttpError(res.status, await res.text().catch(() => ''));
    return res;
  }

  #failed(target: PushTarget, err: unknown, timeoutMs: number, extra: Record<string, unknown>) {
    const error = describe(err, timeoutMs);
    this.#options.failures?.countPushFailure(target);
    this.#options.logger?.warn('pushgateway request failed', { target, error, ...extra });
    return { error, status: err instanceof HttpError ? err.status : undefined };
  }
}
