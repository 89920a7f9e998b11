// Create or edit a webhook with every field of SPEC §4, beside the live preview; for a saved
// webhook also its circuit and limits, Test, enable/disable, reveal/rotate the secret and delete.

import { api } from '../api.js';
import { h, append, field, input, textarea, select, banner, showError, clearErrors, poll, replace, when } from '../dom.js';
import { MASK, rowsEditor, headersEditor, authEditor, bodyEditor, signatureEditor } from './webhook_editors.js';
import { sampleEvent, previewPanel, testPanel } from './webhook_preview.js';

/** How often a saved webhook's circuit is read again. */
const POLL_MS = 5000;

const NEW = {
  name: '', description: null, active: true, url: '', method: 'POST', events: [], condition: null,
  headers: {}, auth: { type: 'none' }, signature: { scheme: 'standard' }, include_secret: false,
  body: { format: 'default' }, tls_verify: true, timeout_ms: null, max_attempts: null, retry_schedule: null,
  max_in_flight: null, rate_limit_per_second: null,
};

export async function render(ctx) {
  const id = ctx.params.id;
  const saved = id ? await api('GET', `/webhooks/${encodeURIComponent(id)}`) : null;
  const w = saved || NEW;
  if (saved) ctx.setTitle(saved.name);
  const f = controls(w);
  const err = banner();
  const notice = h('p', { class: 'notice', role: 'status', hidden: !ctx.query.get('created') }, 'Webhook created.');
  const form = h('form', { class: 'card webhook-form', novalidate: true },
    err,
    h('div', { class: 'grid' },
      field('Name', f.name, { name: 'name' }),
      field('Target URL', f.url, { name: 'url', hint: 'http or https; credentials go in Authentication.' }),
      field('Method', f.method, { name: 'method' }),
      saved ? null : field('Active', f.active, { name: 'active' })),
    field('Description', f.description, { name: 'description' }),
    f.events.el,
    field('Condition', f.condition, { name: 'condition', hint: 'Optional Jinja expression over the event, e.g. doc.status == "Open".' }),
    f.auth.el, f.headers.el, f.body.el,
    h('fieldset', {}, h('legend', {}, 'Signature'), f.signature.el,
      saved ? null : field('Secret', f.secret, { name: 'secret', hint: 'Leave blank to generate one that fits the scheme.' }),
      field('Put the secret into default payloads (APIO)', f.include_secret, { name: 'include_secret' })),
    h('fieldset', {}, h('legend', {}, 'Delivery'),
      field('Verify TLS certificates', f.tls_verify, { name: 'tls_verify' }),
      h('div', { class: 'grid' },
        field('Timeout (ms)', f.timeout_ms, { name: 'timeout_ms', hint: 'Blank: the server default.' }),
        field('Max attempts', f.max_attempts, { name: 'max_attempts', hint: 'Blank: the server default.' }),
        field('Retry schedule (s)', f.retry_schedule, { name: 'retry_schedule', hint: 'Seconds after each failed attempt, e.g. 5, 300, 1800.' }),
        field('Max in flight', f.max_in_flight, { name: 'max_in_flight', hint: 'Requests at once, over all workers. Blank: the server default.' }),
        field('Rate limit per second', f.rate_limit_per_second, { name: 'rate_limit_per_second', hint: 'Requests started per second. Blank: unlimited.' }))),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, saved ? 'Save changes' : 'Create webhook'),
      h('a', { href: '#/webhooks', class: 'button secondary' }, 'Cancel')));

  const collect = () => wire(f, saved);
  const sample = sampleEvent(w.events[0]?.type);
  const preview = previewPanel(form, () => {
    if (!f.url.value.trim()) throw { hint: 'Enter a target URL to see the request it would send.' };
    const event = sample.read();
    const patch = saved ? diff(saved, collect()) : null;
    if (saved && Object.keys(patch).length === 0) return [`/webhooks/${encodeURIComponent(id)}/preview`, { event }];
    return ['/webhooks/preview', { webhook: { ...(saved ? withoutMasks(collect()) : collect()), name: f.name.value || 'preview' }, event }];
  });
  sample.el.addEventListener('input', preview.later);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    try {
      const body = collect();
      if (!saved) {
        const made = await api('POST', '/webhooks', body);
        location.hash = `#/webhooks/${encodeURIComponent(made.id)}?created=1`;
        return;
      }
      const patch = diff(saved, body);
      checkMasks(patch);
      if (Object.keys(patch).length === 0) { notice.textContent = 'Nothing changed.'; notice.hidden = false; return; }
      const fresh = await api('PATCH', `/webhooks/${encodeURIComponent(id)}`, patch);
      Object.assign(saved, fresh);
      health?.show(fresh);
      notice.textContent = 'Saved.';
      notice.hidden = false;
      preview.refresh();
    } catch (e) {
      notice.hidden = true;
      const control = showError(form, e, err);
      (control || err).scrollIntoView({ block: 'center' });
      control?.focus();
    }
  });

  const health = saved ? healthPanel(ctx, saved) : null;
  append(ctx.main, [
    h('div', { class: 'page-head' }, h('h1', {}, saved ? saved.name : 'New webhook'),
      h('div', { class: 'actions' },
        saved ? h('a', { href: `#/deliveries?webhook_id=${encodeURIComponent(id)}` }, 'Deliveries of this webhook') : null,
        h('button', { type: 'button', class: 'secondary narrow-only', onclick: () => preview.el.scrollIntoView() }, 'Jump to preview'))),
    notice,
    health?.el,
    h('div', { class: 'split' }, form,
      h('aside', { class: 'side' }, h('section', { class: 'card' }, sample.el), preview.el,
        saved ? testPanel(id, sample) : null, saved ? manage(saved) : null))]);
  preview.refresh();
}

