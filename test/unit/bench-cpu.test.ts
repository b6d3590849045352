import { describe, expect, it } from 'vitest';
import { cpuNow, type ProcSource, serverTicks } from '../../bench/lib/cpu.ts';
import { lsnBytes } from '../../bench/lib/wal.ts';

/** A fake /proc: pid → [comm, ppid, utime, stime, process title]. */
type Row = [comm: string, ppid: number, utime: number, stime: number, title: string];
function fakeProc(rows: Record<number, Row>): ProcSource {
  return {
    list: () => ['self', 'sys', ...Object.keys(rows)],
    read: (path) => {
      const [, pid, file] = path.split('/').slice(1);
      const row = rows[Number(pid)];
      if (!row) return undefined;
      const [comm, ppid, utime, stime, title] = row;
      // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
      if (file === 'stat') return `${pid} (${comm}) S ${ppid} 1 1 0 -1 0 0 0 0 0 ${utime} ${stime} 0 0 20 0`;
      return `${title.replace(/ /g, '\0')}\0`;
    },
  };
}

/** Two clusters: ours (postmaster 100) with the bench database, and another one (postmaster 200). */
function machine(extra: number): Record<number, Row> {
  return {
    100: ['postgres', 1, 5, 5, '/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main'],
    101: ['postgres', 100, 10 + extra, 0, 'postgres: 15/main: walwriter'],
    102: ['postgres', 100, 10 + extra, 0, 'postgres: 15/main: checkpointer'],
    103: ['postgres', 100, 10, extra, 'postgres: 15/main: background writer'],
    104: ['postgres', 100, 50 + extra, 0, 'postgres: 15/main: root bench_77_consumer_1 127.0.0.1(5000) idle'],
    105: ['postgres', 100, 50 + extra, 0, 'postgres: 15/main: root test 127.0.0.1(5001) idle'],
    201: ['postgres', 200, 10 + 100 * extra, 0, 'postgres: walwriter'],
    202: ['postgres', 200, 10 + 100 * extra, 0, 'postgres: checkpointer'],
    203: ['postgres', 200, 10 + 100 * extra, 0, 'postgres: background writer'],
    204: ['postgres', 200, 10 + 100 * extra, 0, 'postgres: root other 127.0.0.1(6000) idle'],
    300: ['node', 1, 10 + 100 * extra, 0, 'node bench/run.ts bench_77_consumer_1'],
  };
}

describe('bench CPU meter: which processes count', () => {
  it("counts the database's backends and its own server's background processes, no other cluster's", () => {
    // Prepare
    const db = 'bench_77_consumer_1';
    // Act
    const from = cpuNow(db, fakeProc(machine(0)));
    const to = cpuNow(db, fakeProc(machine(3)));
    // Assess: 3 ticks each for walwriter, checkpointer, background writer and the backend
    expect([...to.server.keys()].sort()).toEqual([101, 102, 103, 104, 201, 202, 203]);
    expect(serverTicks(from, to)).toBe(12);
  });

  it('a backend that started between the readings counts from zero; one gone is left out', () => {
    // Prepare
    const db = 'bench_77_consumer_1';
    const before = machine(0);
    const after = machine(0);
    after[106] = ['postgres', 100, 7, 1, `postgres: 15/main: root ${db} 127.0.0.1(5002) idle`];
    delete after[104];
    // Act
    const ticks = serverTicks(cpuNow(db, fakeProc(before)), cpuNow(db, fakeProc(after)));
    // Assess
    expect(ticks).toBe(8);
  });
});

describe('bench WAL meter: LSN positions', () => {
  it('reads an LSN as bytes, the high word shifted 32 bits, and refuses anything else', () => {
    // Act
    const a = lsnBytes('0/16B3748');
    const b = lsnBytes('16/B374D848');
    // Assess
    expect(a).toBe(0x16b3748n);
    expect(b).toBe((0x16n << 32n) + 0xb374d848n);
    expect(() => lsnBytes('16-B374D848')).toThrow(/not an LSN/);
  });
});
