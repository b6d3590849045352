// Confirmations: every change says what will happen and asks first, with a reason kept in the
// audit (required for a cancel). `ask` opens the dialog; its `run` does the change.

import { notify, refresh, schedule } from './live.js';

const dialog = document.getElementById('confirm');
const confirmTitle = document.getElementById('confirm-title');
const confirmBody = document.getElementById('confirm-body');
const confirmReason = document.getElementById('confirm-reason');
const confirmReasonField = document.getElementById('confirm-reason-field');
const confirmReasonHint = document.getElementById('confirm-reason-hint');
const confirmError = document.getElementById('confirm-error');
const confirmOk = document.getElementById('confirm-ok');
const confirmCancel = document.getElementById('confirm-cancel');
let pending = null;

export function ask({
  title,
  body,
  confirmLabel,
  danger = false,
  reason = 'optional',
  defaultReason = '',
  run,
}) {
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
