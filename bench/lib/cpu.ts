import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { round } from './stats.ts';

/**
 * CPU used during a drain, read from /proc (Linux only; elsewhere `cpuAvailable` is false):
 *
 * - the PostgreSQL server's share: the backends connected to the bench database under test and
 *   its autovacuum workers (their process titles name the database), plus the background
 *   processes (WAL writer, checkpointer, background writer) of that server only, which write
 *   the WAL and pages the drain dirties: those whose parent is the postmaster the database's
 *   backends are children of. Other clusters' background processes, and backends of other
 *   databases (the harness's admin connection), are left out. A backend that starts during the drain counts from its start; one that
 *   exits before the second reading is lost, so readings are taken while the drain's
 *   connections are still open.
 * - this Node process, all threads (the systems' own code, pg, GC, and the harness's polls).
 */
export interface CpuReading {
  /** Every postgres process seen, by pid (filtered to the bench's server when the readings are compared). */
  server: Map<number, PgProcess>;
  benchMs: number;
}

/** One postgres process in a reading. */
export interface PgProcess {
  /** utime + stime, in clock ticks. */
  ticks: number;
  /** The parent pid: the postmaster, for backends and background processes. */
  ppid: number;
  /** A backend or autovacuum worker of the database under test, or a background writer of some server. */
  kind: 'database' | 'background';
}

/** Where the process table is read from: /proc, or a fake one in the unit tests. */
export interface ProcSource {
  list(): string[];
  /** The file's text, or undefined when the process is gone. */
  read(path: string): string | undefined;
}

const PROC: ProcSource = {
  list: () => readdirSync('/proc'),
  read: (path) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined; // exited between readdir and read
    }
  },
};

let tick: number | undefined;
function msPerTick(): number {
  if (tick === undefined) {
    try {
      tick = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    } catch {
      tick = 10;
    }
  }
  return tick;
}

export const cpuAvailable = process.platform === 'linux';

/** Background processes write what the backends dirty; only the bench server's are counted. */
const BACKGROUND = /: (walwriter|checkpointer|background writer)\s*$/;

/** The postgres processes of a process table that may belong to the drain of `database`. */
export function pgProcesses(database: string, proc: ProcSource = PROC): Map<number, PgProcess> {
  const found = new Map<number, PgProcess>();
  for (const entry of proc.list()) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = proc.read(`/proc/${entry}/stat`);
    const cmdline = proc.read(`/proc/${entry}/cmdline`);
    if (stat === undefined || cmdline === undefined) continue;
    const close = stat.lastIndexOf(')');
    if (stat.slice(stat.indexOf('(') + 1, close) !== 'postgres') continue;
    const title = cmdline.replace(/\0/g, ' ').trimEnd();
    // "postgres: 15/main: <user> <database> <host> <state>", "… autovacuum worker <database>"
    const kind = BACKGROUND.test(title)
      ? 'background'
      : title.trim().split(/\s+/).includes(database)
        ? 'database'
        : undefined;
    if (!kind) continue;
    // After the name: state, ppid, …; utime and stime are fields 14 and 15 of /proc/<pid>/stat.
    const fields = stat.slice(close + 2).split(' ');
    found.set(Number(entry), {
      ticks: Number(fields[11]) + Number(fields[12]),
      ppid: Number(fields[1]),
      kind,
    });
  }
  return found;
}

export function cpuNow(database: string, proc: ProcSource = PROC): CpuReading {
  const bench = process.cpuUsage();
  const server = cpuAvailable || proc !== PROC ? pgProcesses(database, proc) : new Map<number, PgProcess>();
  return { server, benchMs: (bench.user + bench.system) / 1000 };
}

/**
 * The server's ticks between two readings: the database's backends, and the background
 * processes of the postmaster(s) those backends are children of. Other clusters on the machine
 * (other benches', tests' throwaway clusters) have their own postmasters and are left out.
 */
export function serverTicks(from: CpuReading, to: CpuReading): number {
  const postmasters = new Set<number>();
  for (const r of [from, to])
    for (const p of r.server.values()) if (p.kind === 'database') postmasters.add(p.ppid);
  let ticks = 0;
  for (const [pid, p] of to.server) {
    if (p.kind === 'background' && !postmasters.has(p.ppid)) continue;
    ticks += p.ticks - (from.server.get(pid)?.ticks ?? 0);
  }
  return ticks;
}

/** Per-job CPU between two readings, in microseconds. */
export function cpuPerJob(from: CpuReading, to: CpuReading, jobs: number): { dbUs: number; benchUs: number } {
  return {
    dbUs: (serverTicks(from, to) * msPerTick() * 1000) / jobs,
    benchUs: ((to.benchMs - from.benchMs) * 1000) / jobs,
  };
}

/**
 * CPU per job over a drain: the PostgreSQL server's share for `database` and this process's.
 * Both share the machine's cores, so together they bound the drain rate. Readings start when
 * the meter is made; `stop` is called while the drain's connections are still open (a backend
 * that exits first is lost). A meter never stopped reports nothing, not a zero.
 */
export interface CpuMeter {
  stop(): void;
  perJob(jobs: number): Record<string, number>;
}

export function cpuMeter(database: string): CpuMeter {
  const from = cpuNow(database);
  let to: CpuReading | undefined;
  return {
    stop: () => {
      to = cpuNow(database);
    },
    perJob: (jobs): Record<string, number> => {
      if (!cpuAvailable || !to || jobs === 0) return {};
      const c = cpuPerJob(from, to, jobs);
      return { dbCpuUsPerJob: round(c.dbUs, 1), nodeCpuUsPerJob: round(c.benchUs, 1) };
    },
  };
}
