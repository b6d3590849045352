// One job: its actions by status, last error, fields, lease, payload, result and the audit of
// manual actions. Data: GET /api/dashboard/jobs/<id>.

import { api } from '../api.js';
import { age, badge, fmtTime, json, since } from '../format.js';
import { html } from '../html.js';
import { jobsHash } from '../route.js';

export const job = {
  title: 'Job',
  frame: (r) => html`<p><a href="#/jobs">← Jobs</a></p><h1>Job ${r.id}</h1><div id="live"></div>`,
  load: (r) => api(`/jobs/${r.id}`),
  render(d) {
    const j = d.job;
    const err = j.lastError && typeof j.lastError === 'object' ? j.lastError : null;
    const leaseLeft = j.leaseExpiresAt ? -since(j.leaseExpiresAt, d.now) : null;
    return html`
      <div class="actions">
        ${badge(j.status)}
        ${j.status === 'failed' ? html`<button type="button" class="primary" data-action="retry" data-key="act-retry">Retry…</button>` : ''}
        ${j.status === 'running' ? html`<button type="button" data-action="requeue" data-key="act-requeue">Requeue (release lease)…</button>` : ''}
        ${j.status === 'queued' || j.status === 'running' ? html`<button type="button" class="danger" data-action="cancel" data-key="act-cancel">Cancel…</button>` : ''}
        ${j.status === 'completed' ? html`<span class="muted">Completed jobs are final: enqueue a new job to run it again.</span>` : ''}
      </div>
      <section class="panel" aria-labelledby="error-h">
        <h2 id="error-h">Last error</h2>
        ${
          err
            ? html`<dl class="kv">
                <dt>Name</dt><dd>${err.name ?? '–'}</dd>
                <dt>Message</dt><dd data-field="error-message">${err.message ?? '–'}</dd>
                ${err.attempt !== undefined ? html`<dt>Attempt</dt><dd>${err.attempt}</dd>` : ''}
                ${err.worker ? html`<dt>Worker</dt><dd>${err.worker}</dd>` : ''}
                ${err.actor ? html`<dt>By</dt><dd>${err.actor}${err.at ? ` at ${fmtTime(err.at)}` : ''}</dd>` : ''}
              </dl>
              ${err.stack ? html`<h3 class="visually-hidden">Stack</h3><pre aria-label="Stack trace">${err.stack}</pre>` : ''}
              <details data-key="error-json"><summary>As stored (JSON)</summary><pre>${json(j.lastError)}</pre></details>`
            : html`<p class="muted">None.</p>`
        }
      </section>
      <div class="grid-2">
        <section class="panel" aria-labelledby="job-h">
          <h2 id="job-h">Job</h2>
          <dl class="kv">
            <dt>Queue</dt><dd><a href="${jobsHash({ queue: j.queue })}">${j.queue}</a></dd>
            <dt>Type</dt><dd>${j.type}</dd>
            <dt>Status</dt><dd data-field="status">${j.status}</dd>
            <dt>Attempts</dt><dd data-field="attempts">${j.attempts} of ${j.maxAttempts}</dd>
            <dt>Priority</dt><dd>${j.priority}</dd>
            <dt>Run at</dt><dd>${fmtTime(j.runAt)}</dd>
            <dt>Created</dt><dd>${fmtTime(j.createdAt)}</dd>
            <dt>Started</dt><dd>${fmtTime(j.startedAt)}</dd>
            <dt>Finished</dt><dd>${fmtTime(j.finishedAt)}</dd>
            <dt>Updated</dt><dd>${fmtTime(j.updatedAt)}</dd>
            <dt>Idempotency key</dt><dd>${j.idempotencyKey ?? '–'}</dd>
          </dl>
        </section>
        <section class="panel" aria-labelledby="lease-h">
          <h2 id="lease-h">Lease</h2>
          <dl class="kv">
            <dt>Locked by</dt><dd>${j.lockedBy ?? '–'}</dd>
            <dt>Locked at</dt><dd>${fmtTime(j.lockedAt)}</dd>
            <dt>Lease</dt><dd>${j.leaseSeconds} s</dd>
            <dt>Expires</dt><dd>${
              j.leaseExpiresAt
                ? html`${fmtTime(j.leaseExpiresAt)} ${
                    leaseLeft < 0
                      ? html`<span class="warn">(expired ${age(-leaseLeft)} ago)</span>`
                      : html`<span class="muted">(in ${age(leaseLeft)})</span>`
                  }`
                : '–'
            }</dd>
            <dt>Lease token</dt><dd>${j.leaseToken}</dd>
          </dl>
        </section>
      </div>
      <div class="grid-2">
        <section class="panel" aria-labelledby="payload-h">
          <h2 id="payload-h">Payload</h2>
          <pre>${json(j.payload)}</pre>
        </section>
        <section class="panel" aria-labelledby="result-h">
          <h2 id="result-h">Result</h2>
          <pre>${json(j.result)}</pre>
        </section>
      </div>
      <section class="panel" aria-labelledby="audit-h">
        <h2 id="audit-h">Manual actions</h2>
        <div class="scroll">
          <table class="audit">
            <colgroup><col class="col-time" /><col class="col-status" /><col class="col-queue" /><col /></colgroup>
            <thead><tr><th scope="col">At</th><th scope="col">Action</th><th scope="col">By</th><th scope="col">Reason</th></tr></thead>
            <tbody>
              ${d.audit.length === 0 ? html`<tr><td colspan="4" class="muted">No manual actions.</td></tr>` : ''}
              ${d.audit.map(
                (a) =>
                  html`<tr data-audit="${a.action}"><td>${fmtTime(a.at)}</td><td>${a.action}</td><td title="${a.actor}">${a.actor}</td><td title="${a.reason ?? ''}">${a.reason ?? '–'}</td></tr>`,
              )}
            </tbody>
          </table>
        </div>
      </section>`;
  },
};
