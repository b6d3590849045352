import { type Command, Option } from 'commander';
import { startDashboardServer } from '../../dashboard/index.ts';
import { actorOf, database, emit } from '../context.ts';
import { parseIntInRange } from '../parse.ts';
import { examples } from '../render.ts';

/** One above the local engine's default PORT, so both can run side by side. */
const DEFAULT_PORT = 3001;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function registerDashboard(program: Command): void {
  program
    .command('dashboard')
    .description(
      'serve the operator dashboard (queues, jobs, failures, and the runbook actions, audited like these commands) against DATABASE_URL; prints the URL with its access token. Runs until Ctrl-C',
    )
    .addOption(
      new Option('--port <n>', 'port to listen on (0: any free port)')
        .default(DEFAULT_PORT)
        .argParser((v) => parseIntInRange(v, '--port', 0, 65_535)),
    )
    .addOption(
      new Option(
        '--host <address>',
        'address to bind; anything but loopback exposes production controls',
      ).default('127.0.0.1'),
    )
    .addHelpText(
      'after',
      `${examples(
        'taskctl dashboard',
        'DASHBOARD_TOKEN=$(openssl rand -hex 32) taskctl dashboard --port 8080',
        'ssh -L 3001:127.0.0.1:3001 bastion   # then run taskctl dashboard on the bastion',
      )}\n\nEnvironment:\n  DASHBOARD_TOKEN  access token (at least 24 characters); default: a fresh random one per run`,
    )
    .action(async (o: { port: number; host: string }, cmd: Command) => {
      const db = database();
      await db.query('SELECT 1');
      const server = await startDashboardServer({
        db,
        host: o.host,
        port: o.port,
        token: process.env.DASHBOARD_TOKEN || undefined,
        actor: `dashboard:${actorOf(cmd)}`,
        logger: {
          error: (message, ...extra) => process.stderr.write(`${message} ${JSON.stringify(extra)}\n`),
        },
      });
      if (!LOOPBACK.has(o.host)) {
        process.stderr.write(
          `taskctl: warning: listening on ${o.host}: anyone who can reach it and has the token can change jobs\n`,
        );
      }
      emit(
        cmd,
        { url: server.url, port: server.port, actor: server.dashboard.actor },
        () => `dashboard: ${server.url}\nchanges are recorded as ${server.dashboard.actor}; Ctrl-C to stop`,
      );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close();
    });
}
