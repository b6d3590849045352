/**
 * Takes the README's screenshots (docs/screenshots/*.png, 1280×800) against a throwaway schema:
 *   npx tsx tools/dashboard/screenshots.ts
 * Needs /usr/bin/chromium and a PostgreSQL (DATABASE_URL, else the test database). The seeded
 * work is real (engine calls); only the timestamps of its counter rows are spread over the past
 * hour afterwards so the per-minute chart has a shape. Totals are unchanged by that.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { claimJobs, completeJobs, enqueueMany, failJob, pauseQueue } from '../../functions/engine/index.ts';
import { createTestSchema } from '../../test/helpers/pg.ts';
import { startDashboardServer } from './index.ts';

const OUT = join(import.meta.dirname, '..', '..', 'docs', 'screenshots');

const t = await createTestSchema('shots');
try {
  const db = t.db;
  const types = ['email.send', 'report.render', 'image.resize'];
  const queues = ['email', 'reports', 'default'];
  await enqueueMany(
    db,
    Array.from({ length: 240 }, (_, i) => ({
      type: types[i % 3]!,
      queue: queues[i % 3]!,
      payload: { n: i, to: `user${i}@example.com` },
      maxAttempts: 3,
    })),
  );
  // Most complete, some fail for good (with a stack), a few stay running, the rest stay queued.
  const claimed = await claimJobs(db, {
    workerId: 'consumer-7f3a/1',
    limit: 200,
    leaseSeconds: 30,
    queues: [],
  });
  const ok = claimed.filter((_, i) => i % 7 !== 0 && i < 180);
  await completeJobs(
    db,
    ok.map((c) => ({ id: c.id, leaseToken: c.leaseToken, result: { delivered: true } })),
  );
  const bad = claimed.filter((_, i) => i % 7 === 0 && i < 180);
  for (const c of bad) {
    const err = new Error(`SMTP 421 4.7.0 try again later (attempt ${c.attempt})`);
    await failJob(db, {
      id: c.id,
      leaseToken: c.leaseToken,
      error: {
        message: err.message,
        name: 'SmtpError',
        stack: err.stack,
        attempt: c.attempt,
        worker: 'consumer-7f3a/1',
      },
      permanent: true,
      backoffBaseSeconds: 2,
      maxBackoffSeconds: 600,
    });
  }
  await pauseQueue(db, 'reports', 'alice', 'INC-231: renderer out of memory');
  await db.query(
    `UPDATE job_counter_deltas SET at = now() - make_interval(secs => (random() * 3500)::int)
     WHERE completed > 0 OR failed > 0`,
  );
  // One delta row per statement: split the batched completion over the hour as well.
  await db.query(
    `WITH big AS (DELETE FROM job_counter_deltas WHERE completed > 20 RETURNING completed)
     INSERT INTO job_counter_deltas (at, completed)
     SELECT now() - make_interval(secs => ((g % 58) * 60 + 70 + (random() * 50)::int)), 1
     FROM big, generate_series(1, (SELECT completed FROM big)) g`,
  );

  const server = await startDashboardServer({ db, actor: 'dashboard:alice' });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--no-first-run',
    ],
  });
  try {
    mkdirSync(OUT, { recursive: true });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(server.url);
    await page.waitForSelector('tr[data-queue="email"]');
    await page.screenshot({ path: join(OUT, 'overview.png') });
    const failed = bad[1]!.id;
    await page.goto(`${server.url.split('?')[0]}#/jobs/${failed}`);
    await page.waitForSelector('[data-field="error-message"]');
    await page.screenshot({ path: join(OUT, 'failed-job.png') });
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await phone.goto(server.url);
    await phone.waitForSelector('tr[data-queue="email"]');
    await phone.screenshot({ path: join(OUT, 'overview-phone.png') });
    process.stdout.write(`screenshots written to ${OUT}\n`);
  } finally {
    await browser.close();
    await server.close();
  }
} finally {
  await t.drop();
}
