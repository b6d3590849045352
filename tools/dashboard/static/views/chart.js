// The overview's chart: completions and failures per minute as an SVG bar chart, with a text
// summary for screen readers and a table of the minutes with activity.

import { hhmm } from '../format.js';
import { html } from '../html.js';

export function chart(history) {
  const W = 600;
  const H = 170;
  const left = 34;
  const bottom = 18;
  const top = 8;
  const slot = (W - left) / Math.max(history.length, 1);
  const max = Math.max(1, ...history.map((m) => Math.max(m.completed, m.failed)));
  const scale = (v) => ((H - top - bottom) * v) / max;
  const totals = history.reduce((t, m) => ({ c: t.c + m.completed, f: t.f + m.failed }), { c: 0, f: 0 });
  const bars = history.map((m, i) => {
    const x = left + i * slot;
    const bw = Math.max(1, slot / 2 - 0.5);
    const hc = scale(m.completed);
    const hf = scale(m.failed);
    return html`<g><title>${hhmm(m.minute)}: ${m.completed} completed, ${m.failed} failed</title>
      <rect class="bar-completed" x="${x.toFixed(1)}" y="${(H - bottom - hc).toFixed(1)}" width="${bw.toFixed(1)}" height="${hc.toFixed(1)}"></rect>
      <rect class="bar-failed" x="${(x + bw).toFixed(1)}" y="${(H - bottom - hf).toFixed(1)}" width="${bw.toFixed(1)}" height="${hf.toFixed(1)}"></rect></g>`;
  });
  const first = history[0];
  const last = history[history.length - 1];
  const summary = `Last ${history.length} minutes: ${totals.c} completed, ${totals.f} failed; busiest minute ${max} jobs.`;
  return html`
    <svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${summary}">
      <line class="axis" x1="${left}" y1="${H - bottom}" x2="${W}" y2="${H - bottom}"></line>
      <line class="axis" x1="${left}" y1="${top}" x2="${W}" y2="${top}" stroke-dasharray="3 3"></line>
      <text x="${left - 4}" y="${top + 4}" text-anchor="end">${max}</text>
      <text x="${left - 4}" y="${H - bottom}" text-anchor="end">0</text>
      ${first ? html`<text x="${left}" y="${H - 4}">${hhmm(first.minute)}</text>` : ''}
      ${last ? html`<text x="${W}" y="${H - 4}" text-anchor="end">${hhmm(last.minute)}</text>` : ''}
      ${bars}
    </svg>
    <p class="legend">
      <span><span class="swatch completed"></span>completed: ${totals.c}</span>
      <span><span class="swatch failed"></span>failed: ${totals.f}</span>
    </p>
    <details data-key="chart-table">
      <summary>Minutes with activity</summary>
      <table>
        <thead><tr><th scope="col">Minute</th><th scope="col" class="num">Completed</th><th scope="col" class="num">Failed</th></tr></thead>
        <tbody>
          ${history
            .filter((m) => m.completed + m.failed > 0)
            .map(
              (m) =>
                html`<tr><td>${hhmm(m.minute)}</td><td class="num">${m.completed}</td><td class="num">${m.failed}</td></tr>`,
            )}
        </tbody>
      </table>
    </details>`;
}
