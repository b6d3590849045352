// The overview's per-queue limits panel: max running, rate and burst (read-only here).

import { html } from '../html.js';

/** Queue limits (taskctl queue set-limit, POST /queues/{name}/limits). */
export function limitsPanel(d) {
  return html`
  <section class="panel" aria-labelledby="limits-h">
    <h2 id="limits-h">Queue limits</h2>
    <table class="limits">
      <thead>
        <tr><th scope="col">Queue</th><th scope="col" class="num">Max running</th><th scope="col" class="num">Rate/s</th><th scope="col" class="num">Burst</th></tr>
      </thead>
      <tbody>
        ${(d.limits ?? []).length === 0 ? html`<tr><td colspan="4" class="muted">No limits: taskctl queue set-limit, or POST /queues/{name}/limits.</td></tr>` : ''}
        ${(d.limits ?? []).map(
          (l) => html`<tr data-limit="${l.name}">
            <th scope="row">${l.name}</th>
            <td class="num">${l.maxRunning ?? '–'}</td>
            <td class="num">${l.ratePerSecond ?? '–'}</td>
            <td class="num">${l.rateBurst ?? '–'}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}
