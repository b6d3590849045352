import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chownToPostgres, freePort, ownedTempDir } from './cluster.ts';
import { sleep } from './harness.ts';

/** PgBouncer (Debian's /usr/sbin/pgbouncer) in transaction pooling mode in front of the fault cluster. */
export interface Bouncer {
  port: number;
  stop(): Promise<void>;
}

export async function startPgBouncer(dbPort: number, poolSize = 5): Promise<Bouncer> {
  const dir = ownedTempDir('dte-fault-bouncer-');
  const port = await freePort();
  const ini = join(dir, 'pgbouncer.ini');
  const users = join(dir, 'users.txt');
  writeFileSync(users, '"postgres" ""\n');
  writeFileSync(
    ini,
    [
      '[databases]',
      `* = host=127.0.0.1 port=${dbPort}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${users}`,
      'pool_mode = transaction',
      // Fewer server connections than consumers: transactions of different clients share them.
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 500',
      'ignore_startup_parameters = extra_float_digits,options',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  chownToPostgres(ini);
  chownToPostgres(users);
  const bin = process.env.PGBOUNCER ?? '/usr/sbin/pgbouncer';
  // PgBouncer refuses to run as root.
  const child: ChildProcess =
    process.getuid?.() === 0
      ? spawn('runuser', ['-u', 'postgres', '--', bin, ini], { stdio: 'ignore' })
      : spawn(bin, [ini], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  // Ready when it accepts a connection.
  const { createConnection } = await import('node:net');
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
    await sleep(100);
  }
  return {
    port,
    async stop() {
      // runuser forwards SIGTERM to pgbouncer.
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
