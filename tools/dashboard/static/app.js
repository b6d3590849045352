// The dashboard page: plain DOM and native ES modules, no build step. This entry wires the
// page's events; api.js talks to the server, route.js reads the hash, views/ render each page,
// live.js paints and refreshes, confirm.js and actions.js make the operator's changes.

import { ACTIONS, setLimits } from './actions.js';
import { navigate, notify, refresh, state } from './live.js';
import { jobsHash } from './route.js';

document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button || !state.data) return;
  notify('');
  ACTIONS[button.dataset.action]?.(button);
});

document.addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.target;
  if (form.dataset.limits !== undefined) {
    if (state.data) setLimits(form);
    return;
  }
  const values = Object.fromEntries(new FormData(form).entries());
  const trimmed = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, String(v).trim()]));
  location.hash = jobsHash(form.id === 'search' ? { q: trimmed.q } : trimmed);
});

window.addEventListener('hashchange', () => {
  notify('');
  navigate(true);
});
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh();
});

navigate(false);
