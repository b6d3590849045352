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
