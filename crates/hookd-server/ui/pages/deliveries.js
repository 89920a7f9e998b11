// The delivery history (filtered by webhook, status and event; new deliveries appear by polling
// every 2 s while the page is visible) and one delivery with its attempts and Retry.

import { api, qs } from '../api.js';
import { h, field, input, select, table, loadMore, statusBadge, when, poll, banner, showError, pre, pretty } from '../dom.js';

const STATUSES = ['pending', 'delivering', 'succeeded', 'retrying', 'failed', 'cancelled'];
const POLL_MS = 2000;

export async function renderList(ctx) {
  const q = ctx.query;
  const err = banner();
  const webhook = select([['', 'All webhooks']], { name: 'webhook_id' });
  const status = select([['', 'Any status'], ...STATUSES.map((s) => [s])], { name: 'status', value: q.get('status') ?? '' });
  const event = input({ name: 'event_id', value: q.get('event_id') ?? '', placeholder: 'evt_…', autocomplete: 'off' });
  const filters = h('form', { class: 'filters', role: 'search' },
    field('Webhook', webhook), field('Status', status), field('Event id', event, { name: 'event_id' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'secondary' }, 'Filter')));
  const { el, tbody } = table(['Delivery', 'Webhook', 'Event', 'Status', 'Attempts', 'Last answer', 'Created'], 'Deliveries');
  const empty = h('p', { class: 'empty', hidden: true }, 'No deliveries match.');
  ctx.main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Deliveries'), h('span', { class: 'muted live' }, 'Live: updates every 2 s')),
    filters, err, el, empty);
  const names = new Map();
  const more = loadMore(() => page());
  ctx.main.append(more);

  try {
    const hooks = await api('GET', '/webhooks?limit=1000');
    for (const w of hooks.data) {
      names.set(w.id, w.name);
      webhook.append(h('option', { value: w.id }, w.name));
    }
    webhook.value = q.get('webhook_id') ?? '';
  } catch (e) { showError(ctx.main, e, err); }

  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = '#/deliveries' + qs({ webhook_id: webhook.value, status: status.value, event_id: event.value.trim() });
  });
  const filter = { webhook_id: q.get('webhook_id'), status: q.get('status'), event_id: q.get('event_id') };
  const rows = new Map();
  let cursor = null;

  const draw = (d) => {
    const cells = [
      h('td', {}, h('a', { href: `#/deliveries/${encodeURIComponent(d.id)}` }, d.id)),
      h('td', {}, h('a', { href: `#/webhooks/${encodeURIComponent(d.webhook_id)}` }, names.get(d.webhook_id) ?? d.webhook_id)),
      h('td', {}, h('a', { href: `#/events/${encodeURIComponent(d.event_id)}` }, d.event_id)),
      h('td', {}, statusBadge(d.status)),
      h('td', {}, String(d.attempt_count)),
      h('td', {}, d.last_status_code ? `HTTP ${d.last_status_code}` : d.last_error ?? '—'),
      h('td', {}, when(d.created_at))];
    const tr = rows.get(d.id) ?? h('tr', { 'data-id': d.id });
    tr.replaceChildren(...cells);
    return tr;
  };
  async function page() {
    try {
      const res = await api('GET', '/deliveries' + qs({ ...filter, cursor }));
      for (const d of res.data) { const tr = draw(d); rows.set(d.id, tr); tbody.append(tr); }
      cursor = res.next_cursor;
      more.hidden = !cursor;
      empty.hidden = rows.size > 0;
      el.hidden = !empty.hidden;
    } catch (e) { showError(ctx.main, e, err); }
  }
  /** The newest page again: new deliveries go on top, known ones are updated in place. */
  async function refresh() {
    const res = await api('GET', '/deliveries' + qs(filter));
    const fresh = [];
    for (const d of res.data) {
      const known = rows.has(d.id);
      const tr = draw(d);
      if (!known) { rows.set(d.id, tr); fresh.push(tr); }
    }
    tbody.prepend(...fresh);
    empty.hidden = rows.size > 0;
    el.hidden = !empty.hidden;
  }
  await page();
  poll(ctx, POLL_MS, refresh);
}

