/**
 * Soak: `npm run soak -- --minutes N [--consumers 4]`. Measures the drain capacity of the
 * consumers on a throwaway cluster, then enqueues at ~70% of it for N minutes while a fault
 * is injected every 30 s in rotation (SIGKILL, SIGSTOP past the lease, pg_terminate_backend,
 * latency, black hole, immediate database restart). Drains, runs the invariant checker and
 * prints the fault suite's table. Exits 1 if an invariant fails.
 */
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { describeViolations } from './checker.ts';
import { startCluster } from './cluster.ts';
import { formatTable, Scenario, type SummaryRow, sleep } from './harness.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    consumers: { type: 'string', default: '4' },
    'fault-every': { type: 'string', default: '30' },
  },
});
const minutes = Number(values.minutes);
const consumers = Number(values.consumers);
const faultEveryMs = Number(values['fault-every']) * 1000;
if (!(minutes > 0) || !(consumers > 0)) throw new Error('usage: npm run soak -- --minutes N [--consumers C]');

const log = (msg: string) => process.stdout.write(`[soak ${new Date().toISOString()}] ${msg}\n`);

const cluster = await startCluster();
const s = await Scenario.start('soak', cluster);
let exitCode = 0;
try {
  s.respawnKilled = true;
  const stopReaper = s.reapEvery(1000);
  s.spawnWorkers(consumers);
  await s.ready();

  // Capacity: drain a fixed backlog of 20 ms jobs with no fault.
  const calibration = 3000;
  await s.enqueueWork(calibration, { ms: 20 });
  const c0 = Date.now();
  for (;;) {
    const c = await s.counts();
    if (c.queued + c.running === 0) break;
    await sleep(200);
  }
  const capacity = calibration / ((Date.now() - c0) / 1000);
  const rate = capacity * 0.7;
  log(
    `capacity ${capacity.toFixed(0)} jobs/s with ${consumers} consumers; enqueueing ${rate.toFixed(0)} jobs/s for ${minutes} min`,
  );

  const faults = new Map<string, number>();
  const inject: Array<[string, () => Promise<void>]> = [
    [
      'SIGKILL consumer',
      async () => {
        const w = [...s.workers.values()][Math.floor(Math.random() * s.workers.size)]!;
        w.child.kill('SIGKILL');
      },
    ],
    [
      'SIGSTOP consumer 5 s',
      async () => {
        const w = [...s.workers.values()][Math.floor(Math.random() * s.workers.size)]!;
        w.child.kill('SIGSTOP');
        await sleep(5000);
        w.child.kill('SIGCONT');
      },
    ],
    [
      'pg_terminate_backend',
      async () => {
        await s.db.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND application_name = 'dte-fault-consumer'`,
        );
      },
    ],
    [
      'latency 200 ms 5 s',
      async () => {
        s.proxy.setLatency(200);
        await sleep(5000);
        s.proxy.setLatency(0);
      },
    ],
    [
      'black hole 4 s',
      async () => {
        s.proxy.blackhole();
        await sleep(4000);
        s.proxy.heal();
      },
    ],
    ['immediate restart', () => cluster.restartImmediate()],
  ];

  const end = Date.now() + minutes * 60_000;
  let nextFault = Date.now() + faultEveryMs / 2;
  let round = 0;
  let faultRunning: Promise<void> = Promise.resolve();
  let owed = 0;
  let tick = Date.now();
  while (Date.now() < end) {
    if (Date.now() >= nextFault) {
      const [name, run] = inject[round++ % inject.length]!;
      faults.set(name, (faults.get(name) ?? 0) + 1);
      log(`fault: ${name}`);
      faultRunning = faultRunning.then(run).catch((err) => {
        log(`fault ${name} failed: ${err}`);
      });
      nextFault += faultEveryMs;
    }
    // Enqueue what the rate owes since the last tick, in one batch.
    const now = Date.now();
    owed += ((now - tick) / 1000) * rate;
    tick = now;
    const n = Math.floor(owed);
    if (n > 0) {
      owed -= n;
      try {
        await s.enqueueWork(n, { ms: 20 });
      } catch {
        // Recorded as unknown in the history (the database may be restarting).
      }
    }
    await sleep(250);
  }
  await faultRunning;
  log('load done; draining');
  await s.drain(300_000, 1000);
  await stopReaper();
  await s.stopWorkers();
  const result = await s.check();
  const row: SummaryRow = s.row(result, {
    scenario: `soak ${minutes} min`,
    faults: [...faults].map(([k, v]) => `${k} x${v}`).join(', '),
  });
  process.stdout.write(
    `\nSoak summary (${new Date().toISOString()}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(
      totalmem() / 2 ** 30
    ).toFixed(
      0,
    )} GiB, node ${process.version}; capacity ${capacity.toFixed(0)} jobs/s, offered ${rate.toFixed(0)} jobs/s)\n${formatTable([row])}\n`,
  );
  process.stdout.write(
    `jobs by status ${JSON.stringify(result.stats.byStatus)}; acknowledged ${result.stats.acknowledged}; claims ${result.stats.claims}; unknown outcomes ${result.stats.unknownOutcomes}\n`,
  );
  if (!result.ok) {
    process.stdout.write(`${describeViolations(result)}\n`);
    exitCode = 1;
  }
} finally {
  await s.close();
  cluster.destroy();
}
process.exit(exitCode);
