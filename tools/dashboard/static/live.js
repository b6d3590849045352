// Painting and refreshing: a view's frame is rendered on navigation, its live region every
// REFRESH_MS only when its HTML changed, keeping focus, open <details> and typed field values,
// so typing in a filter or a limit, or tabbing through a table, is never interrupted by a refresh.

import { clock } from './format.js';
import { html } from './html.js';
import { currentRoute } from './route.js';
import { VIEWS } from './views/index.js';

const REFRESH_MS = 5000;

/** The route shown, the data its live region was last rendered from, and that region's HTML. */
export const state = { route: null, data: null, live: '' };

const viewEl = document.getElementById('view');
const statusEl = document.getElementById('refresh-status');
const noticeEl = document.getElementById('notice');
const dialog = document.getElementById('confirm');
let timer;
let generation = 0;
let stopped = false;

/** Replaces the live region only when its HTML changed; focus and open <details> survive. */
function paintLive(markup) {
  const live = document.getElementById('live');
  if (!live || markup === state.live) return;
  const focusedKey = document.activeElement?.closest?.('#live')
    ? document.activeElement.dataset.key
    : undefined;
  const open = new Set([...live.querySelectorAll('details[open][data-key]')].map((d) => d.dataset.key));
  // What the operator typed into a field (a queue's limits) and has not sent yet.
  const typed = [...live.querySelectorAll('input[data-key]')]
    .filter((i) => i.value !== i.defaultValue)
    .map((i) => [i.dataset.key, i.value]);
  live.innerHTML = markup;
  state.live = markup;
  for (const d of live.querySelectorAll('details[data-key]')) if (open.has(d.dataset.key)) d.open = true;
  for (const [key, value] of typed) {
    const input = live.querySelector(`input[data-key="${CSS.escape(key)}"]`);
    if (input) input.value = value;
  }
  if (focusedKey) live.querySelector(`[data-key="${CSS.escape(focusedKey)}"]`)?.focus();
}

function setStatus(text, stale = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle('stale', stale);
}

export function schedule() {
  clearTimeout(timer);
  if (!stopped) timer = setTimeout(() => refresh(), REFRESH_MS);
}

export async function refresh() {
  // While a confirmation is open, what it describes must not change under the operator.
  if (dialog.open || document.hidden) return schedule();
  const route = currentRoute();
  const view = VIEWS[route.view];
  const gen = ++generation;
  try {
    const data = await view.load(route);
    if (gen !== generation) return;
    state.data = data;
    paintLive(view.render(data, route).text);
    setStatus(`updated ${clock()} · every ${REFRESH_MS / 1000} s`);
  } catch (e) {
    if (gen !== generation) return;
    if (e.status === 401) {
      stopped = true;
      setStatus('access token rejected: open the URL printed at start', true);
    } else if (e.status === 404 && route.view === 'job') {
      paintLive(html`<p class="banner" role="alert">${e.message}</p>`.text);
      setStatus('not found', true);
    } else if (e.status === 400) {
      paintLive(html`<p class="banner" role="alert">${e.message}</p>`.text);
      setStatus('bad filter', true);
    } else {
      setStatus(`refresh failed (${e.message}); retrying`, true);
    }
  }
  schedule();
}

export function navigate(moveFocus) {
  const route = currentRoute();
  const view = VIEWS[route.view];
  state.route = route;
  state.live = '';
  state.data = null;
  document.title = `${view.title === 'Job' ? `Job ${route.id}` : view.title} · durable-task-engine`;
  for (const a of document.querySelectorAll('[data-nav]')) {
    const current = a.dataset.nav === (route.view === 'job' ? 'jobs' : route.view);
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  viewEl.innerHTML = view.frame(route).text;
  if (moveFocus) document.getElementById('main').focus();
  refresh();
}

export function notify(text) {
  noticeEl.textContent = text;
}
