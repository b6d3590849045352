import { TaskRegistry } from './define.ts';
import { exampleTasks } from './examples.ts';

export { defineTask, type TaskContext, type TaskDefinition, TaskRegistry } from './define.ts';

/**
 * The registry the deployed functions use. Add your tasks here (see README, "Adding a task");
 * the api validates payloads against it and the consumer runs it.
 */
export function createRegistry(): TaskRegistry {
  return new TaskRegistry(exampleTasks);
}
