import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * A throwaway PostgreSQL cluster for the fault suite: initdb under a temp dir, a free port on
 * 127.0.0.1 only, trust auth, removed after. Restarts and kills here never touch the shared
 * server on 5432.
 */

function pgBin(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  for (const v of ['17', '16', '15', '14']) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (existsSync(join(dir, 'initdb'))) return dir;
  }
  throw new Error('initdb not found under /usr/lib/postgresql/*/bin (set PG_BIN)');
}

/** PostgreSQL refuses to run as root: as root, run its tools as the `postgres` OS user. */
function osUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

export function runAsPostgres(cmd: string, args: string[], opts: { allowFail?: boolean } = {}): string {
  const asRoot = process.getuid?.() === 0;
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const res = spawnSync(file, argv, { encoding: 'utf8', timeout: 60_000 });
  if (res.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${res.status}): ${res.stderr || res.stdout}`);
  }
  return `${res.stdout}${res.stderr}`;
}

/** The same, without blocking the event loop (worker output keeps flowing during a restart). */
export function runAsPostgresAsync(
  cmd: string,
  args: string[],
  opts: { allowFail?: boolean } = {},
): Promise<string> {
  const asRoot = process.getuid?.() === 0;
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0 && !opts.allowFail)
        reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${out}`));
      else resolve(out);
    });
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A temp dir the postgres OS user owns (initdb, pgbouncer run as that user when we are root). */
export function ownedTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const user = osUser();
  if (user) chownSync(dir, user.uid, user.gid);
  chmodSync(dir, 0o700);
  return dir;
}

export function chownToPostgres(path: string): void {
  const user = osUser();
  if (user) chownSync(path, user.uid, user.gid);
}

export interface Cluster {
  port: number;
  dir: string;
  /** postgres://postgres@127.0.0.1:port/<database> */
  url(database?: string): string;
  createDatabase(name: string): Promise<string>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  /** `pg_ctl restart -m immediate`: a crash of the server, WAL replayed on start. */
  restartImmediate(): Promise<void>;
  destroy(): void;
}

export async function startCluster(settings: Record<string, string | number> = {}): Promise<Cluster> {
  const bin = pgBin();
  const dir = ownedTempDir('dte-fault-pg-');
  const data = join(dir, 'data');
  const port = await freePort();
  runAsPostgres(join(bin, 'initdb'), [
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--no-sync',
  ]);
  const conf = {
    listen_addresses: "'127.0.0.1'",
    port,
    unix_socket_directories: `'${dir}'`,
    max_connections: 200,
    shared_buffers: "'64MB'",
    // Durability stays on (fsync, synchronous_commit): the restart scenario must prove that an
    // acknowledged enqueue survives an immediate shutdown with the real commit path.
    logging_collector: 'off',
    log_min_messages: 'fatal',
    ...settings,
  };
  const lines = Object.entries(conf).map(([k, v]) => `${k} = ${v}`);
  writeFileSync(join(data, 'postgresql.auto.conf'), `${lines.join('\n')}\n`);
  chownToPostgres(join(data, 'postgresql.auto.conf'));
  const log = join(dir, 'server.log');
  const pgCtl = (args: string[], allowFail = false) =>
    runAsPostgres(join(bin, 'pg_ctl'), ['-D', data, '-l', log, ...args], { allowFail });
  const pgCtlAsync = (args: string[], allowFail = false) =>
    runAsPostgresAsync(join(bin, 'pg_ctl'), ['-D', data, '-l', log, ...args], { allowFail });
  pgCtl(['start', '-w', '-t', '60']);
  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  let destroyed = false;
  return {
    port,
    dir,
    url,
    async createDatabase(name: string) {
      const c = new pg.Client({ connectionString: url() });
      await c.connect();
      await c.query(`CREATE DATABASE ${name}`);
      await c.end();
      return url(name);
    },
    async stop(mode = 'fast') {
      await pgCtlAsync(['stop', '-w', '-m', mode, '-t', '60'], true);
    },
    async start() {
      await pgCtlAsync(['start', '-w', '-t', '60']);
    },
    async restartImmediate() {
      await pgCtlAsync(['restart', '-w', '-m', 'immediate', '-t', '60']);
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      pgCtl(['stop', '-w', '-m', 'immediate', '-t', '60'], true);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
