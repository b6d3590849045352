// Routing: #/ overview, #/jobs?status=…&queue=…&type=…&before=…&q=…, #/jobs/<id>

export function currentRoute() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = hash.split('?');
  const params = new URLSearchParams(query);
  const job = /^\/jobs\/(\d{1,19})$/.exec(path);
  if (path === '/' || path === '') return { view: 'overview', params };
  if (path === '/jobs') return { view: 'jobs', params };
  if (job) return { view: 'job', id: job[1], params };
  return { view: 'missing', params };
}

export function jobsHash(filters) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) p.set(k, v);
  const q = p.toString();
  return `#/jobs${q ? `?${q}` : ''}`;
}
