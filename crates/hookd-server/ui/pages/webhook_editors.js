// The parts of the webhook form that edit one structured field each (events, headers, auth,
// body, signature). Each returns `{ el, collect() }`: `collect()` gives the field in the API's wire
// shape (SPEC §4) and renumbers the `data-field` names errors are matched against.

import { h, field, input, textarea, select } from '../dom.js';

/** Masked secret values as the API returns them. */
export const MASK = '****';
const DEFAULT_CT = ['Content-Type', 'application/json'];

/** The error slot of a whole fieldset (an error about `events` rather than one entry). */
const slot = () => h('p', { class: 'field-error', role: 'alert', hidden: true });

/**
 * Rows of small text inputs: `cols` are [key, label, placeholder]. Empty cells are left out.
 * `add(item)` appends a row and returns it.
 */
export function rowsEditor({ name, cols, items, addLabel, legend, hint }) {
  const list = h('div', { class: 'rows' });
  const add = (item = {}) => {
    const cells = cols.map(([key, label, placeholder]) => {
      const control = input({ value: item[key] ?? '', placeholder, 'data-key': key });
      return field(label, control, { cls: 'cell' });
    });
    const row = h('div', { class: 'row' }, cells,
      h('button', { type: 'button', class: 'secondary remove', 'aria-label': `Remove ${addLabel.replace(/^Add /, '')}`,
        onclick: () => { row.remove(); list.dispatchEvent(new Event('input', { bubbles: true })); } }, 'Remove'));
    list.append(row);
    return row;
  };
  for (const item of items) add(item);
  const el = h('fieldset', { 'data-field': name }, h('legend', {}, legend), slot(),
    hint ? h('p', { class: 'hint' }, hint) : null, list,
    h('button', { type: 'button', class: 'secondary', onclick: () => add().querySelector('input').focus() }, addLabel));
  const collect = () => [...list.children].map((row, i) => {
    const out = {};
    for (const wrap of row.querySelectorAll('.field')) {
      const c = wrap.querySelector('input');
      wrap.dataset.field = `${name}[${i}].${c.dataset.key}`;
      if (c.value.trim() !== '') out[c.dataset.key] = c.value.trim();
    }
    return out;
  });
  return { el, collect, add };
}

/**
 * Header overrides. The server's default `Content-Type: application/json` is shown as a row
 * that can be edited, or removed (sent as `null`); removed headers are listed with "Restore".
 */
export function headersEditor(headers) {
  const list = h('div', { class: 'rows' });
  const removedList = h('ul', { class: 'removed' });
  const removed = new Set(Object.entries(headers).filter(([, v]) => v === null).map(([k]) => k));
  const changed = () => list.dispatchEvent(new Event('input', { bubbles: true }));
  const add = ([name, value] = ['', ''], isDefault = false) => {
    const n = input({ value: name, placeholder: 'X-Tenant', 'data-key': 'name', autocomplete: 'off' });
    const v = input({ value, placeholder: 'value', 'data-key': 'value', autocomplete: 'off' });
    const row = h('div', { class: 'row' }, field('Header name', n, { cls: 'cell' }),
      field('Value', v, { cls: 'cell', hint: value === MASK ? 'Masked: re-enter to change.' : isDefault ? 'Server default.' : null }),
      h('button', { type: 'button', class: 'secondary remove', 'aria-label': `Remove header ${name}`.trim(),
        onclick: () => {
          const nm = n.value.trim();
          if (/^content-type$/i.test(nm) || isDefault) { removed.add(nm || DEFAULT_CT[0]); }
          row.remove(); drawRemoved(); changed();
        } }, 'Remove'));
    row.dataset.default = isDefault ? DEFAULT_CT[1] : '';
    list.append(row);
    return row;
  };
  const drawRemoved = () => {
    removedList.replaceChildren(...[...removed].map((name) => h('li', {}, h('code', {}, name), ' is removed from every request ',
      h('button', { type: 'button', class: 'secondary', onclick: () => {
        removed.delete(name);
        if (/^content-type$/i.test(name)) add(DEFAULT_CT, true); else add([name, '']);
        drawRemoved(); changed();
      } }, `Restore ${name}`))));
  };
  const hasCt = Object.keys(headers).some((k) => /^content-type$/i.test(k));
  if (!hasCt) add(DEFAULT_CT, true);
  for (const [k, v] of Object.entries(headers)) if (v !== null) add([k, v]);
  drawRemoved();
  const el = h('fieldset', { 'data-field': 'headers' }, h('legend', {}, 'Headers'), slot(),
    h('p', { class: 'hint' }, 'Sent with every request, over the server\'s default headers. Removing the default Content-Type sends none.'),
    list, removedList,
    h('button', { type: 'button', class: 'secondary', onclick: () => add().querySelector('input').focus() }, 'Add header'));
  const collect = () => {
    const out = {};
    for (const row of list.children) {
      const [n, v] = row.querySelectorAll('input');
      const name = n.value.trim();
      for (const w of row.querySelectorAll('.field')) w.dataset.field = `headers.${name}`;
      if (!name) continue;
      const untouchedDefault = row.dataset.default && /^content-type$/i.test(name) && v.value === row.dataset.default;
      if (!untouchedDefault) out[name] = v.value;
    }
    for (const name of removed) if (!(name in out)) out[name] = null;
    return out;
  };
  return { el, collect };
}

