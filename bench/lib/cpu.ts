import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { round } from './stats.ts';

/**
 * CPU used during a drain, read from /proc (Linux only; elsewhere `cpuAvailable` is false):
 *
 * - the PostgreSQL server's share: the backends connected to the bench database under test and
 *   its autovacuum workers (their process titles name the database), plus the server's
 *   background processes (WAL writer, checkpointer, background writer), which write the WAL
 *   and pages the drain dirties. Backends of other databases (the harness's admin connection)
 *   are left out. A backend that starts during the drain counts from its start; one that
 *   exits before the second reading is lost, so readings are taken while the drain's
 *   connections are still open.
 * - this Node process, all threads (the systems' own code, pg, GC, and the harness's polls).
 */
export interface CpuReading {
  /** Ticks of utime + stime per counted postgres process. */
  server: Map<number, number>;
  benchMs: number;
}

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

/** Background processes count for every database: they write what all backends dirty. */
const BACKGROUND = /: (walwriter|checkpointer|background writer)\s*$/;

export function cpuNow(database: string): CpuReading {
  const bench = process.cpuUsage();
  const server = new Map<number, number>();
  if (cpuAvailable) {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      let title: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        title = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      } catch {
        continue; // exited between readdir and read
      }
      const close = stat.lastIndexOf(')');
      if (stat.slice(stat.indexOf('(') + 1, close) !== 'postgres') continue;
      const words = title.trim().split(/\s+/);
      // "postgres: 15/main: <user> <database> <host> <state>", "… autovacuum worker <database>"
      if (!BACKGROUND.test(title.trimEnd()) && !words.includes(database)) continue;
      const fields = stat.slice(close + 2).split(' ');
      // utime and stime: fields 14 and 15 of /proc/<pid>/stat (11 and 12 after the name).
      server.set(Number(entry), Number(fields[11]) + Number(fields[12]));
    }
  }
  return { server, benchMs: (bench.user + bench.system) / 1000 };
}

/** Per-job CPU between two readings, in microseconds. */
export function cpuPerJob(from: CpuReading, to: CpuReading, jobs: number): { dbUs: number; benchUs: number } {
  let ticks = 0;
  for (const [pid, t] of to.server) ticks += t - (from.server.get(pid) ?? 0);
  return {
    dbUs: (ticks * msPerTick() * 1000) / jobs,
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
