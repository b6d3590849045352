// The dashboard page: plain DOM, no build step. Each view has a frame (rendered on navigation:
// headings, filter forms) and a live region (re-rendered every REFRESH_MS only when its HTML
// changed, keeping focus and open <details>), so typing in a filter or tabbing through a table
// is never interrupted by a refresh.

const REFRESH_MS = 5000;
// The server puts the change token in the page only when it was opened with it (the printed
// URL); reloads are served on the read-only cookie and take it from this tab's sessionStorage,
// which, unlike cookies, is kept per origin including the port.
const token = (() => {
  const shown = document.querySelector('meta[name="dashboard-token"]').content;
  try {
    if (shown) sessionStorage.setItem('dte-dashboard-token', shown);
    return shown || sessionStorage.getItem('dte-dashboard-token') || '';
  } catch {
    return shown;
  }
})();
const actor = document.querySelector('meta[name="dashboard-actor"]').content;

// The cookie carries later loads: keep the token out of the address bar, history and screenshots.
if (new URLSearchParams(location.search).has('token')) {
  history.replaceState(null, '', location.pathname + location.hash);
}

// ---------------------------------------------------------------------------------------------
// HTML with every interpolation escaped unless it is itself html`…`.

class Html {
  constructor(text) {
    this.text = text;
  }
  toString() {
    return this.text;
  }
}
const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ESC[c]);
const show = (v) => (v instanceof Html ? v.text : Array.isArray(v) ? v.map(show).join('') : esc(v));
function html(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => {
    out += show(v) + strings[i + 1];
  });
  return new Html(out);
}

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { 'X-Dashboard-Token': token, Accept: 'application/json' };
  if (method !== 'GET') headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/dashboard${path}`, {
      method,
      headers,
      body: method === 'GET' ? undefined : JSON.stringify(body ?? {}),
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, 'unreachable', 'the dashboard server did not answer');
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    throw new ApiError(
      res.status,
      data?.error?.code ?? `http_${res.status}`,
      data?.error?.message ?? res.statusText,
    );
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const pad = (n) => String(n).padStart(2, '0');
function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
const hhmm = (iso) => {
  const d = new Date(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
};
/** 75 → "1m15s", as taskctl prints it. */
function age(seconds) {
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return [d && `${d}d`, h && `${h}h`, m && `${m}m`, (s || (!d && !h && !m)) && `${s}s`]
    .filter(Boolean)
    .join('');
}
/** Time between a server timestamp and the server's own now (no client clock involved). */
const since = (iso, nowIso) => (new Date(nowIso).getTime() - new Date(iso).getTime()) / 1000;
const json = (v) => (v === null || v === undefined ? 'null' : JSON.stringify(v, null, 2));
const badge = (status) => html`<span class="badge s-${status}">${status}</span>`;
const errorMessage = (e) =>
  e && typeof e === 'object' && 'message' in e ? String(e.message) : e ? JSON.stringify(e) : '';
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

// ---------------------------------------------------------------------------------------------
// Routing: #/ overview, #/jobs?status=…&queue=…&type=…&before=…&q=…, #/jobs/<id>

function currentRoute() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = hash.split('?');
  const params = new URLSearchParams(query);
  const job = /^\/jobs\/(\d{1,19})$/.exec(path);
  if (path === '/' || path === '') return { view: 'overview', params };
  if (path === '/jobs') return { view: 'jobs', params };
  if (job) return { view: 'job', id: job[1], params };
  return { view: 'missing', params };
}

function jobsHash(filters) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) p.set(k, v);
  const q = p.toString();
  return `#/jobs${q ? `?${q}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Views

const state = { route: null, data: null, live: '' };

