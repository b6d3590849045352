import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { loadConfig } from '../../functions/platform/config.ts';
import { createDb, type PgDb } from '../../functions/platform/db.ts';
import { UsageError } from './errors.ts';
import { examples } from './render.ts';

export interface GlobalOptions {
  json?: boolean;
  actor?: string;
}

/**
 * An operator command fails fast on an unreachable database (exit 4) instead of the runtime's
 * 5 s: at 3 a.m. a refused connection should answer at once, a black-holed one within 3 s.
 */
const CONNECT_TIMEOUT_MS = 3000;
const QUERY_TIMEOUT_MS = 30_000;

let shared: PgDb | undefined;

/** The connection, opened on first use so `--help` and usage errors never need a database. */
export function database(): PgDb {
  if (shared) return shared;
  const config = loadConfig(process.env);
  if (!config.databaseUrl) {
    throw new UsageError('DATABASE_URL (or DATABASE_DSN) is not set: export the connection string first');
  }
  shared = createDb({
    connectionString: config.databaseUrl,
    applicationName: 'taskctl',
    connectTimeoutMs: process.env.DB_CONNECT_TIMEOUT_MS ? config.DB_CONNECT_TIMEOUT_MS : CONNECT_TIMEOUT_MS,
    queryTimeoutMs: QUERY_TIMEOUT_MS,
    ssl: config.DB_SSL ? { rejectUnauthorized: true } : undefined,
    max: 2,
  });
  return shared;
}

export async function closeDatabase(): Promise<void> {
  const db = shared;
  shared = undefined;
  await db?.end().catch(() => {});
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** Who made a manual change: --actor (or TASKCTL_ACTOR), else the OS user. */
export function actorOf(cmd: Command): string {
  const given = globals(cmd).actor?.trim();
  if (given) return given.slice(0, 200);
  try {
    return userInfo().username || process.env.USER || 'unknown';
  } catch {
    // userInfo() throws when the uid has no passwd entry (some containers).
    return process.env.USER ?? `uid:${process.getuid?.() ?? 'unknown'}`;
  }
}

/** Prints the result: JSON for scripts, the human rendering otherwise. */
export function emit(cmd: Command, result: unknown, human: () => string): void {
  if (globals(cmd).json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${human()}\n`);
}

/**
 * A command with no options of its own that reads the database (status, health): its name, what
 * it reports, examples for --help, and what it does with the shared connection.
 */
export function readCommand(
  program: Command,
  spec: { name: string; description: string; examples: string[] },
  run: (db: PgDb, cmd: Command) => Promise<void>,
): Command {
  return program
    .command(spec.name)
    .description(spec.description)
    .addHelpText('after', examples(...spec.examples))
    .action((_o: unknown, cmd: Command) => run(database(), cmd));
}
