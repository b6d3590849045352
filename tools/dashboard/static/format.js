// Formatting of server values: times as the server sent them, ages as taskctl prints them.

import { age } from './age.js';
import { html } from './html.js';

export { age };

export const pad = (n) => String(n).padStart(2, '0');
export function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
export const hhmm = (iso) => {
  const d = new Date(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
};
/** Time between a server timestamp and the server's own now (no client clock involved). */
export const since = (iso, nowIso) => (new Date(nowIso).getTime() - new Date(iso).getTime()) / 1000;
export const json = (v) => (v === null || v === undefined ? 'null' : JSON.stringify(v, null, 2));
export const badge = (status) => html`<span class="badge s-${status}">${status}</span>`;
export const errorMessage = (e) =>
  e && typeof e === 'object' && 'message' in e ? String(e.message) : e ? JSON.stringify(e) : '';
export const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
/** The browser's clock as hh:mm:ss (the "updated" line only). */
export function clock(now = new Date()) {
  return `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
}
