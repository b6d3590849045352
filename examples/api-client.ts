/**
 * Enqueue through the HTTP API. Against the deployed stack: ENGINE_URL=<ApiUrl output>
 * (SigV4 with the default AWS credential chain: Lambda, ECS, EC2 roles or a laptop profile).
 * Against `npm start`: ENGINE_URL=http://127.0.0.1:3000 ENGINE_AUTH=none.
 */
import { ConflictError, createClient, UnavailableError, ValidationError } from 'durable-task-engine/client';
import { echo, sendEmail } from './tasks.ts';

const client = createClient({
  url: process.env.ENGINE_URL ?? 'http://127.0.0.1:3000',
  auth: process.env.ENGINE_AUTH === 'none' ? 'none' : 'iam',
});

// Typed: the payload must match the schema (a wrong field fails to compile).
const job = await client.enqueue(echo, { hello: 'world' }, { idempotencyKey: `greeting-${Date.now()}` });
const done = await client.waitFor(job.id, { timeout: 30_000 });
console.log(JSON.stringify({ id: done.id, status: done.status, result: done.result }));

try {
  await client.enqueue(sendEmail, { to: 'someone@example.com', subject: 'Welcome' });
} catch (err) {
  if (err instanceof ValidationError)
    console.error('rejected:', err.code, err.field); // e.g. an unregistered type: 422
  else if (err instanceof ConflictError) console.error('key reused for another request:', err.message);
  else if (err instanceof UnavailableError)
    console.error('engine away; stored?', err.outcomeUnknown ? 'maybe' : 'no');
  else throw err;
}

// Schedules and queue limits: every call is safe to retry (an upsert by name, a flag, absolute limits).
await client.schedules.put(echo, {
  name: 'example-hourly-greeting',
  cron: '0 * * * *',
  timezone: 'Europe/Berlin',
  payload: { hello: 'every hour' },
});
await client.schedules.pause('example-hourly-greeting');
console.log((await client.schedules.list()).map((s) => `${s.name} ${s.cron} enabled=${s.enabled}`));
await client.schedules.remove('example-hourly-greeting'); // a retry that finds it gone reports it removed
await client.queues.setLimits('example-reports', { maxRunning: 5, rate: 2 }); // null removes a limit
console.log(await client.queues.limits());