/** Auth type switch with its fields. Saved secrets come back masked; blank keeps them. */
export function authEditor(auth) {
  const type = select([['none', 'None'], ['basic', 'Basic'], ['bearer', 'Bearer token'], ['api_key', 'API key header']],
    { value: auth.type });
  const saved = (k) => (auth[k] === MASK ? '' : auth[k] ?? '');
  const secretHint = (k) => (auth[k] === MASK ? 'Saved; leave blank to keep it.' : null);
  const c = {
    username: input({ value: auth.username ?? '', autocomplete: 'off' }),
    password: input({ type: 'password', value: saved('password'), autocomplete: 'new-password' }),
    token: input({ type: 'password', value: saved('token'), autocomplete: 'off' }),
    header: input({ value: auth.header ?? '', placeholder: 'X-Api-Key', autocomplete: 'off' }),
    value: input({ type: 'password', value: saved('value'), autocomplete: 'off' }),
  };
  const groups = {
    none: [],
    basic: [field('Username', c.username, { name: 'auth.username' }),
      field('Password', c.password, { name: 'auth.password', hint: secretHint('password') })],
    bearer: [field('Token', c.token, { name: 'auth.token', hint: secretHint('token') })],
    api_key: [field('Header name', c.header, { name: 'auth.header' }),
      field('Header value', c.value, { name: 'auth.value', hint: secretHint('value') })],
  };
  const box = h('div', { class: 'grid' });
  const draw = () => box.replaceChildren(...groups[type.value]);
  type.addEventListener('change', draw);
  draw();
  const el = h('fieldset', {}, h('legend', {}, 'Authentication'),
    field('Type', type, { name: 'auth.type' }), box);
  /** Secrets left blank while the type is unchanged are sent as the mask the API returned. */
  const secret = (k) => c[k].value || (auth.type === type.value && auth[k] === MASK ? MASK : '');
  const collect = () => {
    switch (type.value) {
      case 'basic': return { type: 'basic', username: c.username.value, password: secret('password') };
      case 'bearer': return { type: 'bearer', token: secret('token') };
      case 'api_key': return { type: 'api_key', header: c.header.value.trim(), value: secret('value') };
      default: return { type: 'none' };
    }
  };
  return { el, collect };
}

/** Body format with its template editor or form fields. */
export function bodyEditor(body) {
  const format = select([['default', 'Default payload'], ['json', 'JSON template'], ['form', 'Form fields'], ['text', 'Text template']],
    { value: body.format });
  const template = textarea({ rows: 8, class: 'code', value: body.template ?? '',
    placeholder: '{"id": {{ data.id | tojson }}, "type": {{ event.type | tojson }}}' });
  const fields = rowsEditor({ name: 'body.fields', legend: 'Form fields', addLabel: 'Add form field',
    cols: [['key', 'Key', 'id'], ['value', 'Value template', '{{ doc.name }}']], items: body.fields ?? [] });
  const tplField = field('Template', template, { name: 'body.template',
    hint: 'Jinja: event, data (also doc), webhook, delivery; the filter tojson quotes a value as JSON.' });
  const box = h('div');
  const draw = () => {
    const f = format.value;
    box.replaceChildren(...(f === 'json' || f === 'text' ? [tplField] : f === 'form' ? [fields.el] : []));
  };
  format.addEventListener('change', draw);
  draw();
  const el = h('fieldset', { 'data-field': 'body' }, h('legend', {}, 'Body'), slot(),
    field('Format', format, { name: 'body.format' }), box);
  const collect = () => {
    const f = format.value;
    if (f === 'json' || f === 'text') return { format: f, template: template.value };
    if (f === 'form') return { format: f, fields: fields.collect().map((x) => ({ key: x.key ?? '', value: x.value ?? '' })) };
    return { format: 'default' };
  };
  return { el, collect };
}

/** Signature scheme with the HMAC header options. */
export function signatureEditor(sig) {
  const scheme = select([['standard', 'Standard Webhooks (v1, HMAC)'], ['ed25519', 'Standard Webhooks (v1a, Ed25519)'],
    ['hmac-sha256', 'HMAC-SHA256 of the body'], ['none', 'None']], { value: sig.scheme });
  const header = input({ value: sig.header ?? 'X-Hookd-Signature' });
  const encoding = select([['base64', 'base64'], ['hex', 'hex']], { value: sig.encoding ?? 'base64' });
  const prefix = input({ value: sig.prefix ?? '', placeholder: 'sha256=' });
  const hmac = h('div', { class: 'grid' }, field('Signature header', header, { name: 'signature.header' }),
    field('Encoding', encoding, { name: 'signature.encoding' }), field('Prefix', prefix, { name: 'signature.prefix' }));
  const draw = () => { hmac.hidden = scheme.value !== 'hmac-sha256'; };
  scheme.addEventListener('change', draw);
  draw();
  const el = h('div', {}, field('Signature scheme', scheme, { name: 'signature.scheme' }), hmac);
  const collect = () => (scheme.value === 'hmac-sha256'
    ? { scheme: 'hmac-sha256', header: header.value.trim(), encoding: encoding.value, prefix: prefix.value || null }
    : { scheme: scheme.value });
  return { el, collect };
}