/** The form controls, filled from `w`. */
function controls(w) {
  const num = (v, min = '0') => input({ type: 'number', min, inputmode: 'numeric', value: v ?? '' });
  return {
    name: input({ value: w.name, required: true, autocomplete: 'off' }),
    url: input({ type: 'url', value: w.url, placeholder: 'https://example.com/hooks', required: true }),
    method: select(['POST', 'PUT', 'PATCH', 'GET', 'DELETE'].map((m) => [m]), { value: w.method }),
    active: input({ type: 'checkbox', checked: w.active }),
    description: input({ value: w.description ?? '' }),
    events: rowsEditor({ name: 'events', legend: 'Events', addLabel: 'Add event entry', items: w.events,
      hint: 'Fires for an event when any entry matches (every field given must match). No entries: every event.',
      cols: [['label', 'Label', 'address created'], ['type', 'Type or glob', 'entry.*'], ['model', 'Model', 'address'],
        ['method', 'Route method', 'POST'], ['url', 'Route URL regex', '^/api/orders/.*$']] }),
    condition: input({ value: w.condition ?? '', class: 'code', autocomplete: 'off' }),
    auth: authEditor(w.auth),
    headers: headersEditor(w.headers),
    body: bodyEditor(w.body),
    signature: signatureEditor(w.signature),
    secret: input({ autocomplete: 'off' }),
    include_secret: input({ type: 'checkbox', checked: w.include_secret }),
    tls_verify: input({ type: 'checkbox', checked: w.tls_verify }),
    timeout_ms: num(w.timeout_ms),
    max_attempts: num(w.max_attempts),
    max_in_flight: num(w.max_in_flight, '1'),
    rate_limit_per_second: num(w.rate_limit_per_second, '1'),
    retry_schedule: input({ value: (w.retry_schedule ?? []).join(', '), inputmode: 'numeric', placeholder: '5, 300, 1800' }),
  };
}

/** The form as the API's `WebhookIn`. */
function wire(f, saved) {
  const intOrNull = (c, name) => {
    const v = c.value.trim();
    if (v === '') return null;
    if (!/^\d+$/.test(v)) throw fieldError(name, 'must be a whole number');
    return Number(v);
  };
  const schedule = f.retry_schedule.value.trim();
  if (schedule && !/^\d+(\s*,\s*\d+)*$/.test(schedule)) throw fieldError('retry_schedule', 'must be whole numbers of seconds, separated by commas');
  const out = {
    name: f.name.value.trim(),
    description: f.description.value.trim() || null,
    url: f.url.value.trim(),
    method: f.method.value,
    events: f.events.collect(),
    condition: f.condition.value.trim() || null,
    auth: f.auth.collect(),
    headers: f.headers.collect(),
    body: f.body.collect(),
    signature: f.signature.collect(),
    include_secret: f.include_secret.checked,
    tls_verify: f.tls_verify.checked,
    timeout_ms: intOrNull(f.timeout_ms, 'timeout_ms'),
    max_attempts: intOrNull(f.max_attempts, 'max_attempts'),
    max_in_flight: intOrNull(f.max_in_flight, 'max_in_flight'),
    rate_limit_per_second: intOrNull(f.rate_limit_per_second, 'rate_limit_per_second'),
    retry_schedule: schedule ? schedule.split(',').map((s) => Number(s.trim())) : null,
  };
  if (!saved) {
    out.active = f.active.checked;
    if (f.secret.value) out.secret = f.secret.value;
  }
  return out;
}

function fieldError(name, message) {
  return { body: { error: { field: name, message: `${name}: ${message}` } } };
}

