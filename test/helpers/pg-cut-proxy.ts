import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy in front of PostgreSQL that reads the server's messages (type byte and
 * length, protocol 3) and, once armed, acts on the first CommandComplete whose tag starts with
 * a given word ("INSERT", "COMMIT"): `cut` closes both sides without forwarding it, `hold`
 * stops forwarding and keeps the sockets open (a frozen path). Either way the server has already
 * done the work: PostgreSQL flushes CommandComplete together with ReadyForQuery, after the commit
 * of an implicit transaction. Plain connections only (no SSLRequest, whose answer has no length).
 */
export interface CutProxy {
  port: number;
  arm(tag: string, mode: 'cut' | 'hold'): void;
  /** How many times an armed rule fired. */
  readonly fired: number;
  close(): Promise<void>;
}

export async function startCutProxy(target: { host?: string; port: number }): Promise<CutProxy> {
  const sockets = new Set<Socket>();
  let rule: { tag: string; mode: 'cut' | 'hold' } | undefined;
  let fired = 0;

  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: target.host ?? '127.0.0.1', port: target.port });
    sockets.add(client).add(upstream);
    client.on('error', () => {});
    upstream.on('error', () => {});
    let held = false;
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', () => !held && end());
    client.on('data', (chunk) => !held && upstream.write(chunk));

    // Server → client: forwarded message by message, so a rule acts before the matching one.
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      if (held) return;
      pending = Buffer.concat([pending, chunk]);
      const out = 0;
      let at = 0;
      while (pending.length - at >= 5) {
        const length = pending.readUInt32BE(at + 1);
        if (pending.length - at < 1 + length) break;
        if (pending[at] === 0x43 /* CommandComplete */ && rule) {
          const tag = pending.toString('utf8', at + 5, at + length).replace(/\0$/, '');
          if (tag.startsWith(rule.tag)) {
            const mode = rule.mode;
            rule = undefined;
            fired++;
            if (out < at) client.write(pending.subarray(out, at));
            if (mode === 'cut') end();
            else held = true;
            return;
          }
        }
        at += 1 + length;
      }
      if (at > out) client.write(pending.subarray(out, at));
      pending = pending.subarray(at);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    port,
    arm(tag, mode) {
      rule = { tag, mode };
    },
    get fired() {
      return fired;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
