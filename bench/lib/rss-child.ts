/**
 * Scenario (g): one consumer "container" in its own process, bundled by esbuild like the Lambda
 * artifact, invoked until the table is drained; prints its peak RSS. argv: database URL.
 */
import { createHandler } from '../../functions/consumer.ts';
import { discard, lambdaContext } from './lambda.ts';

const url = process.argv[2];
if (!url) throw new Error('usage: rss-child <database-url>');
const handler = createHandler({ env: { DATABASE_URL: url }, logStream: discard() });
let completed = 0;
let invocations = 0;
const t0 = performance.now();
for (;;) {
  const s = await handler({}, lambdaContext('bench-rss', 60_000));
  invocations++;
  completed += s.completed;
  if (s.claimed === 0) break;
}
const seconds = (performance.now() - t0) / 1000;
// resourceUsage().maxRSS is in kilobytes: the high-water mark of the whole process.
process.stdout.write(
  `${JSON.stringify({ completed, invocations, seconds, peakRssMb: process.resourceUsage().maxRSS / 1024 })}\n`,
);
process.exit(0);
