import { z } from 'zod';
import { NonRetryableError } from '../engine/errors.ts';
import { defineTask } from './define.ts';

/** Returns its payload: the no-op job of the benchmarks and the quick start. */
export const echo = defineTask({
  type: 'example.echo',
  schema: z.unknown(),
  async run(payload) {
    return payload;
  },
});

/** Sleeps `ms`, honouring the abort signal (deadline, timeout, lost lease). */
export const sleep = defineTask({
  type: 'example.sleep',
  schema: z.object({ ms: z.number().int().min(0).max(900_000) }),
  run(payload, ctx) {
    return new Promise((resolve, reject) => {
      if (ctx.signal.aborted) return reject(ctx.signal.reason);
      const timer = setTimeout(() => resolve({ slept: payload.ms }), payload.ms);
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

/** Fails its first `failTimes` attempts (permanently when `permanent`), then succeeds. */
export const flaky = defineTask({
  type: 'example.flaky',
  schema: z.object({ failTimes: z.number().int().min(0).max(1000), permanent: z.boolean().optional() }),
  maxAttempts: 5,
  async run(payload, ctx) {
    if (ctx.attempt <= payload.failTimes) {
      const message = `flaky failure on attempt ${ctx.attempt} of ${payload.failTimes}`;
      if (payload.permanent) throw new NonRetryableError(message);
      throw new Error(message);
    }
    return { succeededOnAttempt: ctx.attempt };
  },
});

export const exampleTasks = [echo, sleep, flaky];
