// Inbound hooks: the list (name, mode, auth, active, the URL with Copy) and one hook's form (name,
// methods, auth, the parse editor with Parse sample, mode with its response settings, the workflow
// editor); once saved its URL is shown ready to copy, with links to its executions.

import { api, qs } from '../api.js';
import { h, pagedTable, append, field, input, textarea, banner, showError, clearErrors, nextId } from '../dom.js';
import { rowsEditor } from './webhook_editors.js';
import { confirmDialog } from './webhook_form.js';
import { methodsEditor, authEditor, parseEditor } from './inbound_editors.js';
import { workflowEditor } from './workflow.js';

export async function renderList(ctx) {
  const err = banner();
  const empty = h('p', { class: 'empty', hidden: true }, 'No inbound hooks yet. ',
    h('a', { href: '#/inbound/new' }, 'Create the first one'), ': it gets a URL that senders call.');
  const { el, more, loadPage } = pagedTable({
    columns: ['Name', 'Mode', 'Auth', 'Active', 'URL', 'Executions'],
    caption: 'Inbound hooks',
    empty,
    fetchPage: (cursor) => api('GET', '/inbound' + qs({ cursor })),
    rows: (data) => data.map(row),
    root: ctx.main,
    err,
  });
  ctx.main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Inbound hooks'),
      h('a', { class: 'button', href: '#/inbound/new' }, 'New inbound hook')),
    err, el, empty, more);
  const row = (w) => {
    const id = encodeURIComponent(w.id);
    return h('tr', {},
      h('td', {}, h('a', { href: `#/inbound/${id}` }, w.name)),
      h('td', {}, w.mode),
      h('td', {}, authWords(w.auth)),
      h('td', {}, w.active ? h('span', { class: 'badge on' }, 'active') : h('span', { class: 'badge off' }, 'inactive')),
      h('td', {}, h('div', { class: 'url-cell' }, h('span', { class: 'url' }, w.url),
        copyButton(() => w.url, `Copy the URL of ${w.name}`))),
      h('td', {}, h('a', { href: `#/inbound/${id}/executions` }, 'Executions')));
  };
  await loadPage();
}

/** "basic", "signature: github". */
export function authWords(auth) {
  return auth?.type === 'signature' ? `signature: ${auth.preset}` : auth?.type ?? 'none';
}

/** Copies `text()` to the clipboard; says "Copied" for a moment. */
export function copyButton(text, label, fallback) {
  const btn = h('button', { type: 'button', class: 'secondary copy', 'aria-label': label }, 'Copy');
  btn.addEventListener('click', async () => {
    let ok = false;
    try { await navigator.clipboard.writeText(text()); ok = true; } catch {
      // No clipboard API (plain http on another host): select the text and copy it.
      if (fallback) { fallback.select(); ok = document.execCommand('copy'); }
    }
    btn.textContent = ok ? 'Copied' : 'Select and copy';
    setTimeout(() => { btn.textContent = 'Copy'; }, 2000);
  });
  return btn;
}

/** The URL in a read-only field with Copy. */
function urlBox(url) {
  const control = input({ value: url, readonly: true, class: 'code', onfocus: (ev) => ev.target.select() });
  return [h('div', { class: 'copy-row' }, field('Hook URL', control), copyButton(() => control.value, 'Copy the hook URL', control)),
    h('p', { class: 'hint' }, 'Give it to the sender. Its key is unguessable: keep it private.')];
}

const NEW = {
  name: '', active: true, methods: ['POST'], auth: { type: 'none' }, parse: { headers: [], query: [], body: [] },
  mode: 'async', response: { status: 200, headers: {}, body: 'ok' }, timeout_ms: null, max_concurrency: null, workflow: [],
};

