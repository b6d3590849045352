// Buttons shared by the overview's panels (actions.js handles them by their data-action).

import { html } from '../html.js';

/**
 * The Pause or Resume button of a queue (actions pause/resume, data-queue) or a schedule
 * (schedule-pause/schedule-resume, data-schedule); `key` keeps its focus across refreshes.
 */
export function pauseResumeButton(paused, { prefix = '', attr, name, key }) {
  const verb = paused ? 'resume' : 'pause';
  return html`<button type="button" data-action="${prefix}${verb}" data-${attr}="${name}" data-key="${key}">${paused ? 'Resume' : 'Pause'}</button>`;
}
