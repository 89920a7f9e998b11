// The parts of the inbound hook form that edit one structured field each: methods, auth (type and
// signature preset) and parse (headers, query and body paths, with the Parse sample box). Each
// returns `{ el, collect() }` giving the field in the API's wire shape.

import { api } from '../api.js';
import { h, field, input, textarea, select, banner, showError, clearErrors, replace } from '../dom.js';
import { MASK, rowsEditor } from './webhook_editors.js';

const METHODS = ['POST', 'PUT', 'PATCH', 'GET', 'DELETE'];
const slot = () => h('p', { class: 'field-error', role: 'alert', hidden: true });

/** A checkbox per method; methods saved beyond the common five are kept as boxes too. */
export function methodsEditor(methods) {
  const all = [...new Set([...METHODS, ...methods])];
  const boxes = all.map((m) => [m, input({ type: 'checkbox', checked: methods.includes(m), value: m })]);
  const el = h('fieldset', { 'data-field': 'methods' }, h('legend', {}, 'Methods'), slot(),
    h('div', { class: 'radios' }, boxes.map(([m, c]) => field(m, c))),
    h('p', { class: 'hint' }, 'Other methods are answered 405.'));
  return { el, collect: () => boxes.filter(([, c]) => c.checked).map(([m]) => m) };
}

const PRESETS = [['github', 'GitHub (X-Hub-Signature-256)'], ['stripe', 'Stripe (Stripe-Signature)'],
  ['slack', 'Slack (X-Slack-Signature)'], ['shopify', 'Shopify (X-Shopify-Hmac-Sha256)'],
  ['standard', 'Standard Webhooks (webhook-signature)'], ['hmac', 'HMAC of the body, in a header you name']];
const SECRET_HINTS = {
  github: 'The secret set in the repository’s webhook settings.',
  stripe: 'The endpoint’s signing secret, whsec_…; 300 s tolerance.',
  slack: 'The app’s signing secret; 300 s tolerance.',
  shopify: 'The app’s client secret.',
  standard: 'whsec_… for v1 signatures; or give a public key instead.',
  hmac: 'The shared secret the sender signs with.',
};

/** Auth type, signature preset and their fields. Saved secrets come back masked; blank keeps them. */
export function authEditor(auth) {
  const type = select([['none', 'None: anyone with the URL'], ['basic', 'Basic (username and password)'],
    ['signature', 'Signature over the body']], { value: auth.type });
  const preset = select(PRESETS, { value: auth.preset ?? 'github' });
  const masked = (k) => auth[k] === MASK;
  const keepHint = (k) => (masked(k) ? 'Saved; leave blank to keep it.' : null);
  const c = {
    username: input({ value: auth.username ?? '', autocomplete: 'off' }),
    password: input({ type: 'password', value: masked('password') ? '' : auth.password ?? '', autocomplete: 'new-password' }),
    secret: input({ type: 'password', value: masked('secret') ? '' : auth.secret ?? '', autocomplete: 'off' }),
    public_key: input({ value: auth.public_key ?? '', placeholder: 'whpk_…', autocomplete: 'off', class: 'code' }),
    header: input({ value: auth.header ?? '', placeholder: 'X-Signature', autocomplete: 'off' }),
    encoding: select([['hex', 'hex'], ['base64', 'base64']], { value: auth.encoding ?? 'hex' }),
    prefix: input({ value: auth.prefix ?? '', placeholder: 'sha256=', autocomplete: 'off' }),
    algorithm: select([['sha256', 'SHA-256'], ['sha512', 'SHA-512']], { value: auth.algorithm ?? 'sha256' }),
  };
  const secretField = field('Secret', c.secret, { name: 'auth.secret', hint: keepHint('secret') });
  const secretHint = h('small', { class: 'hint' });
  secretField.insertBefore(secretHint, secretField.querySelector('.field-error'));
  const f = {
    username: field('Username', c.username, { name: 'auth.username' }),
    password: field('Password', c.password, { name: 'auth.password', hint: keepHint('password') }),
    public_key: field('Public key (v1a)', c.public_key, { name: 'auth.public_key', hint: 'Instead of a secret: the sender’s Ed25519 key.' }),
    header: field('Signature header', c.header, { name: 'auth.header' }),
    encoding: field('Encoding', c.encoding, { name: 'auth.encoding' }),
    prefix: field('Prefix', c.prefix, { name: 'auth.prefix', hint: 'Text before the signature, if any.' }),
    algorithm: field('Algorithm', c.algorithm, { name: 'auth.algorithm' }),
  };
  const presetField = field('Preset', preset, { name: 'auth.preset' });
  const box = h('div', { class: 'grid' });
  const draw = () => {
    const t = type.value;
    const p = preset.value;
    secretHint.textContent = SECRET_HINTS[p];
    if (t === 'basic') box.replaceChildren(f.username, f.password);
    else if (t === 'signature') {
      box.replaceChildren(presetField, secretField, ...(p === 'standard' ? [f.public_key] : []),
        ...(p === 'hmac' ? [f.header, f.encoding, f.prefix, f.algorithm] : []));
    } else box.replaceChildren();
  };
  type.addEventListener('change', draw);
  preset.addEventListener('change', draw);
  draw();
  const el = h('fieldset', { 'data-field': 'auth' }, h('legend', {}, 'Authentication'), slot(),
    field('Type', type, { name: 'auth.type', hint: 'Failing callers get 401 and are recorded as rejected.' }), box);
  /** A blank secret while the type (and preset) is unchanged is sent as the mask: the API keeps it. */
  const secret = (k) => {
    if (c[k].value) return c[k].value;
    const same = auth.type === type.value && (type.value !== 'signature' || auth.preset === preset.value);
    return same && masked(k) ? MASK : '';
  };
  const collect = () => {
    if (type.value === 'basic') return { type: 'basic', username: c.username.value, password: secret('password') };
    if (type.value !== 'signature') return { type: 'none' };
    const p = preset.value;
    if (p === 'standard') {
      const key = c.public_key.value.trim();
      return key && !c.secret.value ? { type: 'signature', preset: p, public_key: key }
        : { type: 'signature', preset: p, secret: secret('secret') };
    }
    if (p === 'hmac') {
      const out = { type: 'signature', preset: p, secret: secret('secret'), header: c.header.value.trim(),
        encoding: c.encoding.value, algorithm: c.algorithm.value };
      if (c.prefix.value) out.prefix = c.prefix.value;
      return out;
    }
    return { type: 'signature', preset: p, secret: secret('secret') };
  };
  return { el, collect };
}

