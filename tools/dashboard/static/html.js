// HTML with every interpolation escaped unless it is itself html`…`.

export class Html {
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
export function html(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => {
    out += show(v) + strings[i + 1];
  });
  return new Html(out);
}

/** A titled panel whose table scrolls sideways on narrow screens (`id` names the heading). */
export function scrollPanel(id, title, table) {
  return html`
  <section class="panel" aria-labelledby="${id}-h">
    <h2 id="${id}-h">${title}</h2>
    <div class="scroll">
      ${table}
    </div>
  </section>`;
}
