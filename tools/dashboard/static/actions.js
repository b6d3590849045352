// The changes an operator can make, by the data-action of their button: each asks first
// (confirm.js) and then calls the dashboard API, fenced on the state the page showed.

import { actor, api } from './api.js';
import { ask } from './confirm.js';
import { plural } from './format.js';
import { html } from './html.js';
import { notify, state } from './live.js';

const describeJob = (j) =>
  html`job <strong>${j.id}</strong> (<code>${j.type}</code> in queue <code>${j.queue}</code>)`;

export const ACTIONS = {
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

/** A form field as the API takes it: empty removes the limit (null); text that is no number goes as is, for the server to refuse. */
function limitValue(raw) {
  const text = String(raw ?? '').trim();
  if (text === '') return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
}

const shownLimit = (v) => (v === null || v === undefined ? 'none' : String(v));

/** The limits form of one queue (views/limits.js): says old → new, asks, then POST /queues/{name}/limits. */
export function setLimits(form) {
  const name = form.dataset.limits;
  const values = Object.fromEntries(new FormData(form).entries());
  const change = { maxRunning: limitValue(values.maxRunning), rate: limitValue(values.rate) };
  // A burst without a rate is refused; with the rate removed the burst goes with it.
  if (change.rate !== null) change.burst = limitValue(values.burst) ?? undefined;
  const was = (state.data.limits ?? []).find((l) => l.name === name) ?? {};
  const line = (label, from, to) =>
    html`<li>${label}: <strong>${shownLimit(from)}</strong> → <strong>${to === undefined ? 'one second of the rate' : shownLimit(to)}</strong></li>`;
  ask({
    title: `Set limits of queue ${name}?`,
    body: html`<ul>
        ${line('Max running', was.maxRunning, change.maxRunning)}
        ${line('Rate per second', was.ratePerSecond, change.rate)}
        ${change.rate === null ? '' : line('Burst', was.rateBurst, change.burst)}
      </ul>
      <p>Consumers apply them at their next claim, across the whole fleet; jobs already running are not stopped.
        Recorded as <code>set-limit</code> by <code>${actor}</code>.</p>`,
    confirmLabel: 'Set limits',
    run: async (reason) => {
      await api(`/queues/${encodeURIComponent(name)}/limits`, {
        method: 'POST',
        body: { ...change, reason },
      });
      return `Limits of queue ${name} are set.`;
    },
  });
}
