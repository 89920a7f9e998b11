// The webhooks list: name, target, active, last delivery outcome and the success rate of the last
// 24 h. The API has no aggregate for these, so each row reads that webhook's recent deliveries.

import { api, qs } from '../api.js';
import { h, table, loadMore, statusBadge, banner, showError } from '../dom.js';

/** Deliveries read per webhook to compute its 24 h success rate (one page, the API's maximum). */
const STATS_LIMIT = 1000;
const DAY_MS = 24 * 3600 * 1000;

export async function render(ctx) {
  const err = banner();
  const { el, tbody } = table(['Name', 'Target URL', 'Active', 'Last delivery', 'Success (24 h)'], 'Webhooks');
  const empty = h('p', { class: 'empty', hidden: true }, 'No webhooks yet. ',
    h('a', { href: '#/webhooks/new' }, 'Create the first one'), '.');
  let cursor = null;
  const more = loadMore(() => page());
  ctx.main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Webhooks'),
      h('a', { class: 'button', href: '#/webhooks/new' }, 'New webhook')),
    err, el, empty, more);

  async function page() {
    try {
      const res = await api('GET', '/webhooks' + qs({ cursor }));
      for (const w of res.data) tbody.append(row(w));
      cursor = res.next_cursor;
      more.hidden = !cursor;
      empty.hidden = tbody.children.length > 0;
      el.hidden = !empty.hidden;
    } catch (e) {
      showError(ctx.main, e, err);
    }
  }
  await page();
}

function row(w) {
  const last = h('td', {}, '…');
  const rate = h('td', {}, '…');
  stats(w.id).then(({ lastStatus, ok, done, capped }) => {
    last.replaceChildren(lastStatus ? statusBadge(lastStatus) : 'none');
    rate.textContent = done ? `${Math.round((100 * ok) / done)} % (${ok}/${done})` : '—';
    if (capped) rate.title = `Of the latest ${STATS_LIMIT} deliveries only`;
  }, () => { last.textContent = '?'; rate.textContent = '?'; });
  return h('tr', {},
    h('td', {}, h('a', { href: `#/webhooks/${encodeURIComponent(w.id)}` }, w.name)),
    h('td', { class: 'url' }, w.url),
    h('td', {}, w.active ? h('span', { class: 'badge on' }, 'active')
      : h('span', { class: 'badge off', title: w.disabled_reason || '' }, 'disabled')),
    last, rate);
}

/** The newest delivery's status, and of the last 24 h's finished deliveries how many succeeded. */
async function stats(webhookId) {
  const res = await api('GET', '/deliveries' + qs({ webhook_id: webhookId, limit: STATS_LIMIT }));
  const since = Date.now() - DAY_MS;
  let ok = 0;
  let done = 0;
  for (const d of res.data) {
    if (new Date(d.created_at).getTime() < since) break;
    if (d.status === 'succeeded') { ok++; done++; } else if (d.status === 'failed' || d.status === 'retrying') done++;
  }
  const oldest = res.data[res.data.length - 1];
  const capped = res.next_cursor != null && new Date(oldest.created_at).getTime() >= since;
  return { lastStatus: res.data[0]?.status, ok, done, capped };
}
