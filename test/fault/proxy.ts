import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy between consumers and the database that can add latency, black-hole traffic
 * (stop forwarding without FIN or RST, as a dead network path does) and reset connections.
 * It counts connection attempts per second, to measure reconnect storms.
 */
export interface FaultProxy {
  port: number;
  url(database: string): string;
  /** Delay every chunk, both directions, by `ms` (0: none). */
  setLatency(ms: number): void;
  /**
   * Black-hole on: every open connection, and every one accepted until `heal()`, stops
   * forwarding for good. Its sockets stay open: clients see silence, never an error.
   */
  blackhole(): void;
  heal(): void;
  /** RST every open connection (both sides). */
  resetAll(): number;
  /** Connection attempts accepted, bucketed by whole second since the proxy started. */
  attemptsPerSecond(): Map<number, number>;
  readonly accepted: number;
  /** Date.now() when the proxy started: second 0 of attemptsPerSecond(). */
  readonly startedAt: number;
  readonly open: number;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  dead: boolean;
}

export async function startProxy(target: { host?: string; port: number }): Promise<FaultProxy> {
  const host = target.host ?? '127.0.0.1';
  const pairs = new Set<Pair>();
  const buckets = new Map<number, number>();
  const t0 = Date.now();
  let latency = 0;
  let holed = false;
  let accepted = 0;

  const pipe = (from: Socket, to: Socket, pair: Pair) => {
    from.on('data', (chunk) => {
      if (pair.dead) return;
      if (latency > 0) setTimeout(() => !pair.dead && !to.destroyed && to.write(chunk), latency);
      else if (!to.destroyed) to.write(chunk);
    });
  };

  const server: Server = createServer((client) => {
    accepted++;
    const second = Math.floor((Date.now() - t0) / 1000);
    buckets.set(second, (buckets.get(second) ?? 0) + 1);
    const upstream = createConnection({ host, port: target.port });
    const pair: Pair = { client, upstream, dead: holed };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      // A black-holed connection never closes the other side: that is the point of it.
      if (pair.dead) {
        client.destroy();
        upstream.destroy();
        return;
      }
      client.destroy();
      upstream.destroy();
    };
    client.on('error', () => {});
    upstream.on('error', () => {});
    client.on('close', drop);
    upstream.on('close', () => {
      if (!pair.dead) drop();
    });
    pipe(client, upstream, pair);
    pipe(upstream, client, pair);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };

  return {
    port,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    setLatency(ms) {
      latency = ms;
    },
    blackhole() {
      holed = true;
      for (const p of pairs) p.dead = true;
    },
    heal() {
      holed = false;
    },
    resetAll() {
      let n = 0;
      for (const p of [...pairs]) {
        n++;
        p.client.resetAndDestroy();
        p.upstream.resetAndDestroy();
        pairs.delete(p);
      }
      return n;
    },
    attemptsPerSecond: () => new Map(buckets),
    startedAt: t0,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
