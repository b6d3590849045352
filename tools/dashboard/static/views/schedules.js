// The overview's schedules panel: each schedule's cron, target and next time, pause and resume.

import { fmtTime } from '../format.js';
import { html, scrollPanel } from '../html.js';
import { pauseResumeButton } from './buttons.js';

/** Schedules (taskctl schedule add, POST /schedules, or defined in code). */
export function schedulesPanel(d) {
  return scrollPanel(
    'schedules',
    'Schedules',
    html`<table class="schedules">
        <thead>
          <tr>
            <th scope="col">Schedule</th><th scope="col">Cron</th><th scope="col">Type → queue</th>
            <th scope="col">Next</th><th scope="col">State</th><th scope="col"><span class="visually-hidden">Action</span></th>
          </tr>
        </thead>
        <tbody>
          ${(d.schedules ?? []).length === 0 ? html`<tr><td colspan="6" class="muted">No schedules: taskctl schedule add, or POST /schedules.</td></tr>` : ''}
          ${(d.schedules ?? []).map(
            (s) => html`<tr data-schedule="${s.name}">
              <th scope="row">${s.name}${s.source === 'code' ? html` <span class="muted">(code)</span>` : ''}</th>
              <td><code>${s.cron}</code> ${s.timezone}</td>
              <td>${s.type} → ${s.queue}</td>
              <td>${s.nextAt ? fmtTime(s.nextAt) : '–'}</td>
              <td>${s.enabled ? 'Active' : html`<span class="paused">Paused</span>`}</td>
              <td>${pauseResumeButton(!s.enabled, { prefix: 'schedule-', attr: 'schedule', name: s.name, key: `sp-${s.name}` })}</td>
            </tr>`,
          )}
        </tbody>
      </table>`,
  );
}
