import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { chownToPostgres, freePort, ownedTempDir } from '../fault/cluster.ts';
import { DATABASE_URL } from '../helpers/pg.ts';

export const PGBOUNCER_BIN = process.env.PGBOUNCER ?? '/usr/sbin/pgbouncer';

/**
 * True when pgbouncer is installed. Without it the suite is skipped with a message locally; with
 * REQUIRE_POSTGRES=1 (CI) its absence fails the run.
 */
export function pgbouncerAvailable(): boolean {
  if (existsSync(PGBOUNCER_BIN)) return true;
  if (process.env.REQUIRE_POSTGRES === '1')
    throw new Error(`REQUIRE_POSTGRES=1 but pgbouncer is not installed at ${PGBOUNCER_BIN} (set PGBOUNCER)`);
  console.warn(`skipping PgBouncer suites: ${PGBOUNCER_BIN} not found`);
  return false;
}

export interface Bouncer {
  /** A connection string to the bouncer that lands in `schema` (set on each server connection). */
  url: string;
  stop(): Promise<void>;
}

/**
 * PgBouncer in transaction pooling mode in front of the test database, its server connections
 * starting in `schema` (`connect_query`), since startup `options` cannot pass through a pooler.
 * Fewer server connections than clients, so transactions of different clients share them.
 */
export async function startBouncer(schema: string, poolSize = 2): Promise<Bouncer> {
  const target = new URL(DATABASE_URL);
  const user = decodeURIComponent(target.username || 'postgres');
  const database = target.pathname.slice(1) || 'postgres';
  const dir = ownedTempDir('dte-client-bouncer-');
  const port = await freePort();
  const ini = join(dir, 'pgbouncer.ini');
  const users = join(dir, 'users.txt');
  writeFileSync(users, `"${user}" ""\n`);
  writeFileSync(
    ini,
    [
      '[databases]',
      `${database} = host=${target.hostname} port=${target.port || 5432} dbname=${database} connect_query='SET search_path TO ${schema}'`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${users}`,
      'pool_mode = transaction',
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 100',
      'ignore_startup_parameters = extra_float_digits,options',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  chownToPostgres(ini);
  chownToPostgres(users);
  // PgBouncer refuses to run as root.
  const child: ChildProcess =
    process.getuid?.() === 0
      ? spawn('runuser', ['-u', 'postgres', '--', PGBOUNCER_BIN, ini], { stdio: 'ignore' })
      : spawn(PGBOUNCER_BIN, [ini], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = createConnection({ host: '127.0.0.1', port }, () => {
        sock.destroy();
        resolve(true);
      });
      sock.on('error', () => resolve(false));
    });
    if (ok) break;
    if (i > 100 || child.exitCode !== null) throw new Error('pgbouncer did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${database}`,
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
