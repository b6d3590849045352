// The overview: queues with their counts and pause state, schedules, limits, the last hour's
// chart and the required metrics. Data: GET /api/dashboard/overview.

import { api } from '../api.js';
import { age, fmtTime } from '../format.js';
import { html, scrollPanel } from '../html.js';
import { jobsHash } from '../route.js';
import { pauseResumeButton } from './buttons.js';
import { chart } from './chart.js';
import { limitsPanel } from './limits.js';
import { schedulesPanel } from './schedules.js';

/** One row per queue: counts, oldest queued, past lease, pause and resume. */
export function queuesPanel(d) {
  return scrollPanel(
    'queues',
    'Queues',
    html`<table class="queues cards">
        <colgroup>
          <col class="col-queue" /><col class="col-num" /><col class="col-num" /><col class="col-num" />
          <col class="col-num" /><col class="col-num" /><col class="col-num" /><col class="col-state" /><col class="col-action" />
        </colgroup>
        <thead>
          <tr>
            <th scope="col">Queue</th><th scope="col" class="num">Queued</th><th scope="col" class="num">Running</th>
            <th scope="col" class="num">Completed</th><th scope="col" class="num">Failed</th>
            <th scope="col" class="num">Oldest queued</th><th scope="col" class="num">Past lease</th>
            <th scope="col">State</th><th scope="col"><span class="visually-hidden">Action</span></th>
          </tr>
        </thead>
        <tbody>
          ${d.queues.length === 0 ? html`<tr><td colspan="9" class="muted">No queues yet: enqueue a job (POST /jobs).</td></tr>` : ''}
          ${d.queues.map(
            (q) => html`<tr data-queue="${q.queue}">
              <th scope="row"><a href="${jobsHash({ queue: q.queue })}" data-key="q-${q.queue}">${q.queue}</a></th>
              <td class="num" data-col="queued" data-label="Queued">${q.queued}</td>
              <td class="num" data-col="running" data-label="Running">${q.running}</td>
              <td class="num" data-col="completed" data-label="Completed">${q.completed}</td>
              <td class="num" data-col="failed" data-label="Failed">${
                q.failed > 0
                  ? html`<a href="${jobsHash({ status: 'failed', queue: q.queue })}" data-key="qf-${q.queue}" class="warn">${q.failed}</a>`
                  : '0'
              }</td>
              <td class="num" data-col="oldest" data-label="Oldest queued">${q.queued > 0 ? age(q.oldestQueuedAgeSeconds) : '–'}</td>
              <td class="num" data-col="past-lease" data-label="Past lease">${
                q.pastLease > 0
                  ? html`<a href="${jobsHash({ status: 'running', queue: q.queue })}" class="warn">${q.pastLease}</a>`
                  : '0'
              }</td>
              <td data-col="state" data-label="State">${
                q.paused
                  ? html`<span class="paused" title="${`paused by ${q.pausedBy ?? '?'} at ${fmtTime(q.pausedAt)}${q.pauseReason ? `: ${q.pauseReason}` : ''}`}">Paused</span>`
                  : 'Active'
              }</td>
              <td>${pauseResumeButton(q.paused, { attr: 'queue', name: q.queue, key: `pr-${q.queue}` })}</td>
            </tr>`,
          )}
        </tbody>
      </table>`,
  );
}

/** The required metrics as the Pushgateway sees them, and the exposition text. */
export function metricsPanel(d) {
  return html`
  <section class="panel" aria-labelledby="metrics-h">
    <h2 id="metrics-h">Required metrics, as the Pushgateway sees them</h2>
    <table>
      <colgroup><col /><col class="col-attempts" /></colgroup>
      <tbody>
        ${Object.keys(d.metrics.values).map(
          (name) =>
            html`<tr data-metric="${name}"><th scope="row"><code>${name}</code></th><td class="num">${d.metrics.values[name]}</td></tr>`,
        )}
      </tbody>
    </table>
    <details data-key="exposition">
      <summary>Exposition text</summary>
      <pre>${d.metrics.text}</pre>
    </details>
  </section>`;
}

export const overview = {
  title: 'Overview',
  frame: () => html`<h1>Overview</h1><div id="live"></div>`,
  load: () => api('/overview'),
  render(d) {
    return html`
      ${queuesPanel(d)}
      <div class="grid-2">
        ${schedulesPanel(d)}
        ${limitsPanel(d)}
      </div>
      <div class="grid-2">
        <section class="panel chart" aria-labelledby="chart-h">
          <h2 id="chart-h">Completions and failures per minute, last hour</h2>
          ${chart(d.history)}
        </section>
        ${metricsPanel(d)}
      </div>`;
  },
};
