// The overview's per-queue limits panel: max running, rate and burst, each queue with a small
// form to set them (an empty field removes that limit); actions.js asks before it changes them.
// Each row also shows the queue's retention (keep or delete), read-only here: it is set with
// taskctl queue set-retention or POST /queues/{name}/retention.

import { html } from '../html.js';

/** Every queue the page knows of (a queue with limits but no jobs yet included), by name. */
function limitRows(d) {
  const byName = new Map((d.limits ?? []).map((l) => [l.name, l]));
  for (const q of d.queues ?? []) {
    if (!byName.has(q.queue))
      byName.set(q.queue, { name: q.queue, maxRunning: null, ratePerSecond: null, rateBurst: null });
  }
  const deleting = new Set((d.retention ?? []).filter((r) => r.retention === 'delete').map((r) => r.name));
  for (const r of d.retention ?? []) {
    if (!byName.has(r.name))
      byName.set(r.name, { name: r.name, maxRunning: null, ratePerSecond: null, rateBurst: null });
  }
  return [...byName.values()]
    .map((l) => ({ ...l, retention: deleting.has(l.name) ? 'delete' : 'keep' }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const field = (l, name, label, value, step) =>
  html`<label class="limit-field"><span class="visually-hidden">${label} for ${l.name}</span>
    <input form="limits-${l.name}" name="${name}" type="number" inputmode="decimal" min="${step === 'any' ? '0' : '1'}" step="${step}" value="${value ?? ''}" placeholder="none" data-key="lim-${name}-${l.name}" /></label>`;

/** Queue limits (also taskctl queue set-limit, POST /queues/{name}/limits). */
export function limitsPanel(d) {
  const rows = limitRows(d);
  return html`
  <section class="panel" aria-labelledby="limits-h">
    <h2 id="limits-h">Queue limits</h2>
    <p class="muted">Empty removes a limit; the burst defaults to one second's worth of the rate.</p>
    <table class="limits">
      <thead>
        <tr><th scope="col">Queue</th><th scope="col" class="num">Max running</th><th scope="col" class="num">Rate/s</th><th scope="col" class="num">Burst</th><th scope="col">Retention</th><th scope="col"><span class="visually-hidden">Action</span></th></tr>
      </thead>
      <tbody>
        ${rows.length === 0 ? html`<tr><td colspan="6" class="muted">No queues yet: limits can be set once a queue exists, or with taskctl queue set-limit.</td></tr>` : ''}
        ${rows.map(
          (l) => html`<tr data-limit="${l.name}">
            <th scope="row">${l.name}</th>
            <td class="num" data-col="max-running">${field(l, 'maxRunning', 'Max running', l.maxRunning, '1')}</td>
            <td class="num" data-col="rate">${field(l, 'rate', 'Rate per second', l.ratePerSecond, 'any')}</td>
            <td class="num" data-col="burst">${field(l, 'burst', 'Burst', l.rateBurst, '1')}</td>
            <td data-col="retention" title="${l.retention === 'delete' ? 'completed jobs are deleted as they complete' : 'completed jobs are kept for the retention'}">${l.retention}</td>
            <td><form class="limit-form" id="limits-${l.name}" data-limits="${l.name}"><button type="submit" data-key="lim-set-${l.name}">Set</button></form></td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}
