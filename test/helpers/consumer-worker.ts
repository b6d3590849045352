/**
 * A consumer "container" as a child process: invokes the real consumer handler in a loop with
 * Lambda-like contexts until killed or INVOCATIONS is reached. Config comes from the environment.
 */
import { randomUUID } from 'node:crypto';
import { createHandler } from '../../functions/consumer.ts';
import { fakeContext } from './lambda.ts';

const invocations = Number(process.env.INVOCATIONS ?? '1000000');
const timeoutMs = Number(process.env.INVOCATION_TIMEOUT_MS ?? '30000');
const handler = createHandler();
process.stdout.write(`worker ${process.pid} up\n`);
for (let i = 0; i < invocations; i++) {
  const ctx = fakeContext(timeoutMs, 'dte-consumer');
  (ctx as { awsRequestId: string }).awsRequestId = `child-${process.pid}-${randomUUID().slice(0, 8)}`;
  const summary = await handler({}, ctx);
  process.stdout.write(`${JSON.stringify({ summary })}\n`);
}
process.exit(0);
