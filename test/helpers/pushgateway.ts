import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';

/**
 * Finds a binary on PATH (the first name that exists). Missing on a developer machine: the
 * suite skips with a message. Missing under REQUIRE_POSTGRES=1 (CI, where .ci/run installs
 * them): a failure, never a skip.
 */
export function requireBinary(names: readonly string[], purpose: string): string | undefined {
  for (const name of names) {
    const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (found.status === 0 && found.stdout.trim() !== '') return found.stdout.trim();
  }
  const message = `${names.join(' / ')} not found on PATH (needed for ${purpose})`;
  if (process.env.REQUIRE_POSTGRES === '1') throw new Error(`REQUIRE_POSTGRES=1 but ${message}`);
  console.warn(`skipping ${purpose}: ${message}`);
  return undefined;
}

export const pushgatewayBinary = () =>
  requireBinary(['prometheus-pushgateway', 'pushgateway'], 'the Pushgateway suites');

export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

export interface RunningPushgateway {
  url: string;
  /** The exposition Prometheus would scrape. */
  metricsText(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts a real Pushgateway on a free loopback port, in memory only (no persistence file). */
export async function startPushgateway(binary: string): Promise<RunningPushgateway> {
  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  let log = '';
  const child: ChildProcess = spawn(
    binary,
    [`--web.listen-address=127.0.0.1:${port}`, '--persistence.file=', '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pushgateway exited (${child.exitCode}): ${log}`);
    const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(500) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`pushgateway not ready on ${url} after 15 s: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    url,
    async metricsText() {
      const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
      return res.text();
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/**
 * The value of one sample in a text exposition, matched by name and exactly these labels
 * (order-insensitive); undefined when absent.
 */
export function sampleValue(
  text: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '')
      .split(/,(?=[a-zA-Z_][a-zA-Z0-9_]*=")/)
      .filter((p) => p !== '' && !p.endsWith('=""'))
      .sort()
      .join(',');
    if (have === want) return Number(m[3]);
  }
  return undefined;
}
