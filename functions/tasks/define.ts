import type { z } from 'zod';
import { isName, NAMES, type ScheduleDefinition } from '../engine/schema.ts';
import type { Logger } from '../platform/logger.ts';

/** What a running task is given. `leaseToken` changes at every claim: use it as an idempotency key for side effects. */
export interface TaskContext {
  jobId: string;
  queue: string;
  attempt: number;
  maxAttempts: number;
  leaseToken: string;
  /** Fires at the task's time budget, at the invocation deadline, or when the lease is lost. */
  signal: AbortSignal;
  logger: Logger;
}

export interface TaskDefinition<S extends z.ZodType = z.ZodType> {
  type: string;
  schema: S;
  /** Default max attempts for jobs of this type (the request may override). */
  maxAttempts?: number;
  /** Upper bound on one attempt; the invocation's remaining time may cut it shorter. */
  timeoutSeconds?: number;
  run(payload: z.infer<S>, ctx: TaskContext): Promise<unknown>;
}

export function defineTask<S extends z.ZodType>(definition: TaskDefinition<S>): TaskDefinition<S> {
  if (!isName('type', definition.type)) {
    throw new Error(`task type ${JSON.stringify(definition.type)} must be ${NAMES.type.rule}`);
  }
  if (
    definition.maxAttempts !== undefined &&
    (!Number.isInteger(definition.maxAttempts) || definition.maxAttempts < 1)
  ) {
    throw new Error(`task ${definition.type}: maxAttempts must be a positive integer`);
  }
  if (definition.timeoutSeconds !== undefined && !(definition.timeoutSeconds > 0)) {
    throw new Error(`task ${definition.type}: timeoutSeconds must be positive`);
  }
  return definition;
}

/** Shared by the api (validation at the door) and the consumer (execution). */
export class TaskRegistry {
  readonly #tasks = new Map<string, TaskDefinition>();

  constructor(tasks: readonly TaskDefinition[] = []) {
    for (const task of tasks) this.register(task);
  }

  register(task: TaskDefinition): this {
    if (this.#tasks.has(task.type)) throw new Error(`task type ${task.type} is registered twice`);
    this.#tasks.set(task.type, task);
    return this;
  }

  get(type: string): TaskDefinition | undefined {
    return this.#tasks.get(type);
  }

  types(): string[] {
    return [...this.#tasks.keys()].sort();
  }
}

/**
 * A recurring schedule defined in code, beside the tasks (see README, "Schedules"). Synced into
 * the `schedules` table at migrate and at `npm start`; not editable through the API, taskctl or
 * the dashboard (they may pause and resume it). Validated when it is synced, against the
 * registry: the cron, the time zone, the task type and the payload against the task's schema.
 */
export type ScheduleSpec = ScheduleDefinition;

export function defineSchedule(spec: ScheduleSpec): ScheduleSpec {
  if (!isName('schedule', spec.name)) {
    throw new Error(`schedule name ${JSON.stringify(spec.name)} must be ${NAMES.schedule.rule}`);
  }
  return spec;
}
