import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', '..', 'tools', 'taskctl.mjs');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when it is JSON (every --json run). */
  // biome-ignore lint/suspicious/noExplicitAny: assertions index freely into the CLI's JSON output
  json: any;
}

/** Runs taskctl as an operator would: a child process, its own connection, --json output. */
export function taskctl(
  databaseUrl: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, '--json', ...args],
      {
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          DATABASE_URL: databaseUrl,
          ...env,
        },
        // Generous: under load from parallel suites a tsx start alone has taken 10 s here.
        timeout: 90_000,
      },
      (err, stdout, stderr) => {
        let json: unknown;
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr, json });
      },
    );
  });
}

/** A loopback port nothing listens on: connections are refused at once. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** The error contract: exactly one line on stderr, no stack frames. */
export function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split('\n');
  if (lines.length !== 1 || /^\s+at /m.test(stderr))
    throw new Error(`expected one line on stderr, got:\n${stderr}`);
  return lines[0]!;
}
