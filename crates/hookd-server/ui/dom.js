// DOM building without innerHTML: every API value becomes a text node, so nothing the API
// returns is ever parsed as HTML.

/** Creates an element. `on*` attributes add listeners; `value`, `checked` are set as properties. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  const props = {};
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked') props[k] = v;
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  Object.assign(el, props);
  return el;
}

/** Replaces the children of `el` (null and false are skipped, unlike `replaceChildren`). */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uid = 0;
/** A unique element id. */
export const nextId = (p = 'f') => `${p}-${++uid}`;

/**
 * A labelled control with a hint and an error slot. `field` is the API field name errors map to.
 */
export function field(label, control, { hint, name, cls } = {}) {
  control.id ||= nextId();
  const err = h('p', { class: 'field-error', id: nextId('e'), hidden: true });
  const help = hint ? h('small', { class: 'hint', id: nextId('h') }, hint) : null;
  control.setAttribute('aria-describedby', [help?.id, err.id].filter(Boolean).join(' '));
  const isCheck = control.type === 'checkbox' || control.type === 'radio';
  const lab = h('label', { for: control.id }, label);
  const wrap = h('div', { class: `field${isCheck ? ' check' : ''}${cls ? ' ' + cls : ''}` },
    isCheck ? [control, lab] : [lab, control], help, err);
  if (name) wrap.dataset.field = name;
  return wrap;
}

export const input = (attrs) => h('input', { type: 'text', ...attrs });
export const textarea = (attrs) => h('textarea', { spellcheck: 'false', ...attrs });
export function select(options, attrs) {
  return h('select', attrs, options.map(([v, label]) => h('option', { value: v }, label ?? v)));
}

/** A banner for errors that name no field (or a field not on the page). */
export function banner() {
  return h('div', { class: 'banner', role: 'alert', hidden: true });
}

export function clearErrors(root) {
  for (const w of root.querySelectorAll('.invalid')) {
    w.classList.remove('invalid');
    const e = w.querySelector('.field-error');
    e.hidden = true;
    e.textContent = '';
    w.querySelector('input,select,textarea')?.removeAttribute('aria-invalid');
  }
  for (const b of root.querySelectorAll('.banner')) b.hidden = true;
}

/** The form control wrapper an API field names: `auth.password`, `events[0].url`, `headers.X-A`. */
export function fieldWrapper(root, name) {
  const all = [...root.querySelectorAll('[data-field]')];
  let f = name.replace(/^webhook\./, '');
  while (f) {
    const low = f.toLowerCase();
    const hit = all.find((w) => w.dataset.field.toLowerCase() === low);
    if (hit) return hit;
    const cut = Math.max(f.lastIndexOf('.'), f.lastIndexOf('['));
    f = cut > 0 ? f.slice(0, cut) : '';
  }
  return null;
}

/** Shows an API error next to the field it names, or in the banner. */
export function showError(root, err, bannerEl) {
  clearErrors(root);
  const e = err?.body?.error;
  const message = e?.message || err?.message || String(err);
  const wrap = e?.field ? fieldWrapper(root, e.field) : null;
  if (wrap) {
    wrap.classList.add('invalid');
    const slot = wrap.querySelector('.field-error');
    slot.textContent = message;
    slot.hidden = false;
    const control = wrap.querySelector('input,select,textarea');
    control?.setAttribute('aria-invalid', 'true');
    return control;
  }
  bannerEl.textContent = message;
  bannerEl.hidden = false;
  return null;
}

/** Calls `fn` every `ms` while the page is visible, until the page is left. */
export function poll(ctx, ms, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try { await fn(); } catch (e) { console.warn('poll failed', e); }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  ctx.onLeave(() => { stopped = true; clearTimeout(timer); });
}

export function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString();
}

/** The local time of day, `14:03:27` (for times minutes away, where the date goes without saying). */
export function clock(iso) {
  if (!iso) return '—';
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
}

export function statusBadge(status) {
  return h('span', { class: `badge s-${status}` }, status);
}

/** A table in a horizontally scrollable wrapper. `cols` are header labels. */
export function table(cols, caption) {
  const tbody = h('tbody');
  // On phones rows become cards: each cell shows its column name (CSS `attr(data-label)`).
  new MutationObserver(() => {
    for (const tr of tbody.rows) [...tr.cells].forEach((td, i) => { td.dataset.label ||= cols[i]; });
  }).observe(tbody, { childList: true, subtree: true });
  // Two-column tables (headers) fit a phone as they are; wider ones become cards there.
  const el = h('div', { class: cols.length > 2 ? 'table-wrap stack' : 'table-wrap' },
    h('table', {}, caption ? h('caption', { class: 'sr-only' }, caption) : null,
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))), tbody));
  return { el, tbody };
}

/**
 * A table filled page by page from a list endpoint. `fetchPage(cursor)` resolves to the API's
 * `{data, next_cursor}`; `rows(data)` builds the rows to append. "Load more" shows while there is
 * a next page, and `empty` replaces the table while it has no rows. Errors go to `err` (see
 * `showError`, with `root` the page). Returns the table (and its body, for rows added by
 * hand), its button and the page loader.
 */
export function pagedTable({ columns, caption, empty, fetchPage, rows, root, err }) {
  const { el, tbody } = table(columns, caption);
  let cursor = null;
  const more = loadMore(() => loadPage());
  async function loadPage() {
    try {
      const res = await fetchPage(cursor);
      tbody.append(...rows(res.data));
      cursor = res.next_cursor;
      more.hidden = !cursor;
      empty.hidden = tbody.children.length > 0;
      el.hidden = !empty.hidden;
    } catch (e) { showError(root, e, err); }
  }
  return { el, tbody, more, loadPage };
}

/** A "Load more" button that calls `more()` and hides itself when it returns no cursor. */
export function loadMore(more) {
  const btn = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try { await more(); } finally { btn.disabled = false; }
  });
  return btn;
}

export function pre(text, label) {
  return h('pre', { tabindex: '0', 'aria-label': label }, text);
}

export function pretty(json) {
  try { return JSON.stringify(JSON.parse(json), null, 2); } catch { return json; }
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Creates an SVG element (attributes as given; text children become text nodes, as in `h`). */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else el.setAttribute(k, String(v));
  }
  return append(el, children);
}
