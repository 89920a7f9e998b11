// An inbound hook's executions (new ones appear by polling every 2 s while the page is visible),
// and one execution: the request as received, the variables, the node trace and the answer.

import { api, qs } from '../api.js';
import { h, table, loadMore, statusBadge, when, poll, banner, showError, pre } from '../dom.js';

const POLL_MS = 2000;

export async function renderList(ctx) {
  const id = ctx.params.id;
  const hookPath = `/inbound/${encodeURIComponent(id)}`;
  const err = banner();
  const hook = await api('GET', hookPath);
  ctx.setTitle(`Executions of ${hook.name}`);
  const { el, tbody } = table(['Execution', 'Status', 'Received', 'Duration', 'Answer'], 'Executions');
  const empty = h('p', { class: 'empty', hidden: true }, 'No calls yet. They are listed here as they come.');
  const more = loadMore(() => page());
  ctx.main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Executions of ', h('a', { href: `#${hookPath}` }, hook.name)),
      h('span', { class: 'muted live' }, 'Live: updates every 2 s')),
    err, el, empty, more);
  const rows = new Map();
  let cursor = null;
  const draw = (e) => {
    const cells = [
      h('td', {}, h('a', { href: `#/executions/${encodeURIComponent(e.id)}` }, e.id)),
      h('td', {}, statusBadge(e.status)),
      h('td', {}, when(e.created_at)),
      h('td', {}, e.duration_ms == null ? '—' : `${e.duration_ms} ms`),
      h('td', {}, e.response ? `HTTP ${e.response.status}` : '—', e.error ? h('small', { class: 'hint bad' }, e.error) : null)];
    const tr = rows.get(e.id) ?? h('tr', { 'data-id': e.id });
    tr.replaceChildren(...cells);
    return tr;
  };
  const show = () => { empty.hidden = rows.size > 0; el.hidden = !empty.hidden; };
  async function page() {
    try {
      const res = await api('GET', `${hookPath}/executions` + qs({ cursor }));
      for (const e of res.data) { const tr = draw(e); rows.set(e.id, tr); tbody.append(tr); }
      cursor = res.next_cursor;
      more.hidden = !cursor;
      show();
    } catch (e) { showError(ctx.main, e, err); }
  }
  /** The newest page again: new executions go on top, known ones are updated in place. */
  async function refresh() {
    const res = await api('GET', `${hookPath}/executions`);
    const fresh = [];
    for (const e of res.data) {
      const known = rows.has(e.id);
      const tr = draw(e);
      if (!known) { rows.set(e.id, tr); fresh.push(tr); }
    }
    tbody.prepend(...fresh);
    show();
  }
  await page();
  poll(ctx, POLL_MS, refresh);
}

const json = (v) => (typeof v === 'string' ? v : JSON.stringify(v, null, 2));

