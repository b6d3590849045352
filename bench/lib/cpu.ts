import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time spent so far by the PostgreSQL server (every process named `postgres`: backends, WAL
 * writer, checkpointer, autovacuum) and by this Node process (all its threads, GC included), in
 * milliseconds. Backends that exited in between still count: the postmaster reaps them, so their
 * time is in its cutime/cstime. Linux only (/proc); elsewhere `cpuAvailable` is false and dbMs is 0.
 */
export interface CpuReading {
  dbMs: number;
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

export function cpuNow(): CpuReading {
  const bench = process.cpuUsage();
  if (!cpuAvailable) return { dbMs: 0, benchMs: (bench.user + bench.system) / 1000 };
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // exited between readdir and read
    }
    const close = stat.lastIndexOf(')');
    if (stat.slice(stat.indexOf('(') + 1, close) !== 'postgres') continue;
    const fields = stat.slice(close + 2).split(' ');
    // utime, stime, cutime, cstime: fields 14-17 of /proc/<pid>/stat (11-14 after the name).
    ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  }
  return { dbMs: ticks * msPerTick(), benchMs: (bench.user + bench.system) / 1000 };
}

/** Per-job CPU between two readings, in microseconds. */
export function cpuPerJob(from: CpuReading, to: CpuReading, jobs: number): { dbUs: number; benchUs: number } {
  return {
    dbUs: ((to.dbMs - from.dbMs) * 1000) / jobs,
    benchUs: ((to.benchMs - from.benchMs) * 1000) / jobs,
  };
}
