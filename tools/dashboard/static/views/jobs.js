// The jobs list: filters, search by id or idempotency key, paging by cursor, bulk retry of
// failed jobs. Data: GET /api/dashboard/jobs?….

import { api } from '../api.js';
import { badge, errorMessage, fmtTime, plural, since } from '../format.js';
import { html } from '../html.js';
import { jobsHash } from '../route.js';

const STATUSES = ['queued', 'running', 'completed', 'failed'];

export const jobs = {
  title: 'Jobs',
  frame(r) {
    const p = r.params;
    const opt = (v, label) =>
      html`<option value="${v}" ${p.get('status') === v ? html`selected` : ''}>${label}</option>`;
    return html`
      <h1>Jobs</h1>
      <section class="panel">
        <form id="filters" class="filters" aria-label="Filter jobs">
          <div class="field">
            <label for="f-status">Status</label>
            <select id="f-status" name="status">${opt('', 'any')}${STATUSES.map((s) => opt(s, s))}</select>
          </div>
          <div class="field">
            <label for="f-queue">Queue</label>
            <input id="f-queue" name="queue" value="${p.get('queue') ?? ''}" autocomplete="off" spellcheck="false" />
          </div>
          <div class="field">
            <label for="f-type">Type</label>
            <input id="f-type" name="type" value="${p.get('type') ?? ''}" autocomplete="off" spellcheck="false" />
          </div>
          <button type="submit" class="primary">Apply filters</button>
          <a href="#/jobs" class="button">Clear</a>
        </form>
        <form id="search" class="filters second" aria-label="Find a job">
          <div class="field">
            <label for="f-q">Find by id or idempotency key</label>
            <input id="f-q" name="q" class="wide" value="${p.get('q') ?? ''}" autocomplete="off" spellcheck="false" />
          </div>
          <button type="submit">Find</button>
        </form>
      </section>
      <div id="live"></div>`;
  },
  load(r) {
    const q = new URLSearchParams();
    for (const k of ['status', 'queue', 'type', 'before', 'q'])
      if (r.params.get(k)) q.set(k, r.params.get(k));
    return api(`/jobs?${q}`);
  },
  render(d, r) {
    const p = r.params;
    const filters = { status: p.get('status'), queue: p.get('queue'), type: p.get('type') };
    const searching = Boolean(p.get('q'));
    const described = searching
      ? `matching “${p.get('q')}”`
      : [
          filters.status && `status ${filters.status}`,
          filters.queue && `queue ${filters.queue}`,
          filters.type && `type ${filters.type}`,
        ]
          .filter(Boolean)
          .join(', ') || 'all jobs';
    const canBulk = !searching && filters.status === 'failed';
    return html`
      <section class="panel" aria-labelledby="list-h">
        <h2 id="list-h">${described}${p.get('before') ? ` · ids below ${p.get('before')}` : ''}, newest first</h2>
        <div class="actions">
          ${
            canBulk
              ? html`<button type="button" data-action="retry-all" data-key="retry-all">Retry all failed matching this filter…</button>`
              : html`<span class="muted">Filter to status “failed” to retry failed jobs in bulk.</span>`
          }
        </div>
        <div class="scroll">
          <table class="jobs cards">
            <colgroup>
              <col class="col-id" /><col class="col-status" /><col class="col-queue" /><col />
              <col class="col-attempts" /><col class="col-time" /><col />
            </colgroup>
            <thead>
              <tr>
                <th scope="col">ID</th><th scope="col">Status</th><th scope="col">Queue</th><th scope="col">Type</th>
                <th scope="col" class="num">Attempts</th><th scope="col">Updated</th><th scope="col">Worker / last error</th>
              </tr>
            </thead>
            <tbody>
              ${d.jobs.length === 0 ? html`<tr><td colspan="7" class="muted">No jobs match.</td></tr>` : ''}
              ${d.jobs.map(
                (j) => html`<tr data-job="${j.id}" data-status="${j.status}">
                  <td data-label="Job"><a href="#/jobs/${j.id}" data-key="j-${j.id}">${j.id}</a></td>
                  <td data-label="Status">${badge(j.status)}</td>
                  <td data-label="Queue" title="${j.queue}">${j.queue}</td>
                  <td data-label="Type" title="${j.type}">${j.type}</td>
                  <td class="num" data-label="Attempts">${j.attempts}/${j.maxAttempts}</td>
                  <td data-label="Updated">${fmtTime(j.updatedAt)}</td>
                  <td data-label="Detail" title="${errorMessage(j.lastError)}">${
                    j.status === 'running'
                      ? html`${j.lockedBy ?? ''}${
                          j.leaseExpiresAt && since(j.leaseExpiresAt, d.now) > 0
                            ? html` <span class="warn">past lease</span>`
                            : ''
                        }`
                      : errorMessage(j.lastError)
                  }</td>
                </tr>`,
              )}
            </tbody>
          </table>
        </div>
        <nav class="pager" aria-label="Pages">
          ${p.get('before') ? html`<a href="${jobsHash({ ...filters })}" data-key="newest">← Newest</a>` : html`<span class="muted">← Newest</span>`}
          ${
            d.nextCursor
              ? html`<a href="${jobsHash({ ...filters, before: d.nextCursor })}" data-key="older">Older →</a>`
              : html`<span class="muted">Older →</span>`
          }
          <span class="muted">${plural(d.jobs.length, 'job')} shown</span>
        </nav>
      </section>`;
  },
};