function dl(pairs) {
  return h('dl', { class: 'summary' }, pairs.filter(Boolean).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function headerTable(headers, caption) {
  const entries = Object.entries(headers ?? {});
  if (!entries.length) return h('p', { class: 'empty' }, 'No headers.');
  const { el, tbody } = table(['Header', 'Value'], caption);
  tbody.append(...entries.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', { class: 'mono' }, v))));
  return el;
}

export async function renderDetail(ctx) {
  const id = ctx.params.id;
  const path = `/executions/${encodeURIComponent(id)}`;
  const err = banner();
  const body = h('div');
  ctx.main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Execution ', h('code', {}, id))), err, body);
  let hookName = null;
  let last = null;
  let done = false;
  const load = async () => {
    if (done) return;
    const e = await api('GET', path);
    if (hookName === null) {
      hookName = await api('GET', `/inbound/${encodeURIComponent(e.hook_id)}`).then((x) => x.name, () => e.hook_id);
    }
    done = !['queued', 'running'].includes(e.status);
    const text = JSON.stringify(e);
    if (text === last) return;
    last = text;
    body.replaceChildren(...view(e, hookName));
  };
  await load();
  poll(ctx, POLL_MS, load);
}

/**
 * The API records `variables` unmasked (an async run needs them), so `headers` and
 * `request.headers` hold the credentials the request record masks: masked here the same way.
 */
function maskedVariables(e) {
  const secret = Object.entries(e.request.headers ?? {}).filter(([, v]) => v === '****').map(([k]) => k);
  const vars = structuredClone(e.variables ?? {});
  for (const headers of [vars.headers, vars.request?.headers]) {
    if (!headers || typeof headers !== 'object') continue;
    for (const k of Object.keys(headers)) if (secret.includes(k.toLowerCase())) headers[k] = '****';
  }
  return vars;
}

function view(e, hookName) {
  const r = e.request;
  const hook = `#/inbound/${encodeURIComponent(e.hook_id)}`;
  return [
    h('section', { class: 'card' }, dl([
      ['Status', statusBadge(e.status)],
      ['Hook', h('span', {}, h('a', { href: hook }, hookName), ' · ', h('a', { href: `${hook}/executions` }, 'all executions'))],
      ['Mode', e.mode],
      ['Received', when(e.created_at)],
      ['Duration', e.duration_ms == null ? '—' : `${e.duration_ms} ms`],
      e.attempts > 1 ? ['Runs', `${e.attempts} (a worker stopped mid-run)`] : null,
      e.error ? ['Error', h('span', { class: 'bad' }, e.error)] : null])),
    h('section', { class: 'card', 'aria-labelledby': 'req-h' }, h('h2', { id: 'req-h' }, 'Request'),
      h('p', { class: 'request-line' }, h('strong', {}, r.method), ' ', h('span', { class: 'url' }, r.path)),
      h('details', {}, h('summary', {}, `Headers (${Object.keys(r.headers ?? {}).length})`), headerTable(r.headers, 'Request headers')),
      h('h3', {}, 'Query'), pre(json(r.query), 'Request query'),
      h('h3', {}, 'Body'), pre(json(r.body), 'Request body'),
      r.body_truncated ? h('p', { class: 'hint' }, 'The body was cut at the record limit.') : null),
    h('section', { class: 'card', 'aria-labelledby': 'vars-h' }, h('h2', { id: 'vars-h' }, 'Variables'),
      h('p', { class: 'hint' }, 'When the workflow started: the parsed aliases and the request.'),
      pre(json(maskedVariables(e)), 'Variables')),
    h('section', { class: 'card', 'aria-labelledby': 'trace-h' }, h('h2', { id: 'trace-h' }, 'Node trace'), trace(e.trace)),
    h('section', { class: 'card', 'aria-labelledby': 'resp-h' }, h('h2', { id: 'resp-h' }, 'Response'),
      e.response ? [h('p', {}, h('span', { class: `badge ${e.response.status < 400 ? 'on' : 'off'}` }, `HTTP ${e.response.status}`)),
        headerTable(e.response.headers, 'Response headers'), pre(e.response.body || '(empty body)', 'Response body')]
        : h('p', { class: 'empty' }, ['queued', 'running'].includes(e.status) ? 'Not answered yet.' : 'No answer recorded.')),
  ];
}

function trace(nodes) {
  if (!nodes?.length) return h('p', { class: 'empty' }, 'No node ran.');
  const { el, tbody } = table(['Node', 'Type', 'Result', 'Error', 'Duration'], 'Node trace');
  el.classList.add('trace');
  tbody.append(...nodes.map((n) => h('tr', { 'data-node': n.path },
    h('td', { class: 'mono' }, n.path),
    h('td', {}, n.node_type),
    h('td', {}, h('code', { class: 'result' }, json(n.result))),
    h('td', {}, n.error ? h('span', { class: 'bad' }, n.error) : '—'),
    h('td', {}, `${n.duration_ms} ms`))));
  return el;
}
