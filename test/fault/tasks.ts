import { z } from 'zod';
import { createRegistry, defineTask, type TaskRegistry } from '../../functions/tasks/index.ts';

/**
 * The fault suite's tasks, beside the examples: the api validates against them and the
 * consumer processes run them. `fault.work` returns its lease token, so the stored result
 * shows which lease completed the job (checked by I5).
 */
export function faultRegistry(worker = 'api'): TaskRegistry {
  const work = defineTask({
    type: 'fault.work',
    schema: z.object({
      seq: z.number().int(),
      ms: z.number().int().min(0),
      stallMs: z.number().int().min(0).optional(),
    }),
    run(payload, ctx) {
      if (payload.stallMs && ctx.attempt === 1) {
        // The first attempt stalls the whole process (a long GC pause, a stuck native call): no
        // heartbeat runs, and the result comes back after the stall whatever became of the lease.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, payload.stallMs);
        return Promise.resolve({ seq: payload.seq, token: ctx.leaseToken, worker });
      }
      return new Promise((resolve, reject) => {
        if (ctx.signal.aborted) return reject(ctx.signal.reason);
        const timer = setTimeout(
          () => resolve({ seq: payload.seq, token: ctx.leaseToken, worker }),
          payload.ms,
        );
        ctx.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            reject(ctx.signal.reason);
          },
          { once: true },
        );
      });
    },
  });
  /** Kills the process running it, every time: the poison job. */
  const poison = defineTask({
    type: 'fault.poison',
    schema: z.object({ seq: z.number().int() }),
    async run() {
      process.kill(process.pid, 'SIGKILL');
      return new Promise(() => {});
    },
  });
  return createRegistry().register(work).register(poison);
}
