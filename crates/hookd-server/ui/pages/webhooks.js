// The webhooks list: name, target, state (active, and the circuit when it is not closed), last
// delivery outcome and the success rate of the last 24 h. The circuit comes with the list; each
// page of webhooks reads the statistics for all its rows in one call to `/webhooks/stats`.

import { api, qs } from '../api.js';
import { h, pagedTable, statusBadge, banner, clock, when } from '../dom.js';

export async function render(ctx) {
  const err = banner();
  const empty = h('p', { class: 'empty', hidden: true }, 'No webhooks yet. ',
    h('a', { href: '#/webhooks/new' }, 'Create the first one'), '.');
  const { el, more, loadPage } = pagedTable({
    columns: ['Name', 'Target URL', 'State', 'Last delivery', 'Success (24 h)'],
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
    // One wrapper, so that the badges stay side by side in the phone layout's grid cell.
    h('td', {}, h('div', { class: 'badges' }, w.active ? h('span', { class: 'badge on' }, 'active')
      : h('span', { class: 'badge off', title: w.disabled_reason || '' }, 'disabled'),
    circuitBadge(w))),
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

/**
 * The circuit of a webhook as a badge: "circuit open until 14:03:27", "circuit half open", or null
 * while it is closed. Its title says why and what happens next.
 */
function circuitBadge(w) {
  if (w.circuit === 'closed') return null;
  const failures = `${w.circuit_failures} ${w.circuit_failures === 1 ? 'failure' : 'failures'} in a row`;
  if (w.circuit === 'open' && w.circuit_open_until) {
    return h('span', { class: 'badge c-open', title: `${failures}; deliveries wait until ${when(w.circuit_open_until)}, then one probe request decides.` },
      `circuit open until ${clock(w.circuit_open_until)}`);
  }
  return h('span', { class: `badge c-${w.circuit}`, title: `${failures}; the next request is a probe that decides.` },
    `circuit ${w.circuit.replace('_', ' ')}`);
}
