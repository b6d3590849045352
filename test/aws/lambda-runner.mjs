// Runs a bundle the way the Lambda Node.js runtime does, one process = one execution
// environment: imports `<task root>/index.mjs` once (the init phase), then invokes `handler`
// once per event with a Lambda-shaped context, in order (a warm container), and writes the
// results to a file. Started by test/aws with the function's environment.
// usage: node lambda-runner.mjs <taskRoot> <events.json> <results.json> <timeoutMs>
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [taskRoot, eventsFile, resultsFile, timeoutArg] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg);
const name = process.env.AWS_LAMBDA_FUNCTION_NAME;
const region = process.env.AWS_REGION;
const mod = await import(pathToFileURL(join(taskRoot, 'index.mjs')).href);
const results = [];
for (const event of JSON.parse(readFileSync(eventsFile, 'utf8'))) {
  const deadline = Date.now() + timeoutMs;
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:123456789012:function:${name}`,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: '2026/01/01/[$LATEST]0123456789abcdef',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done() {},
    fail() {},
    succeed() {},
  };
  try {
    results.push({ ok: true, value: (await mod.handler(event, context)) ?? null });
  } catch (err) {
    results.push({ ok: false, error: { name: err?.name, message: String(err?.message ?? err) } });
  }
}
writeFileSync(resultsFile, JSON.stringify({ node: process.version, arch: process.arch, results }));
// The runtime freezes the environment after the last invocation; here the process ends.
process.exit(0);
