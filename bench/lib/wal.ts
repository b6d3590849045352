import { sql } from './harness.ts';
import { round } from './stats.ts';

/**
 * WAL written during a drain: the server's insert position before and after
 * (`pg_current_wal_lsn()`). WAL is per cluster, not per database: anything else writing to the
 * same server meanwhile counts too, so a bench whose figures matter runs on a server of its own
 * (`BENCH_DATABASE_URL`). A meter never stopped reports nothing, not a zero.
 */
export interface WalMeter {
  stop(): Promise<void>;
  perJob(jobs: number): Record<string, number>;
}

/** An LSN ("16/B374D848") as a byte position. */
export function lsnBytes(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`);
}

async function position(url: string): Promise<bigint> {
  const { rows } = await sql(url, 'SELECT pg_current_wal_lsn()::text AS lsn');
  return lsnBytes(String(rows[0].lsn));
}

export async function walMeter(url: string): Promise<WalMeter> {
  const from = await position(url);
  let to: bigint | undefined;
  return {
    stop: async () => {
      to = await position(url);
    },
    perJob: (jobs): Record<string, number> => {
      if (to === undefined || jobs === 0) return {};
      return { walBytesPerJob: round(Number(to - from) / jobs, 0) };
    },
  };
}
