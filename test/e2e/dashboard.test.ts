import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { enqueueMany } from '../../functions/engine/enqueue.ts';
import { claimJobs } from '../../functions/engine/sql/claimJobs.ts';
import { completeJobs } from '../../functions/engine/sql/completeJobs.ts';
import { failJob } from '../../functions/engine/sql/failJob.ts';
import { getJob } from '../../functions/engine/sql/getJob.ts';
import { type DashboardServer, startDashboardServer } from '../../tools/dashboard/index.ts';
import { createTestSchema, postgresAvailable, type TestSchema } from '../helpers/pg.ts';

// Debian's chromium (what .ci/run installs); CHROMIUM_PATH for hosts that ship another build (GitHub's runners: /usr/bin/google-chrome).
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const chromiumPresent = existsSync(CHROMIUM);
if (!chromiumPresent) {
  if (process.env.REQUIRE_POSTGRES === '1') {
    throw new Error(
      `REQUIRE_POSTGRES=1 but ${CHROMIUM} is missing: install chromium (.ci/run does) or set CHROMIUM_PATH`,
    );
  }
  console.warn(`skipping the dashboard browser suite: ${CHROMIUM} not found`);
}

/** Waits on the page are for selectors and values, never sleeps; this bounds each one. */
const WAIT_MS = 15_000;

interface Seeded {
  failed: string[];
  completed: string;
  running: string;
  queued: string[];
  reportsQueued: string;
}