export async function renderForm(ctx) {
  const id = ctx.params.id;
  const path = id ? `/inbound/${encodeURIComponent(id)}` : null;
  const saved = id ? await api('GET', path) : null;
  if (saved) ctx.setTitle(saved.name);
  const w = saved || NEW;
  const f = controls(w);
  const err = banner();
  const notice = h('p', { class: 'notice', role: 'status', hidden: !ctx.query.get('created') },
    'Inbound hook created: callers can use its URL now.');
  const responsePart = h('fieldset', { 'data-field': 'response' }, h('legend', {}, 'Immediate answer'),
    h('p', { class: 'field-error', role: 'alert', hidden: true }),
    h('p', { class: 'hint' }, 'Sent as soon as the request is stored; the workflow runs after. Its body is a template over the parsed variables.'),
    h('div', { class: 'grid' }, field('Status', f.status, { name: 'response.status' })), f.respHeaders.el,
    field('Body', f.respBody, { name: 'response.body' }));
  const syncNote = h('p', { class: 'hint' }, 'The caller waits for the workflow: its Response node answers (without one: 200 on success, 500 on failure); '
    + 'past the timeout it gets 504.');
  const timeoutField = field('Timeout (ms)', f.timeout_ms, { name: 'timeout_ms', hint: 'How long a sync caller waits. Blank: 10000.' });
  const showMode = () => {
    responsePart.hidden = f.sync.checked;
    syncNote.hidden = !f.sync.checked;
    timeoutField.hidden = !f.sync.checked;
  };
  f.sync.addEventListener('change', showMode);
  f.async.addEventListener('change', showMode);
  showMode();
  const form = h('form', { class: 'card inbound-form', novalidate: true },
    err,
    h('div', { class: 'grid' }, field('Name', f.name, { name: 'name' }),
      field('Active', f.active, { name: 'active', hint: 'An inactive hook answers 404, as if it did not exist.' })),
    f.methods.el, f.auth.el, f.parse.el,
    h('fieldset', {}, h('legend', {}, 'Mode'),
      h('div', { class: 'radios' }, field('Sync: answer after the workflow', f.sync, { name: 'mode' }),
        field('Async: answer at once, run later', f.async)),
      syncNote, responsePart,
      h('div', { class: 'grid' },
        timeoutField,
        field('Max concurrency', f.max_concurrency, { name: 'max_concurrency', hint: 'Runs at once; past it callers get 429. Blank: 16.' }))),
    f.workflow.el,
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, saved ? 'Save changes' : 'Create inbound hook'),
      h('a', { href: '#/inbound', class: 'button secondary' }, 'Cancel')));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    notice.hidden = true;
    try {
      const body = wire(f, !!saved);
      if (!saved) {
        const made = await api('POST', '/inbound', body);
        location.hash = `#/inbound/${encodeURIComponent(made.id)}?created=1`;
        return;
      }
      // The whole form: PATCH replaces each field, keeps secrets sent back as ****, and `null`
      // restores a default.
      Object.assign(saved, await api('PATCH', path, body));
      ctx.setTitle(saved.name);
      title.textContent = saved.name;
      drawFacts();
      notice.textContent = 'Saved.';
      notice.hidden = false;
    } catch (e) {
      const control = showError(form, e, err);
      (control || err).scrollIntoView({ block: 'center' });
      control?.focus();
    }
  });

  const title = h('h1', {}, saved ? saved.name : 'New inbound hook');
  const facts = h('p', { class: 'hint' });
  const drawFacts = () => {
    if (saved) facts.textContent = `Accepts ${saved.methods.join(', ')}; auth: ${authWords(saved.auth)}; mode: ${saved.mode}.`;
  };
  drawFacts();
  append(ctx.main, [
    h('div', { class: 'page-head' }, title,
      saved ? h('a', { class: 'button secondary', href: `#${path}/executions` }, 'Executions') : null),
    notice,
    saved ? h('section', { class: 'card hook-url', 'aria-label': 'Hook URL' }, urlBox(saved.url),
      facts) : null,
    form,
    saved ? manage(saved, path) : null]);
  if (!saved) f.name.focus();
}

/** The form controls, filled from `w`. */
function controls(w) {
  const num = (v, placeholder) => input({ type: 'number', min: '1', inputmode: 'numeric', value: v ?? '', placeholder });
  const radio = (checked) => input({ type: 'radio', name: nextId('mode'), checked });
  const sync = radio(w.mode === 'sync');
  const async = radio(w.mode !== 'sync');
  async.name = sync.name;
  const r = w.response ?? NEW.response;
  return {
    name: input({ value: w.name, required: true, autocomplete: 'off' }),
    active: input({ type: 'checkbox', checked: w.active }),
    methods: methodsEditor(w.methods),
    auth: authEditor(w.auth),
    parse: parseEditor(w.parse ?? NEW.parse),
    sync,
    async,
    status: input({ type: 'text', inputmode: 'numeric', value: r.status, placeholder: '200', class: 'status' }),
    respHeaders: rowsEditor({ name: 'response.headers', legend: 'Headers', addLabel: 'Add header',
      items: Object.entries(r.headers ?? {}).map(([name, value]) => ({ name, value })),
      cols: [['name', 'Header name', 'Content-Type'], ['value', 'Value', 'application/json']] }),
    respBody: textarea({ rows: 3, class: 'code', value: r.body, placeholder: 'ok' }),
    timeout_ms: num(w.timeout_ms, '10000'),
    max_concurrency: num(w.max_concurrency, '16'),
    workflow: workflowEditor(w.workflow),
  };
}

/** The form as the API's body. Blank numbers restore the default: `null` on a PATCH, left out on a create. */
function wire(f, patch) {
  const numOr = (s) => (/^\d+$/.test(s.trim()) ? Number(s.trim()) : s.trim());
  const out = {
    name: f.name.value.trim(),
    active: f.active.checked,
    methods: f.methods.collect(),
    auth: f.auth.collect(),
    parse: f.parse.collect(),
    mode: f.sync.checked ? 'sync' : 'async',
    response: {
      status: numOr(f.status.value),
      headers: Object.fromEntries(f.respHeaders.collect().filter((x) => x.name).map((x) => [x.name, x.value ?? ''])),
      body: f.respBody.value,
    },
    workflow: f.workflow.collect(),
  };
  for (const k of ['timeout_ms', 'max_concurrency']) {
    const v = f[k].value.trim();
    if (v) out[k] = numOr(v);
    else if (patch) out[k] = null;
  }
  return out;
}

function manage(w, path) {
  const del = h('button', { type: 'button', class: 'danger', onclick: () => confirmDialog(
    `Delete inbound hook “${w.name}”?`, 'Its URL answers 404 from then on. This cannot be undone.', 'Delete',
    async () => { await api('DELETE', path); location.hash = '#/inbound'; }) }, 'Delete inbound hook');
  return h('section', { class: 'card', 'aria-labelledby': 'danger-h' }, h('h2', { id: 'danger-h' }, 'Danger zone'), del);
}