/** A JSON text with sorted keys, to compare values. */
function canon(v) {
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}`;
  return JSON.stringify(v ?? null);
}

/** The fields of `now` that differ from the saved webhook: the PATCH body. */
function diff(saved, now) {
  const patch = {};
  for (const [k, v] of Object.entries(now)) if (canon(saved[k]) !== canon(v)) patch[k] = v;
  return patch;
}

/** A changed auth or header set that still holds a masked value would save the mask itself. */
function checkMasks(patch) {
  const a = patch.auth;
  for (const k of ['password', 'token', 'value']) {
    if (a && a[k] === MASK) throw fieldError(`auth.${k}`, 're-enter it: the saved value is hidden');
  }
  for (const [k, v] of Object.entries(patch.headers ?? {})) {
    if (v === MASK) throw fieldError(`headers.${k}`, 're-enter its value: the saved one is hidden');
  }
}

/** For previews of unsaved edits: masked secrets replaced by placeholders (the preview masks them). */
function withoutMasks(w) {
  const auth = { ...w.auth };
  for (const k of ['password', 'token', 'value']) if (auth[k] === MASK) auth[k] = 'saved-secret';
  return { ...w, auth };
}

/**
 * The circuit breaker (state, until when, failures in a row) and the two limits of a saved
 * webhook, read again every few seconds; `show(w)` redraws from a fresh webhook.
 */
function healthPanel(ctx, w) {
  const facts = h('dl', { class: 'facts' });
  const fact = (k, v) => h('div', {}, h('dt', {}, k), h('dd', {}, v));
  const show = (x) => {
    replace(facts,
      fact('Circuit', h('span', { class: `badge c-${x.circuit}` }, x.circuit.replace('_', ' '))),
      x.circuit_open_until ? fact(x.circuit === 'open' ? 'Open until' : 'Was open until', when(x.circuit_open_until)) : null,
      fact('Failures in a row', String(x.circuit_failures)),
      fact('Max in flight', x.max_in_flight ?? 'server default'),
      fact('Rate limit', x.rate_limit_per_second != null ? `${x.rate_limit_per_second} per second` : 'unlimited'));
  };
  show(w);
  poll(ctx, POLL_MS, async () => show(await api('GET', `/webhooks/${encodeURIComponent(w.id)}`)));
  const el = h('section', { class: 'card health', 'aria-labelledby': 'health-h' }, h('h2', { id: 'health-h' }, 'Circuit and limits'),
    facts, h('p', { class: 'hint' }, 'Timeouts, connection errors, 5xx and 429 answers open the circuit; while it is open, deliveries wait, then one probe request decides.'));
  return { el, show };
}

/** Enable/disable, the secret, and delete. */
function manage(w) {
  const id = encodeURIComponent(w.id);
  const state = h('p', { role: 'status' });
  const toggle = h('button', { type: 'button', class: 'secondary' });
  const draw = () => {
    state.replaceChildren(w.active ? h('span', { class: 'badge on' }, 'active') : h('span', { class: 'badge off' }, 'disabled'),
      w.disabled_reason ? ` ${w.disabled_reason}` : '');
    toggle.textContent = w.active ? 'Disable' : 'Enable';
  };
  toggle.addEventListener('click', async () => {
    Object.assign(w, await api('POST', `/webhooks/${id}/${w.active ? 'disable' : 'enable'}`));
    draw();
  });
  draw();
  const secret = h('code', { class: 'secret' });
  const pub = h('code', { class: 'secret' });
  const showSecret = (s) => {
    secret.textContent = s.secret;
    pub.textContent = s.public_key ? `Public key: ${s.public_key}` : '';
  };
  const reveal = h('button', { type: 'button', class: 'secondary', onclick: async () => showSecret(await api('GET', `/webhooks/${id}/secret`)) }, 'Reveal secret');
  const rotate = h('button', { type: 'button', class: 'secondary', onclick: () => confirmDialog(
    'Rotate the signing secret?', 'The old secret keeps signing beside the new one for the grace period (24 h by default).', 'Rotate',
    async () => showSecret(await api('POST', `/webhooks/${id}/rotate-secret`))) }, 'Rotate secret');
  const del = h('button', { type: 'button', class: 'danger', onclick: () => confirmDialog(
    `Delete webhook “${w.name}”?`, 'Its unfinished deliveries are cancelled. This cannot be undone.', 'Delete',
    async () => { await api('DELETE', `/webhooks/${id}`); location.hash = '#/webhooks'; }) }, 'Delete webhook');
  return h('section', { class: 'card', 'aria-labelledby': 'manage-h' }, h('h2', { id: 'manage-h' }, 'Manage'),
    state, h('div', { class: 'actions' }, toggle),
    h('h3', {}, 'Signing secret'), h('div', { class: 'actions' }, reveal, rotate), secret, pub,
    h('h3', {}, 'Danger zone'), del);
}

/** A modal confirmation; `act` runs on confirm, its error shown in the dialog. */
export function confirmDialog(title, text, label, act) {
  const msg = h('p', { class: 'bad', role: 'alert' });
  const ok = h('button', { type: 'button', class: label === 'Delete' ? 'danger' : '' }, label);
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const dlg = h('dialog', { 'aria-labelledby': 'dlg-h' }, h('h2', { id: 'dlg-h' }, title), h('p', {}, text), msg,
    h('div', { class: 'actions' }, ok, cancel));
  cancel.addEventListener('click', () => dlg.close());
  dlg.addEventListener('close', () => dlg.remove());
  ok.addEventListener('click', async () => {
    ok.disabled = true;
    try { await act(); dlg.close(); } catch (e) { msg.textContent = e.message; ok.disabled = false; }
  });
  document.body.append(dlg);
  dlg.showModal();
  cancel.focus();
}