const overview = {
  title: 'Overview',
  frame: () => html`<h1>Overview</h1><div id="live"></div>`,
  load: () => api('/overview'),
  render(d) {
    return html`
      <section class="panel" aria-labelledby="queues-h">
        <h2 id="queues-h">Queues</h2>
        <div class="scroll">
          <table class="queues cards">
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
                  <td>${
                    q.paused
                      ? html`<button type="button" data-action="resume" data-queue="${q.queue}" data-key="pr-${q.queue}">Resume</button>`
                      : html`<button type="button" data-action="pause" data-queue="${q.queue}" data-key="pr-${q.queue}">Pause</button>`
                  }</td>
                </tr>`,
              )}
            </tbody>
          </table>
        </div>
      </section>
      <div class="grid-2">
        <section class="panel" aria-labelledby="schedules-h">
          <h2 id="schedules-h">Schedules</h2>
          <div class="scroll">
            <table class="schedules">
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
                    <td>${
                      s.enabled
                        ? html`<button type="button" data-action="schedule-pause" data-schedule="${s.name}" data-key="sp-${s.name}">Pause</button>`
                        : html`<button type="button" data-action="schedule-resume" data-schedule="${s.name}" data-key="sp-${s.name}">Resume</button>`
                    }</td>
                  </tr>`,
                )}
              </tbody>
            </table>
          </div>
        </section>
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
        </section>
      </div>
      <div class="grid-2">
        <section class="panel chart" aria-labelledby="chart-h">
          <h2 id="chart-h">Completions and failures per minute, last hour</h2>
          ${chart(d.history)}
        </section>
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
        </section>
      </div>`;
  },
};

