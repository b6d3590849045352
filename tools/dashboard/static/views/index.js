// The views by route (route.js): each has a title, a frame rendered on navigation (headings,
// filter forms), a load of its data and a render of the live region from it.

import { html } from '../html.js';
import { job } from './job.js';
import { jobs } from './jobs.js';
import { overview } from './overview.js';

const missing = {
  title: 'Not found',
  frame: () =>
    html`<h1>Not found</h1><p>No such page. <a href="#/">Back to the overview</a>.</p><div id="live"></div>`,
  load: async () => null,
  render: () => html``,
};

export const VIEWS = { overview, jobs, job, missing };
