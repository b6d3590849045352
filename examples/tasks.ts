/**
 * The task contracts the application shares with the engine's deployment: a type and a zod
 * schema per task. The engine's `defineTask({ ...sendEmail, run })` adds the code that runs it;
 * the application needs only this, and the client takes the payload type from the schema.
 */
import { z } from 'zod';

export const sendEmail = {
  type: 'email.send',
  schema: z.object({ to: z.email(), subject: z.string().max(200) }),
};

// A task of the engine's examples (functions/tasks/examples.ts), so `npm start` runs it.
export const echo = { type: 'example.echo', schema: z.unknown() };