function chart(history) {
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

const STATUSES = ['queued', 'running', 'completed', 'failed'];

const jobs = {
  title: 'Jobs',
  frame(r) {
    const p = r.params;
    const opt = (v, label) =>
      html`<option value="${v}" ${p.get('status') === v ? html`selected` : ''}>${label}</option>`;
    return html`
      <h1>Jobs</h1>
      <section class="panel">
        <form id="filters" class="filters" aria-label="Filter jobs">
          <div class="field">
            <label for="f-status">Status</label>
            <select id="f-status" name="status">${opt('', 'any')}${STATUSES.map((s) => opt(s, s))}</select>
          </div>
          <div class="field">
            <label for="f-queue">Queue</label>
            <input id="f-queue" name="queue" value="${p.get('queue') ?? ''}" autocomplete="off" spellcheck="false" />
          </div>
          <div class="field">
            <label for="f-type">Type</label>
            <input id="f-type" name="type" value="${p.get('type') ?? ''}" autocomplete="off" spellcheck="false" />
          </div>
          <button type="submit" class="primary">Apply filters</button>
          <a href="#/jobs" class="button">Clear</a>
        </form>
        <form id="search" class="filters second" aria-label="Find a job">
          <div class="field">
            <label for="f-q">Find by id or idempotency key</label>
            <input id="f-q" name="q" class="wide" value="${p.get('q') ?? ''}" autocomplete="off" spellcheck="false" />
          </div>
          <button type="submit">Find</button>
        </form>
      </section>
      <div id="live"></div>`;
  },
  load(r) {
    const q = new URLSearchParams();
    for (const k of ['status', 'queue', 'type', 'before', 'q'])
      if (r.params.get(k)) q.set(k, r.params.get(k));
    return api(`/jobs?${q}`);
  },
  render(d, r) {
    const p = r.params;
    const filters = { status: p.get('status'), queue: p.get('queue'), type: p.get('type') };
    const searching = Boolean(p.get('q'));
    const described = searching
      ? `matching “${p.get('q')}”`
      : [
          filters.status && `status ${filters.status}`,
          filters.queue && `queue ${filters.queue}`,
          filters.type && `type ${filters.type}`,
        ]
          .filter(Boolean)
          .join(', ') || 'all jobs';
    const canBulk = !searching && filters.status === 'failed';
    return html`
      <section class="panel" aria-labelledby="list-h">
        <h2 id="list-h">${described}${p.get('before') ? ` · ids below ${p.get('before')}` : ''}, newest first</h2>
        <div class="actions">
          ${
            canBulk
              ? html`<button type="button" data-action="retry-all" data-key="retry-all">Retry all failed matching this filter…</button>`
              : html`<span class="muted">Filter to status “failed” to retry failed jobs in bulk.</span>`
          }
        </div>
        <div class="scroll">
          <table class="jobs cards">
            <colgroup>
              <col class="col-id" /><col class="col-status" /><col class="col-queue" /><col />
              <col class="col-attempts" /><col class="col-time" /><col />
            </colgroup>
            <thead>
              <tr>
                <th scope="col">ID</th><th scope="col">Status</th><th scope="col">Queue</th><th scope="col">Type</th>
                <th scope="col" class="num">Attempts</th><th scope="col">Updated</th><th scope="col">Worker / last error</th>
              </tr>
            </thead>
            <tbody>
              ${d.jobs.length === 0 ? html`<tr><td colspan="7" class="muted">No jobs match.</td></tr>` : ''}
              ${d.jobs.map(
                (j) => html`<tr data-job="${j.id}" data-status="${j.status}">
                  <td data-label="Job"><a href="#/jobs/${j.id}" data-key="j-${j.id}">${j.id}</a></td>
                  <td data-label="Status">${badge(j.status)}</td>
                  <td data-label="Queue" title="${j.queue}">${j.queue}</td>
                  <td data-label="Type" title="${j.type}">${j.type}</td>
                  <td class="num" data-label="Attempts">${j.attempts}/${j.maxAttempts}</td>
                  <td data-label="Updated">${fmtTime(j.updatedAt)}</td>
                  <td data-label="Detail" title="${errorMessage(j.lastError)}">${
                    j.status === 'running'
                      ? html`${j.lockedBy ?? ''}${
                          j.leaseExpiresAt && since(j.leaseExpiresAt, d.now) > 0
                            ? html` <span class="warn">past lease</span>`
                            : ''
                        }`
                      : errorMessage(j.lastError)
                  }</td>
                </tr>`,
              )}
            </tbody>
          </table>
        </div>
        <nav class="pager" aria-label="Pages">
          ${p.get('before') ? html`<a href="${jobsHash({ ...filters })}" data-key="newest">← Newest</a>` : html`<span class="muted">← Newest</span>`}
          ${
            d.nextCursor
              ? html`<a href="${jobsHash({ ...filters, before: d.nextCursor })}" data-key="older">Older →</a>`
              : html`<span class="muted">Older →</span>`
          }
          <span class="muted">${plural(d.jobs.length, 'job')} shown</span>
        </nav>
      </section>`;
  },
};

const job = {
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

const missing = {
  title: 'Not found',
  frame: () =>
    html`<h1>Not found</h1><p>No such page. <a href="#/">Back to the overview</a>.</p><div id="live"></div>`,
  load: async () => null,
  render: () => html``,
};

const VIEWS = { overview, jobs, job, missing };

// ---------------------------------------------------------------------------------------------
// Painting and refreshing

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
  live.innerHTML = markup;
  state.live = markup;
  for (const d of live.querySelectorAll('details[data-key]')) if (open.has(d.dataset.key)) d.open = true;
  if (focusedKey) live.querySelector(`[data-key="${CSS.escape(focusedKey)}"]`)?.focus();
}

function setStatus(text, stale = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle('stale', stale);
}

function schedule() {
  clearTimeout(timer);
  if (!stopped) timer = setTimeout(() => refresh(), REFRESH_MS);
}

async function refresh() {
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
    const now = new Date();
    setStatus(
      `updated ${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())} · every ${REFRESH_MS / 1000} s`,
    );
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

function navigate(moveFocus) {
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

function notify(text) {
  noticeEl.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Confirmations: every change says what will happen and asks first.

const confirmTitle = document.getElementById('confirm-title');
const confirmBody = document.getElementById('confirm-body');
const confirmReason = document.getElementById('confirm-reason');
const confirmReasonField = document.getElementById('confirm-reason-field');
const confirmReasonHint = document.getElementById('confirm-reason-hint');
const confirmError = document.getElementById('confirm-error');
const confirmOk = document.getElementById('confirm-ok');
const confirmCancel = document.getElementById('confirm-cancel');
let pending = null;

function ask({ title, body, confirmLabel, danger = false, reason = 'optional', defaultReason = '', run }) {
  pending = { run, reason };
  confirmTitle.textContent = title;
  confirmBody.innerHTML = body.text;
  confirmReasonField.hidden = reason === 'none';
  confirmReasonHint.textContent =
    reason === 'required' ? '(required, kept in the audit)' : '(optional, kept in the audit)';
  confirmReason.value = '';
  confirmReason.placeholder = defaultReason;
  confirmReason.required = reason === 'required';
  confirmError.textContent = '';
  confirmOk.textContent = confirmLabel;
  confirmOk.className = danger ? 'danger' : 'primary';
  confirmOk.disabled = false;
  confirmCancel.disabled = false;
  dialog.showModal();
  (reason === 'none' ? confirmCancel : confirmReason).focus();
}

confirmCancel.addEventListener('click', () => dialog.close());
dialog.addEventListener('close', () => {
  pending = null;
  schedule();
});
confirmOk.addEventListener('click', async () => {
  if (!pending) return;
  const reason = confirmReason.value.trim();
  if (pending.reason === 'required' && reason === '') {
    confirmError.textContent = 'Give a reason: it is kept with the job and in the audit.';
    confirmReason.focus();
    return;
  }
  confirmOk.disabled = true;
  confirmCancel.disabled = true;
  try {
    const message = await pending.run(reason || undefined);
    dialog.close();
    notify(message);
    refresh();
  } catch (e) {
    confirmError.textContent = e.message;
    confirmOk.disabled = false;
    confirmCancel.disabled = false;
  }
});

const describeJob = (j) =>
  html`job <strong>${j.id}</strong> (<code>${j.type}</code> in queue <code>${j.queue}</code>)`;

const ACTIONS = {
  'schedule-pause'(button) {
    const name = button.dataset.schedule;
    ask({
      title: `Pause schedule ${name}?`,
      body: html`<p>No further occurrences of <code>${name}</code> are enqueued until it is resumed; jobs already enqueued stay.
        Recorded as <code>schedule-pause</code> by <code>${actor}</code>.</p>`,
      confirmLabel: 'Pause schedule',
      danger: true,
      run: async (reason) => {
        await api(`/schedules/${encodeURIComponent(name)}/pause`, { method: 'POST', body: { reason } });
        return `Schedule ${name} is paused.`;
      },
    });
  },
  'schedule-resume'(button) {
    const name = button.dataset.schedule;
    ask({
      title: `Resume schedule ${name}?`,
      body: html`<p>Occurrences of <code>${name}</code> are enqueued again; its catchUp setting decides what happens to the ones
        missed while it was paused. Recorded as <code>schedule-resume</code> by <code>${actor}</code>.</p>`,
      confirmLabel: 'Resume schedule',
      run: async (reason) => {
        await api(`/schedules/${encodeURIComponent(name)}/resume`, { method: 'POST', body: { reason } });
        return `Schedule ${name} is active again.`;
      },
    });
  },
  retry() {
    const j = state.data.job;
    ask({
      title: `Retry job ${j.id}?`,
      body: html`<p>${describeJob(j)} goes from <strong>failed</strong> back to <strong>queued</strong> with a fresh retry
        budget (attempts ${j.attempts}/${j.maxAttempts} → 0/${j.maxAttempts}); a consumer runs it again as soon as it claims it.</p>
        <p>Recorded in the job's audit as <code>retry-failed</code> by <code>${actor}</code>. If the job changed since this page
        loaded, nothing changes.</p>`,
      confirmLabel: 'Retry job',
      defaultReason: 'retried from the dashboard',
      run: async (reason) => {
        await api(`/jobs/${j.id}/retry`, { method: 'POST', body: { reason, leaseToken: j.leaseToken } });
        return `Job ${j.id} is queued again.`;
      },
    });
  },
  requeue() {
    const j = state.data.job;
    ask({
      title: `Requeue job ${j.id}?`,
      body: html`<p>${describeJob(j)} is <strong>running</strong> on <code>${j.lockedBy ?? 'unknown worker'}</code>. Its lease is
        released and it goes back to <strong>queued</strong>; attempts stay at ${j.attempts}/${j.maxAttempts}. Counted as recovered.</p>
        <p>Fenced on lease token ${j.leaseToken}: if the worker completes it first, or it was claimed again, nothing changes.
        Recorded as <code>requeue</code> by <code>${actor}</code>.</p>`,
      confirmLabel: 'Requeue job',
      defaultReason: 'requeued from the dashboard',
      run: async (reason) => {
        await api(`/jobs/${j.id}/requeue`, { method: 'POST', body: { reason, leaseToken: j.leaseToken } });
        return `Job ${j.id} was released back to the queue.`;
      },
    });
  },
  cancel() {
    const j = state.data.job;
    ask({
      title: `Cancel job ${j.id}?`,
      body: html`<p>${describeJob(j)} goes from <strong>${j.status}</strong> to <strong>failed</strong> and will not run
        ${j.status === 'running' ? 'again; its worker is fenced out and its result discarded' : ''}. The row stays; the reason is
        kept in its last error and in the audit as <code>cancel</code> by <code>${actor}</code>.</p>`,
      confirmLabel: 'Cancel job',
      danger: true,
      reason: 'required',
      run: async (reason) => {
        await api(`/jobs/${j.id}/cancel`, { method: 'POST', body: { reason, leaseToken: j.leaseToken } });
        return `Job ${j.id} was cancelled.`;
      },
    });
  },
  pause(button) {
    const q = state.data.queues.find((x) => x.queue === button.dataset.queue);
    ask({
      title: `Pause queue ${q.queue}?`,
      body: html`<p>Consumers stop claiming from <code>${q.queue}</code> at their next claim. The ${plural(q.running, 'running job')}
        finish; the ${plural(q.queued, 'queued job')} wait until the queue is resumed. Recorded as <code>pause</code> by <code>${actor}</code>.</p>`,
      confirmLabel: 'Pause queue',
      danger: true,
      run: async (reason) => {
        await api(`/queues/${encodeURIComponent(q.queue)}/pause`, { method: 'POST', body: { reason } });
        return `Queue ${q.queue} is paused.`;
      },
    });
  },
  resume(button) {
    const q = state.data.queues.find((x) => x.queue === button.dataset.queue);
    ask({
      title: `Resume queue ${q.queue}?`,
      body: html`<p>Consumers claim from <code>${q.queue}</code> again; its ${plural(q.queued, 'queued job')} become claimable.
        Paused ${q.pausedBy ? html`by <code>${q.pausedBy}</code>` : ''}${q.pauseReason ? `: “${q.pauseReason}”` : ''}.
        Recorded as <code>resume</code> by <code>${actor}</code>.</p>`,
      confirmLabel: 'Resume queue',
      run: async (reason) => {
        await api(`/queues/${encodeURIComponent(q.queue)}/resume`, { method: 'POST', body: { reason } });
        return `Queue ${q.queue} is active again.`;
      },
    });
  },
  async 'retry-all'() {
    const p = state.route.params;
    const q = new URLSearchParams();
    if (p.get('queue')) q.set('queue', p.get('queue'));
    if (p.get('type')) q.set('type', p.get('type'));
    let preview;
    try {
      preview = await api(`/failed?${q}`);
    } catch (e) {
      notify(`Could not list failed jobs: ${e.message}`);
      return;
    }
    const targets = preview.jobs.map((f) => ({ id: f.id, leaseToken: f.leaseToken }));
    if (targets.length === 0) {
      notify('No failed jobs match (cancelled jobs are left out on purpose).');
      return;
    }
    const shown = targets.slice(0, 12).map((t) => t.id);
    ask({
      title: `Retry ${plural(targets.length, 'failed job')}?`,
      body: html`<p>${plural(targets.length, 'failed job')}${p.get('queue') ? html` in queue <code>${p.get('queue')}</code>` : ''}${
        p.get('type') ? html` of type <code>${p.get('type')}</code>` : ''
      } go back to <strong>queued</strong> with fresh retry budgets${targets.length === preview.limit ? ` (the newest ${preview.limit}; run again for more)` : ''}.
        Cancelled jobs are left out.</p>
        <p>Jobs: ${shown.join(', ')}${targets.length > shown.length ? `, … and ${targets.length - shown.length} more` : ''}.</p>
        <p>Each is fenced on the state shown here: a job that changed meanwhile is skipped. Recorded as
        <code>retry-failed</code> by <code>${actor}</code>.</p>`,
      confirmLabel: `Retry ${plural(targets.length, 'job')}`,
      defaultReason: 'dead-letter redrive from the dashboard',
      run: async (reason) => {
        const out = await api('/retry-failed', { method: 'POST', body: { reason, targets } });
        return `${plural(out.requeued.length, 'job')} queued again${out.skipped.length ? `; ${out.skipped.length} changed meanwhile and were skipped` : ''}.`;
      },
    });
  },
};

document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button || !state.data) return;
  notify('');
  ACTIONS[button.dataset.action]?.(button);
});

document.addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.target;
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