export async function renderDetail(ctx) {
  const id = ctx.params.id;
  const path = `/deliveries/${encodeURIComponent(id)}`;
  const err = banner();
  const summary = h('dl', { class: 'summary' });
  const attempts = h('div', { class: 'attempts' });
  const retry = h('button', { type: 'button' }, 'Retry now');
  const notice = h('p', { class: 'notice', role: 'status', hidden: true });
  ctx.main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Delivery ', h('code', {}, id)), retry),
    notice, err, h('section', { class: 'card' }, summary), h('h2', {}, 'Attempts'), attempts);
  let shown = -1;
  let hookName = null;
  const load = async () => {
    const d = await api('GET', path);
    if (hookName === null) {
      hookName = await api('GET', `/webhooks/${encodeURIComponent(d.webhook_id)}`).then((w) => w.name, () => d.webhook_id);
    }
    summary.replaceChildren(...dl([
      ['Status', statusBadge(d.status)],
      ['Webhook', h('a', { href: `#/webhooks/${encodeURIComponent(d.webhook_id)}` }, hookName)],
      ['Event', h('a', { href: `#/events/${encodeURIComponent(d.event_id)}` }, d.event_id)],
      d.schedule_id ? ['Schedule', h('a', { href: `#/schedules/${encodeURIComponent(d.schedule_id)}` }, d.schedule_id)] : null,
      ['Attempts', String(d.attempt_count)],
      ['Next attempt', when(d.next_attempt_at)],
      ['Last error', d.last_error ?? '—'],
      ['Created', when(d.created_at)]].filter(Boolean)));
    retry.disabled = d.status === 'cancelled';
    if (d.attempts.length !== shown) {
      shown = d.attempts.length;
      attempts.replaceChildren(...(d.attempts.length ? d.attempts.slice().reverse().map((a, i) => attempt(a, i === 0)) : [h('p', { class: 'empty' }, 'No attempt yet.')]));
    }
  };
  retry.addEventListener('click', async () => {
    retry.disabled = true;
    try {
      await api('POST', `${path}/retry`);
      notice.textContent = 'Queued: the worker sends it now.';
      notice.hidden = false;
      await load();
    } catch (e) { showError(ctx.main, e, err); retry.disabled = false; }
  });
  await load();
  poll(ctx, POLL_MS, load);
}

function dl(pairs) {
  return pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]);
}

function headerTable(headers, caption) {
  const { el, tbody } = table(['Header', 'Value'], caption);
  tbody.append(...headers.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', { class: 'mono' }, v))));
  return el;
}

/** One attempt; only the newest is expanded. */
function attempt(a, open) {
  const r = a.response;
  return h('article', { class: 'card attempt', 'data-attempt': a.attempt },
    h('h3', {}, `Attempt ${a.attempt} `, r ? h('span', { class: `badge ${r.status < 300 ? 'on' : 'off'}` }, `HTTP ${r.status}`)
      : h('span', { class: 'badge off' }, a.error_kind ?? 'no response'), ` · ${a.duration_ms} ms · ${when(a.started_at)}`),
    a.error ? h('p', { class: 'bad' }, `${a.error_kind ?? 'error'}: ${a.error}`) : null,
    h('details', { open }, h('summary', {}, 'Request'),
      h('p', { class: 'request-line' }, h('strong', {}, a.request.method), ' ', h('span', { class: 'url' }, a.request.url)),
      headerTable(a.request.headers, 'Request headers')),
    r ? h('details', { open }, h('summary', {}, 'Response'),
      headerTable(r.headers, 'Response headers'),
      pre(r.body ? pretty(r.body) : '(empty body)', 'Response body'),
      r.body_truncated ? h('p', { class: 'hint' }, 'Body truncated at 64 KiB.') : null) : null);
}
