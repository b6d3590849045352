import { type CpuMeter, cpuMeter } from '../lib/cpu.ts';
import { analyze, loadPeer, withDatabase } from '../lib/harness.ts';
import { recordDrain } from '../lib/results.ts';
import { type WalMeter, walMeter } from '../lib/wal.ts';
import type { SystemId } from './ids.ts';
import type { System, SystemRun } from './types.ts';

/** Each peer's version and configuration as run, for the results file. */
export const peerConfigs: Record<string, { version: string; config: string }> = {};

/** A peer queue (bench/peers/<file>, its own adapter) with its own batch enqueue and workers. */
function peer(id: SystemId, file: string, slug: string): System {
  return {
    id,
    run: async (run: SystemRun) => {
      const adapter = await loadPeer(file);
      await withDatabase(`${slug}_${run.round}`, async (db) => {
        // CPU from just before the drain (the harness's ANALYZE is done) to the moment its table is
        // seen drained: the peer's own start-up counts here, though its timed window leaves it out.
        let cpu: CpuMeter | undefined;
        let wal: WalMeter | undefined;
        const r = await adapter.drain(
          db.url,
          run.jobs,
          run.workers,
          async () => {
            await analyze(db.url);
            wal = await walMeter(db.url);
            cpu = cpuMeter(db.name);
          },
          () => cpu?.stop(),
        );
        await wal?.stop();
        peerConfigs[adapter.name] = { version: adapter.version, config: r.config };
        recordDrain(id, run, {
          jobs: r.done,
          seconds: r.seconds,
          version: adapter.version,
          extra: { enqueueSeconds: r.enqueueSeconds, ...cpu?.perJob(r.done), ...wal?.perJob(r.done) },
        });
      });
    },
  };
}

export const graphile = peer('graphile', 'graphile.ts', 'graphile');
export const pgboss = peer('pgboss', 'pgboss.ts', 'pgboss');
