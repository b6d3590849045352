// The dashboard's JSON API: every request carries the change token (the read-only cookie goes
// along by itself); a non-2xx answer becomes an ApiError with the server's code and message.

// The server puts the change token in the page only when it was opened with it (the printed
// URL); reloads are served on the read-only cookie and take it from this tab's sessionStorage,
// which, unlike cookies, is kept per origin including the port.
export const token = (() => {
  const shown = document.querySelector('meta[name="dashboard-token"]').content;
  try {
    if (shown) sessionStorage.setItem('dte-dashboard-token', shown);
    return shown || sessionStorage.getItem('dte-dashboard-token') || '';
  } catch {
    return shown;
  }
})();
export const actor = document.querySelector('meta[name="dashboard-actor"]').content;

// The cookie carries later loads: keep the token out of the address bar, history and screenshots.
if (new URLSearchParams(location.search).has('token')) {
  history.replaceState(null, '', location.pathname + location.hash);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(path, { method = 'GET', body } = {}) {
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
