/**
 * A PgBouncer of the bench's own (issue 21, the serverless shape): started on a free loopback
 * port with a generated ini in transaction mode, every database name passed through to the
 * bench's server (`* =` fallback), trust auth, and stopped at the end (SIGINT: its "safe
 * shutdown"). Needs the `pgbouncer` binary (Debian package pgbouncer) on PATH or in /usr/sbin.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_URL } from './pg.ts';
import { waitUntil } from './types.ts';

export interface Bouncer {
  /** `url` with its host and port replaced by the bouncer's. */
  through(url: string): string;
  /** The bouncer process's own CPU so far (utime + stime), in ms. */
  cpuMs(): number;
  /** What it was started with, for the results file. */
  config: string;
  stop(): Promise<void>;
}

/** The server connections PgBouncer keeps per database/user pair. */
export const BOUNCER_POOL_SIZE = 16;

export function pgbouncerBinary(): string | undefined {
  for (const p of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer']) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function procCpuMs(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // CLK_TCK 100 on Linux
  } catch {
    return 0;
  }
}

export async function startPgbouncer(): Promise<Bouncer> {
  const binary = pgbouncerBinary();
  if (!binary) throw new Error('pgbouncer not found (Debian: apt-get install pgbouncer)');
  const server = new URL(ADMIN_URL);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bench-pgbouncer-'));
  const user = decodeURIComponent(server.username || 'postgres');
  const settings = {
    listen_addr: '127.0.0.1',
    listen_port: String(port),
    unix_socket_dir: '',
    auth_type: 'trust',
    auth_file: join(dir, 'users.txt'),
    pool_mode: 'transaction',
    default_pool_size: String(BOUNCER_POOL_SIZE),
    max_client_conn: '1000',
    // The bench's own connections set application_name; let them through instead of refusing.
    ignore_startup_parameters:
      'extra_float_digits,options,statement_timeout,idle_in_transaction_session_timeout',
    server_reset_query: '',
    logfile: join(dir, 'pgbouncer.log'),
    pidfile: join(dir, 'pgbouncer.pid'),
    log_connections: '0',
    log_disconnections: '0',
  };
  const ini = [
    '[databases]',
    `* = host=${server.hostname} port=${server.port || '5432'} user=${user}`,
    '[pgbouncer]',
    ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`),
  ].join('\n');
  writeFileSync(join(dir, 'pgbouncer.ini'), `${ini}\n`);
  writeFileSync(join(dir, 'users.txt'), `"${user}" ""\n`);
  // PgBouncer refuses to run as root: then it runs as postgres (-u), which must read the files.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) for (const f of ['', 'pgbouncer.ini', 'users.txt']) chmodSync(join(dir, f), 0o777);
  const child: ChildProcess = spawn(
    binary,
    [...(asRoot ? ['-u', 'postgres'] : []), join(dir, 'pgbouncer.ini')],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  // A run that ends any other way (an error, Ctrl-C) takes its bouncer with it.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const through = (url: string) => {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(port);
    return u.toString();
  };
  const pg = (await import('pg')).default;
  await waitUntil(
    async () => {
      if (exited) throw new Error(`pgbouncer exited at start: ${stderr.slice(0, 500)}`);
      const c = new pg.Client({ connectionString: through(ADMIN_URL) });
      try {
        await c.connect();
        await c.query('SELECT 1');
        return true;
      } catch {
        return false;
      } finally {
        await c.end().catch(() => {});
      }
    },
    100,
    15_000,
  );
  return {
    through,
    cpuMs: () => procCpuMs(child.pid),
    config: `PgBouncer (${binary}) on 127.0.0.1:${port}: ${JSON.stringify({ pool_mode: 'transaction', default_pool_size: BOUNCER_POOL_SIZE, auth_type: 'trust' })}`,
    stop: async () => {
      process.off('exit', killOnExit);
      if (!exited) {
        child.kill('SIGINT');
        await waitUntil(async () => exited, 50, 10_000).catch(() => child.kill('SIGKILL'));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
