// The webhooks list: name, target, active, last delivery outcome and the success rate of the last
// 24 h. Each page of webhooks reads those for all its rows in one call to `/webhooks/stats`.

import { api, qs } from '../api.js';
import { h, pagedTable, statusBadge, banner } from '../dom.js';

export async function render(ctx) {
  const err = banner();
  const empty = h('p', { class: 'empty', hidden: true }, 'No webhooks yet. ',
    h('a', { href: '#/webhooks/new' }, 'Create the first one'), '.');
  const { el, more, loadPage } = pagedTable({
    columns: ['Name', 'Target URL', 'Active', 'Last delivery', 'Success (24 h)'],
    caption: 'Webhooks',
    empty,
    fetchPage: (cursor) => api('GET', '/webhooks' + qs({ cursor })),
    rows: (data) => {
      const rows = data.map(row);
      fillStats(rows);
      return rows.map((r) => r.tr);
    },
    root: ctx.main,
    err,
  });
  ctx.main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Webhooks'),
      h('a', { class: 'button', href: '#/webhooks/new' }, 'New webhook')),
    err, el, empty, more);
  await loadPage();
}

/** A webhook's row, with its two statistics cells to be filled in by `fillStats`. */
function row(w) {
  const last = h('td', {}, '…');
  const rate = h('td', {}, '…');
  const tr = h('tr', {},
    h('td', {}, h('a', { href: `#/webhooks/${encodeURIComponent(w.id)}` }, w.name)),
    h('td', { class: 'url' }, w.url),
    h('td', {}, w.active ? h('span', { class: 'badge on' }, 'active')
      : h('span', { class: 'badge off', title: w.disabled_reason || '' }, 'disabled')),
    last, rate);
  return { id: w.id, tr, last, rate };
}

/** Reads the statistics of a page of rows in one request (the API's default window: 24 h). */
async function fillStats(rows) {
  if (rows.length === 0) return;
  try {
    const res = await api('GET', '/webhooks/stats' + qs({ ids: rows.map((r) => r.id).join(',') }));
    const byId = new Map(res.data.map((s) => [s.webhook_id, s]));
    for (const r of rows) showStats(r, byId.get(r.id));
  } catch {
    for (const r of rows) { r.last.textContent = '?'; r.rate.textContent = '?'; }
  }
}

function showStats({ last, rate }, s) {
  last.replaceChildren(s?.last_status ? statusBadge(s.last_status) : 'none');
  if (s?.last_at) last.title = s.last_at;
  const done = s ? s.succeeded + s.failed : 0;
  rate.textContent = s?.success_rate != null
    ? `${Math.round(100 * s.success_rate)} % (${s.succeeded}/${done})` : '—';
  if (s?.pending) rate.title = `${s.pending} still in progress`;
}