describe.runIf(chromiumPresent && (await postgresAvailable()))('dashboard in a real browser', () => {
  let t: TestSchema;
  let server: DashboardServer;
  let browser: Browser;
  let page: Page;
  let seeded: Seeded;
  const origin = () => `http://127.0.0.1:${server.port}`;

  /** queue mail: 2 failed, 1 completed, 1 running, 2 queued; queue reports: 1 queued. */
  async function seed(): Promise<Seeded> {
    await t.db.query('TRUNCATE jobs, queues, job_counter_deltas, job_audit');
    await enqueueMany(
      t.db,
      Array.from({ length: 4 }, (_, i) => ({
        type: 'email.send',
        queue: 'mail',
        payload: { n: i },
        maxAttempts: 2,
      })),
    );
    const claimed = await claimJobs(t.db, {
      workerId: 'w-e2e',
      limit: 4,
      leaseSeconds: 30,
      queues: ['mail'],
    });
    for (const c of claimed.slice(0, 2)) {
      await failJob(t.db, {
        id: c.id,
        leaseToken: c.leaseToken,
        error: {
          message: `SMTP refused job ${c.id}`,
          name: 'SmtpError',
          stack: 'SmtpError: refused\n    at send',
          attempt: 1,
          worker: 'w-e2e',
        },
        permanent: true,
        backoffBaseSeconds: 2,
        maxBackoffSeconds: 600,
      });
    }
    await completeJobs(t.db, [
      { id: claimed[2]!.id, leaseToken: claimed[2]!.leaseToken, result: { ok: true } },
    ]);
    const later = await enqueueMany(t.db, [
      { type: 'email.send', queue: 'mail' },
      { type: 'email.send', queue: 'mail' },
      { type: 'report.render', queue: 'reports' },
    ]);
    return {
      failed: claimed.slice(0, 2).map((c) => c.id),
      completed: claimed[2]!.id,
      running: claimed[3]!.id,
      queued: later.slice(0, 2).map((r) => r.job.id),
      reportsQueued: later[2]!.job.id,
    };
  }

  const snapshot = async () => ({
    jobs: (await t.db.query('SELECT id, status, attempts, lease_token, last_error FROM jobs ORDER BY id'))
      .rows,
    audit: (await t.db.query('SELECT count(*)::int AS n FROM job_audit')).rows[0],
    queues: (await t.db.query('SELECT name, paused FROM queues ORDER BY name')).rows,
  });

  const text = (selector: string) => page.locator(selector).first().textContent({ timeout: WAIT_MS });
  // Locator waits, not page functions: the dashboard's CSP forbids the eval a string condition needs.
  const exactly = (value: string) => new RegExp(`^\\s*${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
  const waitForText = (selector: string, expected: string) =>
    page
      .locator(selector, { hasText: exactly(expected) })
      .first()
      .waitFor({ timeout: WAIT_MS });

  beforeAll(async () => {
    t = await createTestSchema('dashe2e');
    server = await startDashboardServer({ db: t.db, actor: 'dashboard:e2e', cacheOverview: false });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    seeded = await seed();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(WAIT_MS);
  });
  afterEach(async () => {
    await page?.context().close();
  });

  it('opens the overview with the token and shows the seeded counts per queue', async () => {
    // Act
    const res = await page.goto(server.url);
    await page.waitForSelector('tr[data-queue="mail"]');
    // Assess
    expect(res?.status()).toBe(200);
    const mail = async (col: string) => (await text(`tr[data-queue="mail"] [data-col="${col}"]`))?.trim();
    expect({
      queued: await mail('queued'),
      running: await mail('running'),
      completed: await mail('completed'),
      failed: await mail('failed'),
      state: await mail('state'),
    }).toEqual({ queued: '2', running: '1', completed: '1', failed: '2', state: 'Active' });
    expect((await text('tr[data-queue="reports"] [data-col="queued"]'))?.trim()).toBe('1');
    expect((await text('tr[data-metric="phase6_task_submitted_total"] td'))?.trim()).toBe('7');
    // The token leaves the address bar once the page has loaded (the cookie carries reloads).
    expect(page.url()).not.toContain('token=');
  });

  it('filters to failed jobs, opens one, retries it, and the row is queued again in the database', async () => {
    // Prepare
    await page.goto(server.url);
    await page.getByRole('link', { name: 'Jobs' }).click();
    await page.waitForSelector('table.jobs tbody tr[data-job]');
    // Act: filter
    await page.getByLabel('Status').selectOption('failed');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    // The unfiltered rows go first (the view re-renders on navigation), then the filtered ones arrive.
    await page
      .locator('table.jobs tr[data-job]:not([data-status="failed"])')
      .first()
      .waitFor({ state: 'detached' });
    await page.locator('table.jobs tr[data-job][data-status="failed"]').first().waitFor();
    const listed = await page
      .locator('table.jobs tbody tr[data-job]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job')));
    // Act: open the newest failed job and retry it
    const id = listed[0]!;
    await page.locator(`a[data-key="j-${id}"]`).click();
    await page.waitForSelector('[data-field="error-message"]');
    const shownError = await text('[data-field="error-message"]');
    await page.getByRole('button', { name: 'Retry…' }).click();
    const dialog = page.locator('#confirm');
    await dialog.waitFor({ state: 'visible' });
    const said = await text('#confirm-body');
    await page.locator('#confirm-ok').click();
    await waitForText('[data-field="status"]', 'queued');
    // Assess
    expect(listed.sort()).toEqual([...seeded.failed].sort());
    expect(shownError).toBe(`SMTP refused job ${id}`);
    expect(said).toMatch(/failed.*back to.*queued/s);
    expect(await getJob(t.db, id)).toMatchObject({ status: 'queued', attempts: 0 });
    const { rows } = await t.db.query('SELECT action, actor FROM job_audit WHERE job_id = $1', [id]);
    expect(rows).toEqual([{ action: 'retry-failed', actor: 'dashboard:e2e' }]);
    await page.waitForSelector('tr[data-audit="retry-failed"]');
  });

  it('cancels a queued job only with a reason, and keeps that reason', async () => {
    // Prepare
    const id = seeded.queued[0]!;
    await page.goto(`${server.url}#/jobs/${id}`);
    await page.waitForSelector('button[data-action="cancel"]');
    // Act: confirm without a reason first
    await page.locator('button[data-action="cancel"]').click();
    await page.locator('#confirm').waitFor({ state: 'visible' });
    await page.locator('#confirm-ok').click();
    await waitForText('#confirm-error', 'Give a reason: it is kept with the job and in the audit.');
    const untouched = await getJob(t.db, id);
    await page.getByLabel(/Reason/).fill('customer asked to stop, TICKET-88');
    await page.locator('#confirm-ok').click();
    await waitForText('[data-field="status"]', 'failed');
    // Assess
    expect(untouched?.status).toBe('queued');
    const row = await getJob(t.db, id);
    expect(row).toMatchObject({ status: 'failed' });
    expect(row?.last_error).toMatchObject({
      name: 'Cancelled',
      message: 'customer asked to stop, TICKET-88',
    });
    const { rows } = await t.db.query('SELECT action, reason FROM job_audit WHERE job_id = $1', [id]);
    expect(rows).toEqual([{ action: 'cancel', reason: 'customer asked to stop, TICKET-88' }]);
  });

  it('pauses a queue by keyboard and the consumer claims nothing from it', async () => {
    // Prepare
    await page.goto(server.url);
    const pause = page.locator('tr[data-queue="mail"] button[data-action="pause"]');
    await pause.waitFor();
    // Act: keyboard only — Enter opens the dialog, focus lands in the reason, Tab twice reaches Confirm.
    await pause.focus();
    await page.keyboard.press('Enter');
    await page.locator('#confirm').waitFor({ state: 'visible' });
    const said = await text('#confirm-body');
    await page.keyboard.type('INC-231 drain mail');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await waitForText('tr[data-queue="mail"] [data-col="state"]', 'Paused');
    const claimed = await claimJobs(t.db, { workerId: 'w-after', limit: 10, leaseSeconds: 30, queues: [] });
    // Assess
    expect(said).toContain('Consumers stop claiming from mail');
    expect(claimed.map((c) => c.queue)).toEqual(['reports']);
    expect((await getJob(t.db, seeded.queued[0]!))?.status).toBe('queued');
    const { rows } = await t.db.query('SELECT name, paused, paused_by, reason FROM queues');
    expect(rows).toEqual([
      { name: 'mail', paused: true, paused_by: 'dashboard:e2e', reason: 'INC-231 drain mail' },
    ]);
  });

  it('sets a queue limit through its form: asks first, stores it audited, a bad value is refused in the dialog', async () => {
    // Prepare
    await page.goto(server.url);
    const row = page.locator('tr[data-limit="mail"]');
    await row.waitFor();
    // Act: a max running past the server's bound first (the browser lets it through, the server
    // refuses it; nothing stored), then a good change.
    await row.locator('input[name="maxRunning"]').fill('2000000');
    await row.locator('input[name="rate"]').fill('20');
    await row.locator('input[name="burst"]').fill('40');
    await row.locator('button[type="submit"]').click();
    await page.locator('#confirm').waitFor({ state: 'visible' });
    const said = await text('#confirm-body');
    await page.locator('#confirm-ok').click();
    await page
      .locator('#confirm-error', { hasText: /maxRunning must be an integer from 1 to 1000000/ })
      .waitFor();
    const afterBad = (await t.db.query("SELECT max_running FROM queues WHERE name = 'mail'")).rows;
    await page.locator('#confirm-cancel').click();
    await row.locator('input[name="maxRunning"]').fill('3');
    await row.locator('button[type="submit"]').click();
    await page.locator('#confirm').waitFor({ state: 'visible' });
    await page.locator('#confirm-reason').fill('INC-232 SMTP quota');
    await page.locator('#confirm-ok').click();
    await page.locator('#confirm').waitFor({ state: 'hidden' });
    await page.locator('tr[data-limit="mail"] input[name="maxRunning"][value="3"]').waitFor();
    // Assess
    expect(said).toMatch(/Max running: none → 2000000/);
    expect(afterBad.every((r) => r.max_running === null)).toBe(true);
    const { rows } = await t.db.query(
      "SELECT max_running, rate_per_second, rate_burst FROM queues WHERE name = 'mail'",
    );
    expect(rows).toEqual([{ max_running: 3, rate_per_second: 20, rate_burst: 40 }]);
    const audit = await t.db.query("SELECT action, actor, reason FROM job_audit WHERE action = 'set-limit'");
    expect(audit.rows).toEqual([
      { action: 'set-limit', actor: 'dashboard:e2e', reason: 'INC-232 SMTP quota' },
    ]);
  });

  it('answers requests without the token with 401 and changes nothing, even from a page holding the cookie', async () => {
    // Prepare
    const before = await snapshot();
    const failed = seeded.failed[0]!;
    // Act: a fresh browser context has neither token nor cookie.
    const stranger = await browser.newContext();
    const anonymous = await stranger.newPage();
    const root = await anonymous.goto(`${origin()}/`);
    const rootBody = await root!.text();
    const api = await anonymous.goto(`${origin()}/api/dashboard/jobs/${failed}`);
    await stranger.close();
    // Act: the dashboard's own page (cookie set) posting without the header, as a forged form would.
    await page.goto(server.url);
    await page.waitForSelector('tr[data-queue="mail"]');
    const forged = await page.evaluate(async (id) => {
      const a = await fetch(`/api/dashboard/jobs/${id}/retry`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
      });
      const b = await fetch('/api/dashboard/queues/mail/pause', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
      });
      return [a.status, b.status];
    }, failed);
    // Assess
    expect(root?.status()).toBe(401);
    expect(JSON.parse(rootBody)).toMatchObject({ error: { code: 'unauthorized' } });
    expect(api?.status()).toBe(401);
    expect(forged).toEqual([401, 401]);
    expect(await snapshot()).toEqual(before);
  });

  it('a reload in the same tab keeps the change token (sessionStorage), though the reloaded page itself carries none', async () => {
    // Prepare
    await page.goto(server.url);
    await page.waitForSelector('tr[data-queue="reports"]');
    // Act: the address bar no longer has ?token=, so the reload is served on the read-only cookie.
    await page.reload();
    await page.waitForSelector('tr[data-queue="reports"]');
    const meta = await page.locator('meta[name="dashboard-token"]').getAttribute('content');
    const status = await page.evaluate(async () => {
      // Runs in the page: the test's tsconfig has no DOM types.
      const storage = (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } })
        .sessionStorage;
      const token = storage.getItem('dte-dashboard-token') ?? '';
      const res = await fetch('/api/dashboard/queues/reports/pause', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Dashboard-Token': token },
        body: '{"reason":"after reload"}',
      });
      return res.status;
    });
    // Assess
    expect(meta).toBe('');
    expect(status).toBe(200);
    const { rows } = await t.db.query("SELECT paused FROM queues WHERE name = 'reports'");
    expect(rows).toEqual([{ paused: true }]);
  });
});
