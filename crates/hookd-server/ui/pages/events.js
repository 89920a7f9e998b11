// Events: publish one by hand, the list (newest first, "Load more"), and one event with its
// deliveries.

import { api, qs } from '../api.js';
import { h, pagedTable, field, input, textarea, table, statusBadge, when, banner, showError, clearErrors, pre, replace } from '../dom.js';

export async function renderList(ctx) {
  const type = input({ placeholder: 'entry.create', autocomplete: 'off', required: true });
  const model = input({ placeholder: 'optional', autocomplete: 'off' });
  const data = textarea({ rows: 5, class: 'code', value: '{\n  "id": 1\n}' });
  const err = banner();
  const notice = h('p', { class: 'notice', role: 'status', hidden: true });
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'publish-h' },
    h('h2', { id: 'publish-h' }, 'Publish an event'), err,
    h('div', { class: 'grid' }, field('Type', type, { name: 'type' }), field('Model', model, { name: 'model' })),
    field('Data (JSON)', data, { name: 'data' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Publish')), notice);
  const listErr = banner();
  const empty = h('p', { class: 'empty', hidden: true }, 'No events yet.');
  const { el, tbody, more, loadPage } = pagedTable({
    columns: ['Event', 'Type', 'Model', 'Occurred'],
    caption: 'Events',
    empty,
    fetchPage: (cursor) => api('GET', '/events' + qs({ cursor })),
    rows: (data) => data.map(row),
    root: ctx.main,
    err: listErr,
  });
  ctx.main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Events')), form, h('h2', {}, 'Recent events'), listErr, el, empty, more);

  const row = (e) => h('tr', {},
    h('td', {}, h('a', { href: `#/events/${encodeURIComponent(e.id)}` }, e.id)),
    h('td', {}, e.type), h('td', {}, e.model ?? '—'), h('td', {}, when(e.occurred_at)));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    notice.hidden = true;
    try {
      let parsed;
      try { parsed = JSON.parse(data.value || '{}'); } catch (x) {
        throw { body: { error: { field: 'data', message: `data: not valid JSON (${x.message})` } } };
      }
      const body = { type: type.value.trim(), data: parsed };
      if (model.value.trim()) body.model = model.value.trim();
      const res = await api('POST', '/events', body);
      const n = res.deliveries ?? 0;
      replace(notice, 'Published ', h('a', { href: `#/events/${encodeURIComponent(res.id)}` }, res.id),
        res.duplicate ? ' (a duplicate: nothing queued).' : `: ${n} ${n === 1 ? 'delivery' : 'deliveries'} queued. `,
        n ? h('a', { href: `#/deliveries?event_id=${encodeURIComponent(res.id)}` }, 'See the deliveries') : null);
      notice.hidden = false;
      tbody.prepend(row(await api('GET', `/events/${encodeURIComponent(res.id)}`)));
      empty.hidden = true;
      el.hidden = !empty.hidden;
    } catch (e) {
      showError(form, e, err)?.focus();
    }
  });
  await loadPage();
}

export async function renderDetail(ctx) {
  const id = ctx.params.id;
  const e = await api('GET', `/events/${encodeURIComponent(id)}`);
  const { el, tbody } = table(['Delivery', 'Webhook', 'Status', 'Attempts'], 'Deliveries of this event');
  const res = await api('GET', '/deliveries' + qs({ event_id: id, limit: 1000 }));
  const hooks = await api('GET', '/webhooks?limit=1000');
  const names = new Map(hooks.data.map((w) => [w.id, w.name]));
  tbody.append(...res.data.map((d) => h('tr', {},
    h('td', {}, h('a', { href: `#/deliveries/${encodeURIComponent(d.id)}` }, d.id)),
    h('td', {}, h('a', { href: `#/webhooks/${encodeURIComponent(d.webhook_id)}` }, names.get(d.webhook_id) ?? d.webhook_id)),
    h('td', {}, statusBadge(d.status)), h('td', {}, String(d.attempt_count)))));
  ctx.main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Event ', h('code', {}, e.id))),
    h('section', { class: 'card' }, h('dl', { class: 'summary' },
      h('dt', {}, 'Type'), h('dd', {}, e.type), h('dt', {}, 'Model'), h('dd', {}, e.model ?? '—'),
      h('dt', {}, 'Occurred'), h('dd', {}, when(e.occurred_at)),
      h('dt', {}, 'Idempotency key'), h('dd', {}, e.idempotency_key ?? '—')),
    h('h2', {}, 'Data'), pre(JSON.stringify(e.data, null, 2), 'Event data')),
    h('h2', {}, 'Deliveries'), res.data.length ? el : h('p', { class: 'empty' }, 'No webhook matched this event.'));
}