/** A default variable name for a path: its last name (`data.object.amount` → `amount`). */
export function aliasFor(path) {
  const names = path.split(/[.[\]]+/).filter((s) => s && !/^\d+$/.test(s));
  const last = (names[names.length - 1] ?? 'value').replace(/[^A-Za-z0-9_]/g, '_');
  return /^[A-Za-z_]/.test(last) ? last : `_${last}`;
}

/**
 * The parse editor: headers by name, query and body by path, each with an alias; and the Parse
 * sample box, which lists the paths of a sample URL or JSON to add with one click.
 */
export function parseEditor(parse) {
  const lists = {
    headers: rowsEditor({ name: 'parse.headers', legend: 'Headers', addLabel: 'Add header', items: parse.headers ?? [],
      cols: [['name', 'Header name', 'X-Request-Id'], ['alias', 'Alias', 'request_id']] }),
    query: rowsEditor({ name: 'parse.query', legend: 'Query parameters', addLabel: 'Add query path', items: parse.query ?? [],
      cols: [['path', 'Path', 'order'], ['alias', 'Alias', 'order_id']] }),
    body: rowsEditor({ name: 'parse.body', legend: 'Body', addLabel: 'Add body path', items: parse.body ?? [],
      cols: [['path', 'Path', 'data.object.amount'], ['alias', 'Alias', 'amount']] }),
  };
  const sample = sampleBox((part, path, alias) => {
    const row = lists[part].add({ path, alias });
    row.scrollIntoView({ block: 'nearest' });
  });
  const el = h('fieldset', { 'data-field': 'parse' }, h('legend', {}, 'Parse'), slot(),
    h('p', { class: 'hint' }, 'Each item becomes a top-level variable under its alias, for the workflow and the response. '
      + 'Paths are written a, b.c, items[0].id.'),
    h('div', { class: 'split parse' }, h('div', {}, lists.headers.el, lists.query.el, lists.body.el), sample));
  const items = (list, key) => list.collect().map((r) => ({ [key]: r[key] ?? '', ...(r.alias ? { alias: r.alias } : {}) }));
  const collect = () => ({ headers: items(lists.headers, 'name'), query: items(lists.query, 'path'), body: items(lists.body, 'path') });
  return { el, collect };
}

/** The Parse sample box: `add(part, path, alias)` is called for each path the user adds. */
function sampleBox(add) {
  const url = input({ type: 'text', placeholder: 'https://example.com/callback?order=A-17', autocomplete: 'off', class: 'code' });
  const json = textarea({ rows: 6, class: 'code', placeholder: '{"data": {"object": {"amount": 250}}}' });
  const err = banner();
  const found = h('div', { class: 'found', 'aria-live': 'polite' });
  const run = h('button', { type: 'button', class: 'secondary' }, 'Parse sample');
  const box = h('section', { class: 'sample', 'aria-labelledby': 'sample-h' },
    h('h3', { id: 'sample-h' }, 'Parse sample'),
    h('p', { class: 'hint' }, 'Paste a URL the sender calls and/or a body it sends: its paths are listed, ready to add.'),
    err, field('Sample URL', url, { name: 'url' }), field('Sample JSON body', json, { name: 'json' }),
    h('div', { class: 'actions' }, run), found);
  // Enter in the URL parses the sample rather than submitting the hook's form.
  url.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); run.click(); } });
  run.addEventListener('click', async () => {
    clearErrors(box);
    const req = {};
    if (url.value.trim()) req.url = url.value.trim();
    // Sent as text: the API then keeps the document's key order.
    if (json.value.trim()) req.json = json.value;
    if (!req.url && !req.json) {
      showError(box, { body: { error: { field: 'url', message: 'Enter a sample URL or JSON body first.' } } }, err);
      return;
    }
    run.disabled = true;
    try {
      const res = await api('POST', '/inbound/parse', req);
      replace(found, pathList('query', 'Query parameters', res.query, add), pathList('body', 'Body paths', res.body, add),
        !res.query.length && !res.body.length ? h('p', { class: 'empty' }, 'No paths in this sample.') : null);
    } catch (e) { showError(box, e, err); } finally { run.disabled = false; }
  });
  return box;
}

function pathList(part, title, paths, add) {
  if (!paths.length) return null;
  return h('div', {}, h('h4', {}, title), h('ul', { class: 'paths' }, paths.map((path) => {
    const alias = input({ value: aliasFor(path), autocomplete: 'off', class: 'code' });
    const btn = h('button', { type: 'button', class: 'secondary' }, 'Add');
    btn.addEventListener('click', () => {
      add(part, path, alias.value.trim());
      btn.textContent = 'Added';
      btn.disabled = true;
    });
    return h('li', { 'data-sample-path': path, 'data-part': part }, h('code', {}, path),
      field(`Alias for ${path}`, alias, { cls: 'alias' }), btn);
  })));
}
