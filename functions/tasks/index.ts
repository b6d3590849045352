import { type ScheduleSpec, TaskRegistry } from './define.ts';
import { exampleTasks } from './examples.ts';

export {
  defineSchedule,
  defineTask,
  type ScheduleSpec,
  type TaskContext,
  type TaskDefinition,
  TaskRegistry,
} from './define.ts';

/**
 * The registry the deployed functions use. Add your tasks here (see README, "Adding a task");
 * the api validates payloads against it and the consumer runs it.
 */
export function createRegistry(): TaskRegistry {
  return new TaskRegistry(exampleTasks);
}

/**
 * The schedules defined in code (see README, "Schedules"): synced into the database at migrate
 * and at `npm start`, validated against createRegistry(). Add yours here, e.g.
 * `defineSchedule({ name: 'nightly-report', cron: '0 3 * * *', timezone: 'Europe/Berlin', type: 'report.build' })`.
 */
export function codeSchedules(): ScheduleSpec[] {
  return [];
}
