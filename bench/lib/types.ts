import pg from 'pg';

/** What a peer adapter (bench/peers/*.ts, loaded at run time) offers the harness. */
export interface PeerDrainResult {
  done: number;
  seconds: number;
  /** Seconds to enqueue the jobs with the peer's own batch API (not the measured drain). */
  enqueueSeconds: number;
  config: string;
}

export interface PeerAdapter {
  name: string;
  version: string;
  /**
   * Enqueues `jobs` no-op jobs with the peer's batch API, calls `beforeDrain` (the harness's
   * ANALYZE, as for every system), then drains them with `workers` workers.
   */
  drain(
    url: string,
    jobs: number,
    workers: number,
    beforeDrain: () => Promise<unknown>,
    /** Called the moment the table is seen drained, before the peer is stopped (CPU readings). */
    onDrained?: () => void,
  ): Promise<PeerDrainResult>;
}

/** Polls `check` every `everyMs` until it returns true; resolves with the time it did (performance.now()). */
export async function waitUntil(
  check: () => Promise<boolean>,
  everyMs = 5,
  timeoutMs = 600_000,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return performance.now();
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The installed version of a bench dependency (their `exports` hide package.json from require). */
export async function installedVersion(pkg: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const file = new URL(`../node_modules/${pkg}/package.json`, import.meta.url);
  return (JSON.parse(await readFile(file, 'utf8')) as { version: string }).version;
}

/** Counts handled jobs: when the first one ran, and a promise that settles once all `jobs` have. */
export function handledCounter(jobs: number): {
  add(n?: number): void;
  readonly handled: number;
  readonly first: number;
  all: Promise<void>;
} {
  let handled = 0;
  let first = 0;
  let resolveAll: () => void = () => {};
  const all = new Promise<void>((r) => {
    resolveAll = r;
  });
  return {
    add(n = 1) {
      if (handled === 0) first = performance.now();
      handled += n;
      if (handled === jobs) resolveAll();
    },
    get handled() {
      return handled;
    },
    get first() {
      return first;
    },
    all,
  };
}

/**
 * After `handled` settles, polls `existsSql` (one boolean column `e`) on its own connection until
 * it is false, calls `onDrained` while that connection is still open, and resolves with the time
 * it was seen false (performance.now()).
 */
export async function drainedAt(
  url: string,
  handled: Promise<void>,
  existsSql: string,
  values: unknown[] = [],
  onDrained?: () => void,
): Promise<number> {
  const probe = new pg.Client({ connectionString: url });
  await probe.connect();
  try {
    await handled;
    const end = await waitUntil(async () => !(await probe.query(existsSql, values)).rows[0].e);
    onDrained?.();
    return end;
  } finally {
    await probe.end();
  }
}

/** Calls `insert(n)` for chunks of at most `size` jobs until `jobs` are in; resolves with the seconds taken. */
export async function timeChunks(
  jobs: number,
  insert: (n: number) => Promise<unknown>,
  size = 5000,
): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < jobs; i += size) await insert(Math.min(size, jobs - i));
  return (performance.now() - t0) / 1000;
}

/**
 * A peer drained the serverless way (the pgbouncer scenario): jobs enqueued on `directUrl`, then
 * `containers` short-lived invocations, each opening its own connections through `pooledUrl`
 * (a PgBouncer in transaction mode) and closing them when it ends, again and again until drained.
 */
export interface PooledPeerAdapter {
  name: string;
  version: string;
  drainPooled(
    directUrl: string,
    pooledUrl: string,
    jobs: number,
    containers: number,
    beforeDrain: () => Promise<unknown>,
    onDrained?: () => void,
  ): Promise<PeerDrainResult & { invocations: number }>;
}
